"""The retrain reactor: evidence in, ``triggers.policy.decide``, persist, then act.

Every piece of evidence (a closed window, a performance window, a firing
alert, a manual request, a run's outcome) goes through the same steps, under
one lock because the consumer thread and the HTTP threads both call in:

1. load the model's trigger state from the store;
2. ``decide(state, evidence, now, policy)``;
3. persist the new state, and for a retrain the run record keyed by its
   idempotency key, in one transaction (the UNIQUE key turns a replay after a
   restart into a no-op);
4. log the decision sentence (store decision log and logging), count it;
5. launch through the model's launcher and record the outcome.

Invariant: the state is written before anything is launched, so a crash
after step 3 relaunches the same key (``tick`` finds the run still
``launching``) and never decides a second, different run. Replicas share the
store and each ticks every model: a run's launch is its creator's until its
lease (``launch_lease_seconds``) has passed, and every later attempt is claimed
first (``Store.claim_launch``, compare-and-set on the attempt number), so one
replica launches it. Only a crash between a launch and its record leaves the
same key launched twice, after the lease; the key goes with every launch.

Launch errors never escape: retryable ones are retried by ``tick`` with
backoff while the model stays "running" (one at a time), final ones are
recorded and finish the run as failed. ``tick`` (on a timer, ``start``) also
polls the status of runs whose launcher tracks it and feeds ``RunFinished``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from monitor.config import Config
from monitor.metrics import Metrics
from monitor.react.support import (
    Outcome,
    build_launchers,
    launch_request_from_dict,
    ms,
    policy_for,
    state_from_row,
    state_to_row,
    window_id,
)
from monitor.store import RetrainRun, Store, Transaction
from monitor.stream import WindowOutput
from triggers.alerts import AlertTrigger
from triggers.evidence import Evidence, ManualRequest, RunFinished, WindowEvidence
from triggers.launch import Launcher, LaunchError, LaunchRequest, RunRef
from triggers.policy import Decision, decide
from triggers.state import TriggerState

__all__ = ["FINISHED_RUN_STATUSES", "Outcome", "RetrainReactor", "build_launchers", "policy_for"]

log = logging.getLogger("driftloop.triggers")

# run statuses in the store; the first three mean "still in flight"
LAUNCHING, RETRYING, RUNNING = "launching", "retrying", "running"
FINISHED_RUN_STATUSES = frozenset({"succeeded", "failed", "unknown"})


def _performance_evidence(version: str, result: Mapping[str, Any]) -> WindowEvidence:
    """One performance window: only the performance signal is measured there."""
    window = result.get("window", result.get("index"))
    identity = f"{version}:performance:{window if window is not None else uuid.uuid4().hex}"
    evidence = WindowEvidence.from_result({"version": version, "performance": dict(result)})
    return replace(evidence, window_id=identity)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RetrainReactor:
    """Implements ``monitor.service.Reactor``; also takes alerts and manual requests."""

    def __init__(
        self,
        config: Config,
        store: Store,
        metrics: Metrics,
        launchers: Mapping[str, Launcher],
        *,
        clock: Callable[[], datetime] = _utcnow,
        retry_base_seconds: float = 30.0,
        retry_max_seconds: float = 900.0,
        max_launch_attempts: int = 10,
        launch_lease_seconds: float = 60.0,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.launchers = dict(launchers)
        self.clock = clock
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.max_launch_attempts = max_launch_attempts
        self.launch_lease_ms = int(launch_lease_seconds * 1000)
        self.policies = {name: policy_for(m) for name, m in config.models.items()}
        # evidence from the consumer thread, decided on by the retrain job; a crash loses
        # nothing: catch_up feeds the stored windows again (seen ones are skipped)
        self._queue: deque[tuple[str, Evidence]] = deque(maxlen=100_000)
        # set by the scheduler: run the retrain job now rather than at its next interval
        self.wake: Callable[[], None] = lambda: None
        self._lock = threading.RLock()

    @classmethod
    def from_config(cls, config: Config, store: Store, metrics: Metrics) -> RetrainReactor:
        return cls(config, store, metrics, build_launchers(config))

    # -- evidence in --------------------------------------------------------------
    def on_windows(self, outputs: list[WindowOutput]) -> None:
        """Called on the consumer thread: queue only; the retrain job decides and launches
        (a launcher's retries must never hold the consumer past max_poll_interval_ms)."""
        for out in outputs:
            self._queue.append((out.model, self._window_evidence(out.result)))
        self.wake()

    def on_performance(self, model: str, version: str, result: Mapping[str, Any]) -> None:
        self._queue.append((model, _performance_evidence(version, result)))
        self.wake()

    def drain(self) -> int:
        """Decide on the queued evidence (the retrain job); returns how much there was."""
        handled = 0
        while self._queue:
            model, evidence = self._queue.popleft()
            self._guarded(model, evidence)
            handled += 1
        return handled

    def on_alert(self, trigger: AlertTrigger) -> Outcome:
        return self.handle(trigger.model, trigger.evidence)

    def on_manual(self, model: str, request: ManualRequest) -> Outcome:
        return self.handle(model, request)

    def catch_up(self, windows_per_model: int = 8) -> None:
        """Feed the last persisted windows again (already counted ones are skipped by id).

        Covers a crash between persisting window results and reacting to them.
        """
        for model in self.config.models:
            for result in reversed(self.store.windows(model, limit=windows_per_model)):
                self._guarded(model, self._window_evidence(result))
                performance = result.get("performance")
                if performance and performance.get("window") is not None:
                    self._guarded(model, _performance_evidence(str(result.get("version")),
                                                               performance))

    # -- the steps ----------------------------------------------------------------
    def handle(self, model: str, evidence: Evidence) -> Outcome:
        """Decide, persist, log, act; raises only when the store fails."""
        if model not in self.policies:
            raise KeyError(f"unknown model {model!r}; configured: {', '.join(self.policies)}")
        with self._lock:
            state = self.load_state(model)
            decision = decide(state, evidence, self.clock(), self.policies[model])
            if decision.action != "retrain":
                if decision.state != state:
                    self.save_state(decision.state)
                kind = "run" if isinstance(evidence, RunFinished) else "hold"
                self._log(model, kind, decision)
                return Outcome(model, decision.action, decision.reason, decision.sentence)
            return self._retrain(model, decision)

    def load_state(self, model: str) -> TriggerState:
        return state_from_row(model, self.store.get_trigger_state(model))

    def save_state(self, state: TriggerState, tx: Transaction | None = None) -> None:
        (tx or self.store).put_trigger_state(state_to_row(state))

    def _retrain(self, model: str, decision: Decision) -> Outcome:
        request = decision.launch_request()
        assert request is not None and decision.idempotency_key is not None
        key = decision.idempotency_key
        launcher = self.launchers.get(model)
        now_ms = ms(self.clock()) or 0
        run = RetrainRun(
            id=key, model=model, reason=decision.reason, idempotency_key=key,
            launcher=launcher.type if launcher is not None else "none", status=LAUNCHING,
            started_at_ms=now_ms,
            # ours to launch; after the lease (we died launching) any replica's tick may
            detail={"request": request.to_dict(), "attempts": 0,
                    "next_attempt_ms": now_ms + self.launch_lease_ms},
        )
        with self.store.transaction() as tx:
            self.save_state(decision.state, tx)
            created = tx.create_run(run)
        self.metrics.count_retrain_trigger(model, decision.reason)
        if not created:
            # the same key was launched before (a replay): the run record is the truth
            self.metrics.count_retrain_launch(model, run.launcher, "duplicate")
            self._log(model, "retrain", decision, f"; run {key} exists, not launched again")
            return Outcome(model, "retrain", decision.reason, decision.sentence, key, "duplicate",
                           {"id": key})
        status, ref = self._launch(model, run, request, attempt=1)
        suffix = f"; run {ref.launcher} {ref.run_id} started" if ref else f"; launch {status}"
        self._log(model, "retrain", decision, suffix)
        self._settle(model, key, status, ref)
        shown = {"id": key, **(ref.to_dict() if ref else {})}
        return Outcome(model, "retrain", decision.reason, decision.sentence + suffix, key, status,
                       shown)

    def _launch(
        self, model: str, run: RetrainRun, request: LaunchRequest, attempt: int
    ) -> tuple[str, RunRef | None]:
        """One launch attempt; records the outcome on the run. Never raises LaunchError."""
        launcher = self.launchers.get(model)
        detail = {**run.detail, "attempts": attempt}
        try:
            if launcher is None:
                raise LaunchError(f"models.{model}.retrain.launcher is not set", retryable=False)
            ref = launcher.launch(request)
        except Exception as exc:
            retry = isinstance(exc, LaunchError) and exc.retryable
            error = str(exc) if isinstance(exc, LaunchError) else f"{type(exc).__name__}: {exc}"
            if retry and attempt < self.max_launch_attempts:
                wait = min(self.retry_base_seconds * 2 ** (attempt - 1), self.retry_max_seconds)
                next_ms = (ms(self.clock()) or 0) + int(wait * 1000)
                self.store.update_run(run.id, status=RETRYING,
                                      detail={**detail, "error": error, "next_attempt_ms": next_ms})
                self.metrics.count_retrain_launch(model, run.launcher, "retrying")
                log.warning("retrain %s: launch of %s failed (%s); retrying in %.0fs",
                            model, run.id, error, wait)
                return RETRYING, None
            self.store.update_run(run.id, status="failed", finished_at_ms=ms(self.clock()),
                                  detail={**detail, "error": error})
            self.metrics.count_retrain_launch(model, run.launcher, "failed")
            log.error("retrain %s: launch of %s failed for good: %s", model, run.id, error)
            return "failed", None
        self.store.update_run(run.id, status=RUNNING, external_id=ref.run_id,
                              detail={**detail, "ref": ref.to_dict()})
        self.metrics.count_retrain_launch(model, run.launcher, "started")
        return "started", ref

    def _settle(self, model: str, key: str, status: str, ref: RunRef | None) -> None:
        """Close the policy's "running" when nothing more can be learnt about the run."""
        launcher = self.launchers.get(model)
        if status == "failed":
            self.handle(model, RunFinished(key, "failed", "launch failed"))
        elif status == "started" and launcher is not None and not launcher.tracks_status:
            self.store.update_run(key, status="unknown", finished_at_ms=ms(self.clock()))
            self.handle(model, RunFinished(key, "unknown", f"{launcher.type} reports no status"))

    # -- the scheduled job (monitor.runtime.jobs) ----------------------------------
    def tick(self) -> None:
        """Decide on queued evidence, retry due launches, poll running runs, close runs
        that finished."""
        self.drain()
        for model in self.config.models:
            try:
                with self._lock:
                    self._tick_model(model)
            except Exception:  # a tick must never kill the timer; the next one retries
                log.exception("retrain %s: status poll failed", model)

    def _tick_model(self, model: str) -> None:
        state = self.load_state(model)
        if state.phase != "running" or state.running_key is None:
            return
        key = state.running_key
        run = self.store.run_by_key(key)
        if run is None:
            self.handle(model, RunFinished(key, "unknown", "no run record"))
            return
        if run.status in FINISHED_RUN_STATUSES:
            self.handle(model, RunFinished(key, run.status, "recorded"))  # type: ignore[arg-type]
        elif run.status in (LAUNCHING, RETRYING):
            due = int(run.detail.get("next_attempt_ms") or 0) <= (ms(self.clock()) or 0)
            if due:
                request = launch_request_from_dict(run.detail["request"])
                attempt = int(run.detail.get("attempts") or 0) + 1
                lease = (ms(self.clock()) or 0) + self.launch_lease_ms
                if not self.store.claim_launch(run.id, attempt - 1, lease):
                    return  # another replica took this attempt
                status, ref = self._launch(model, run, request, attempt)
                self.store.log_decision(model, "launch", f"retrain {model}: launch of {key} "
                                        f"attempt {attempt}: {status}")
                self._settle(model, key, status, ref)
        elif run.status == RUNNING:
            self._poll(model, run)

    def _poll(self, model: str, run: RetrainRun) -> None:
        launcher = self.launchers.get(model)
        ref_data = run.detail.get("ref")
        if launcher is None or not ref_data:
            return
        try:
            status = launcher.status(RunRef.from_dict(dict(ref_data)))
        except LaunchError as exc:
            log.warning("retrain %s: status of %s unavailable: %s", model, run.id, exc)
            return
        if status.state == "running":
            return
        # "unknown" from a tracking launcher: it forgot the run (a restart); stop waiting
        tail = status.detail[-2000:]
        self.store.update_run(run.id, status=status.state, finished_at_ms=ms(self.clock()),
                              detail={**run.detail, "outcome": tail, "exit_code": status.exit_code})
        self.handle(model, RunFinished(run.idempotency_key, status.state, tail))

    def close(self) -> None:
        """Close every launcher that can be closed (the command launcher stops its runs:
        a run outliving the service could never be reported)."""
        for model, launcher in self.launchers.items():
            close = getattr(launcher, "close", None)
            if callable(close):
                self._guarded_call(close, f"retrain {model}: closing the launcher failed")

    # -- helpers ------------------------------------------------------------------
    def _window_evidence(self, result: Mapping[str, Any]) -> WindowEvidence:
        # a window result repeats the latest performance window; that one is counted
        # once, by on_performance, so it is left out here
        evidence = WindowEvidence.from_result({**result, "performance": None})
        return replace(evidence, window_id=window_id(result))

    def _guarded(self, model: str, evidence: Evidence) -> None:
        """For the consumer thread: a failing reaction is logged, never raised."""
        if model not in self.policies:
            return
        self._guarded_call(lambda: self.handle(model, evidence))

    @staticmethod
    def _guarded_call(call: Callable[[], object],
                      failure: str = "retrain reactor failed; the evidence is in the store",
                      ) -> None:
        try:
            call()
        except Exception:
            log.exception("%s", failure)

    def _log(self, model: str, kind: str, decision: Decision, suffix: str = "") -> None:
        sentence = decision.sentence + suffix
        log.info("%s", sentence)
        self.store.log_decision(model, kind, sentence)
