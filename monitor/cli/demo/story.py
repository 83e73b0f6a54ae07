"""The story the demo tells, step by step, watching the service and the registry.

The demo does not steer driftloop: the world drifts at a fixed row, and every
later step is something driftloop (or the training job it launched) did, which
the story waits for and shows:

1. serving: version 1 answers undrifted traffic; windows come back clean;
2. drift: from ``drift_row`` on, applicants and their repayments change. driftloop
   sees dataset drift and a performance drop and launches the retrain command
   (the alert scenario plays Prometheus and Alertmanager instead: once
   ``alert_windows`` windows in a row drifted, it posts an Alertmanager webhook,
   payload version 4, labels ``model=carloan action=retrain``);
3. retraining: the retrain registers a new version tagged with the launch's key;
4. canary: driftloop makes it the challenger, the model server sends it its share
   of traffic, driftloop judges both on the same interval and promotes it (or,
   bad-challenger, rolls it back);
5. settling: windows of the serving version after the decision, on the baseline of
   the champion (a promotion swapped it): the drift is gone, or (after a rollback)
   still there.

Each wait has the profile's deadline; missing one is a :class:`DemoError` naming
the step.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from monitor.cli.demo.options import MODEL, Profile, Scenario
from monitor.cli.demo.probe import Probe, Snapshot
from monitor.cli.demo.processes import DemoError
from monitor.cli.demo.stack import Stack

__all__ = ["PHASES", "Outcome", "Story"]

PHASES = ("setting up", "serving", "drift", "retraining", "canary", "settling", "done")
_TERMINAL = frozenset({"succeeded", "rolled_back", "aborted", "reverted", "failed"})
_POLL_SECONDS = 0.5
T = TypeVar("T")


@dataclass
class Outcome:
    scenario: Scenario
    result: str = ""  # promoted | rolled back
    champion: str | None = None
    challenger: str | None = None
    retrain_run: str | None = None
    retrain_reason: str | None = None
    settled_windows: list[dict[str, Any]] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)


class Story:
    def __init__(self, stack: Stack, probe: Probe,
                 show: Callable[[str, str, Snapshot | None], None]) -> None:
        self.stack = stack
        self.profile: Profile = stack.profile
        self.probe = probe
        self.show = show  # (phase, what is happening, latest snapshot)
        self.outcome = Outcome(stack.options.scenario)
        self.phase = "serving"
        self.doing = ""
        self._challenger_run = ""
        self._phase_started = time.monotonic()

    def run(self) -> Outcome:
        first = self.stack.first_version
        self._enter("serving", f"version {first} serves the traffic it was trained for")
        self._until(f"the first window of version {first}", lambda s: any(
            w["version"] == first for w in s.windows))
        self._until("the drift row", lambda s: self._served() >= self.profile.drift_row)
        self._enter("drift", f"from row {self.profile.drift_row} on, applicants and their "
                             "repayments change (drift injected)")
        if self.stack.options.scenario == "alert":
            self._until("an alert's worth of drifted windows", self._alert_due)
            self._send_alert()
        run = self._until("a retrain launched by driftloop", self._retrain_run)
        self.outcome.retrain_run, self.outcome.retrain_reason = run["id"], run["reason"]
        self._enter("retraining", f"driftloop launched a retrain ({run['reason']}), run "
                                  f"{run['id']}")
        version = self._until("the retrained version in the registry",
                              lambda s: self._registered(s, run["id"]))
        self.outcome.challenger = version
        self._enter("canary", f"version {version} registered by the retrain; driftloop makes it "
                              f"the challenger and judges it against version {first}")
        canary = self._until(f"the canary of version {version} decided",
                             lambda s: s.canary if s.canary.get("challenger") == version
                             and s.canary.get("phase") in _TERMINAL else None)
        promoted = canary["phase"] == "succeeded"
        self.outcome.result = "promoted" if promoted else "rolled back"
        self.outcome.champion = version if promoted else first
        decided_at = str(canary.get("updated_at") or "")
        self._enter("settling", f"version {version} {self.outcome.result}: "
                                + ("the baseline follows the champion alias to its rows"
                                   if promoted else f"version {first} keeps serving"))
        self.outcome.settled_windows = self._until(
            "windows after the decision", lambda s: self._settled(s, decided_at, promoted))
        self._enter("done", f"version {self.outcome.champion} is the champion")
        return self.outcome

    # -- waiting ----------------------------------------------------------------------------
    def _enter(self, phase: str, doing: str) -> None:
        now = time.monotonic()
        self.outcome.phase_seconds[self.phase] = (
            self.outcome.phase_seconds.get(self.phase, 0.0) + now - self._phase_started)
        self.phase, self.doing, self._phase_started = phase, doing, now
        self.stack.write_state(phase=phase, doing=doing, outcome=self.outcome.result or None)
        self.show(phase, doing, None)

    def _until(self, what: str, check: Callable[[Snapshot], T | None]) -> T:
        deadline = time.monotonic() + self.profile.phase_timeout_seconds
        last_error = ""
        while time.monotonic() < deadline:
            self.stack.check_traffic()
            try:
                snapshot = self.probe.read()
            except httpx.HTTPError as exc:  # a slow answer; the service's exit is checked above
                last_error = f"; last API error: {type(exc).__name__}"
            else:
                for run in snapshot.runs:
                    self.stack.remember_run(run.get("external_id"))
                self.show(self.phase, self.doing, snapshot)
                found = check(snapshot)
                if found:
                    return found
            time.sleep(_POLL_SECONDS)
        raise DemoError(f"{what}: not reached within {self.profile.phase_timeout_seconds:.0f}s "
                        f"in the {self.phase} phase{last_error} (keep the logs with --out DIR)")

    # -- conditions -------------------------------------------------------------------------
    def _served(self) -> int:
        return self.stack.server.row if self.stack.server is not None else 0

    @staticmethod
    def _retrain_run(snapshot: Snapshot) -> dict[str, Any] | None:
        return snapshot.runs[0] if snapshot.runs else None  # newest first

    def _registered(self, snapshot: Snapshot, run_key: str) -> str | None:
        run = next((r for r in snapshot.runs if r["id"] == run_key), None)
        if run is not None and run["status"] == "failed":
            raise DemoError(f"the retrain run {run_key} failed (its output is in the service's "
                            "log, logs/driftloop.log; keep it with --out DIR)")
        from mlflow import MlflowClient

        client = MlflowClient(self.stack.mlflow_url)
        for found in client.search_model_versions(f"name='{MODEL}'"):
            tags = client.get_run(found.run_id).data.tags if found.run_id else {}
            if tags.get("driftloop.idempotency_key") == run_key:
                self._challenger_run = str(found.run_id)
                return str(found.version)
        return None

    def _settled(self, snapshot: Snapshot, decided_at: str,
                 promoted: bool) -> list[dict[str, Any]] | None:
        """The serving version's windows opened after the decision; after a promotion, only
        those binned on the new champion's own baseline (its run's)."""
        decided = _moment(decided_at)
        after = [w for w in snapshot.windows if w["version"] == self.outcome.champion
                 and decided is not None and (_moment(w.get("start")) or decided) > decided]
        if promoted:
            after = [w for w in after if w.get("baseline") == f"runs:/{self._challenger_run}"]
        return after if len(after) >= self.profile.settle_windows else None

    def _alert_due(self, snapshot: Snapshot) -> list[dict[str, Any]] | None:
        first = self.stack.first_version
        mine = [w for w in snapshot.windows if w["version"] == first]
        recent = mine[:self.profile.alert_windows]
        if len(recent) == self.profile.alert_windows and all(w["dataset_drift"] for w in recent):
            return recent
        return None

    def _send_alert(self) -> None:
        """What Alertmanager posts for the DriftloopDatasetDrift rule (prometheus/rules)."""
        version = str(self.stack.first_version)
        labels = {"alertname": "DriftloopDatasetDrift", "model": MODEL, "version": version,
                  "severity": "warning", "action": "retrain"}
        fingerprint = hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]
        starts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        payload = {
            "version": "4", "status": "firing", "receiver": "driftloop",
            "groupKey": '{}:{alertname="DriftloopDatasetDrift"}', "truncatedAlerts": 0,
            "groupLabels": {"alertname": "DriftloopDatasetDrift"}, "commonLabels": labels,
            "commonAnnotations": {"summary": f"Dataset drift on model {MODEL} version {version}"},
            "externalURL": "http://alertmanager.demo:9093",
            "alerts": [{"status": "firing", "labels": labels,
                        "annotations": {"summary": f"Dataset drift on model {MODEL}"},
                        "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus.demo:9090/graph",
                        "fingerprint": fingerprint}]}
        response = httpx.post(f"{self.stack.service_url}/api/v1/alerts", json=payload,
                              timeout=10)
        if response.status_code != 200:
            raise DemoError(f"POST /api/v1/alerts: got {response.status_code} "
                            f"({response.text[:200]}), expected 200")
        self._enter("drift", f"Alertmanager-shaped webhook sent: DriftloopDatasetDrift on "
                             f"version {version} ({self.profile.alert_windows} drifted windows)")


def _moment(text: Any) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
