"""The whole alert loop with real processes on loopback ports.

Tansu (Kafka) -> ``driftloop serve`` -> a real Prometheus scraping it with the
shipped rules -> a real Alertmanager with the shipped config -> back into
driftloop's ``POST /api/v1/alerts``. The retrain command appends one line per
run to a file: the loop must run it exactly once although driftloop's own
drift policy and Alertmanager's repeats both ask within the cooldown, a
request without the token starts nothing, and a restart during the cooldown
changes nothing.

The Prometheus and Alertmanager configs are the shipped files loaded as YAML
with only ports, intervals, ``for`` durations and the token file changed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.baseline import build_baseline
from monitor.cli.examples import FEATURES, generate
from monitor.cli.replay import prediction_events, produce
from monitor.ingest import ensure_topics
from monitor.store import Store
from tests.support.procs import (
    Managed,
    free_port,
    start_alertmanager,
    start_prometheus,
    start_tansu,
    wait_for,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_RULES = ROOT / "prometheus" / "rules" / "driftloop.rules.yml"
SHIPPED_PROMETHEUS = ROOT / "prometheus" / "prometheus.yml"
SHIPPED_ALERTMANAGER = ROOT / "prometheus" / "alertmanager.yml"
DRIFTLOOP = Path(sys.executable).with_name("driftloop")
TOKEN = "e2e-bearer-token"
WINDOW_ROWS = 1000
DRIFTED_WINDOW = 5  # monitor.examples.SHIFTS: 5 of 8 features shifted in window 5


@dataclass
class Loop:
    workdir: Path
    port: int
    config: Path
    runs_file: Path
    state_url: str
    bootstrap: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_driftloop(self) -> Managed:
        env = {**os.environ, "DRIFTLOOP_TOKEN": TOKEN}
        env.pop("DRIFTLOOP__SERVER__PORT", None)
        proc = Managed("driftloop", [str(DRIFTLOOP), "serve", "--config", str(self.config)],
                       self.workdir / "driftloop.log", self.port, env=env).start()
        wait_for(lambda: httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200, 60,
                 "driftloop serve", proc)
        return proc

    def runs(self) -> list[str]:
        return self.runs_file.read_text().splitlines() if self.runs_file.exists() else []

    def decisions(self) -> list[str]:
        with Store(self.state_url) as store:
            return [d.sentence for d in store.decisions("carloan", limit=500)]

    def counter(self, family: str, label: str) -> dict[str, float]:
        """One counter of driftloop's /metrics, by one label."""
        text = httpx.get(f"{self.url}/metrics", timeout=2).text
        return {sample.labels[label]: sample.value
                for found in text_string_to_metric_families(text) if found.name == family
                for sample in found.samples if sample.name.endswith("_total")}

    def alert_decisions(self, *, held_by_cooldown: bool = False) -> int:
        """How many times an alert reached the policy (only new ones held by the cooldown)."""
        return sum("alert DriftloopDatasetDrift" in s
                   and (not held_by_cooldown or "in cooldown until" in s)
                   for s in self.decisions())


def _write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _prometheus_config(workdir: Path, driftloop_port: int, alertmanager_port: int) -> Path:
    rules = yaml.safe_load(SHIPPED_RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    config = yaml.safe_load(SHIPPED_PROMETHEUS.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{alertmanager_port}"]
    for job in config["scrape_configs"]:
        if job["job_name"] == "driftloop":
            job["static_configs"][0]["targets"] = [f"127.0.0.1:{driftloop_port}"]
    # rule_files stay as shipped (relative to the config file's directory)
    for relative in config["rule_files"]:
        _write_yaml(workdir / "prometheus" / relative, rules)
    return _write_yaml(workdir / "prometheus" / "prometheus.yml", config)


def _alertmanager_config(workdir: Path, driftloop_port: int) -> Path:
    token_file = workdir / "driftloop_token"
    token_file.write_text(TOKEN)
    config = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text())
    # short enough that Alertmanager repeats the firing group within the test
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="2s")
    hooks = [hook for receiver in config["receivers"]
             for hook in receiver.get("webhook_configs", [])]
    assert hooks, "the shipped alertmanager.yml has no webhook receiver"
    for hook in hooks:
        hook["url"] = f"http://127.0.0.1:{driftloop_port}/api/v1/alerts"
        hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return _write_yaml(workdir / "alertmanager.yml", config)


def _driftloop_config(workdir: Path, bootstrap: str, port: int, runs_file: Path,
                      state_url: str) -> Path:
    data = generate(seed=11, reference_rows=5000, window_rows=WINDOW_ROWS)
    baseline = build_baseline(data.reference, "carloan", target="repaid",
                              prediction="prediction", score="score",
                              id_column="request_id", timestamp="timestamp")
    baseline_path = baseline.save(workdir / "baseline.json")
    append = (f"open({str(runs_file)!r}, 'a').write('{{idempotency_key}} {{reason}}\\n')")
    config = {
        "kafka": {"bootstrap_servers": [bootstrap], "group_id": "driftloop-e2e",
                  "commit_interval_seconds": 0.5},
        "state": {"url": state_url},
        "server": {"host": "127.0.0.1", "port": port, "auth_token_env": "DRIFTLOOP_TOKEN"},
        "models": {"carloan": {
            "baseline": str(baseline_path),
            "window": {"rows": WINDOW_ROWS},
            "retrain": {"on": ["dataset_drift", "alert"], "consecutive_windows": 1,
                        "cooldown": "1h",
                        "launcher": {"type": "command",
                                     "argv": [sys.executable, "-c", append]}},
        }},
    }
    drifting = data.current.iloc[(DRIFTED_WINDOW - 1) * WINDOW_ROWS:DRIFTED_WINDOW * WINDOW_ROWS]
    events = prediction_events(drifting, model="carloan", version="1", features=FEATURES,
                               prediction="prediction", score="score")
    (workdir / "events.jsonl").write_bytes(b"\n".join(value for _key, value in events))
    return _write_yaml(workdir / "driftloop.yaml", config)


def _produce_drift(loop: Loop, copies: range) -> None:
    """``len(copies)`` drifting windows (the drifted example window, new request ids)."""
    values = (loop.workdir / "events.jsonl").read_bytes().splitlines()
    records = ((f"{copy}-{i}".encode(), value) for copy in copies
               for i, value in enumerate(values))
    assert produce([loop.bootstrap], "predictions", records) == len(copies) * len(values)


def _alert_payload(fingerprint: str, starts_at: str) -> dict[str, Any]:
    labels = {"alertname": "DriftloopDatasetDrift", "model": "carloan", "version": "1",
              "action": "retrain", "severity": "warning"}
    return {"version": "4", "status": "firing", "receiver": "driftloop", "groupKey": "{}",
            "groupLabels": {}, "commonLabels": labels, "commonAnnotations": {},
            "externalURL": "http://am", "truncatedAlerts": 0,
            "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                        "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "", "fingerprint": fingerprint}]}


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[tuple[Loop, list[Managed]]]:
    started: list[Managed] = []
    try:
        tansu = start_tansu(tmp_path)
        started.append(tansu)
        bootstrap = f"127.0.0.1:{tansu.port}"
        ensure_topics(bootstrap, ["predictions", "labels", "driftloop-dlq"])
        port = free_port()
        state_url = f"sqlite:///{tmp_path / 'state.db'}"
        runs_file = tmp_path / "retrain-runs.txt"
        config = _driftloop_config(tmp_path, bootstrap, port, runs_file, state_url)
        alertmanager = start_alertmanager(tmp_path, _alertmanager_config(tmp_path, port))
        started.append(alertmanager)
        started.append(start_prometheus(tmp_path, _prometheus_config(tmp_path, port,
                                                                      alertmanager.port)))
        yield Loop(tmp_path, port, config, runs_file, state_url, bootstrap), started
    finally:
        for proc in reversed(started):
            proc.stop()


def test_drift_and_repeated_alerts_retrain_once_even_across_a_restart(
        loop: tuple[Loop, list[Managed]]) -> None:
    env, started = loop
    driftloop = env.start_driftloop()
    started.append(driftloop)

    # 1. two drifting windows: driftloop's own policy launches once, then holds (cooldown)
    _produce_drift(env, range(2))
    wait_for(lambda: len(env.runs()) == 1, 30, "the retrain command", driftloop)
    key, reason = env.runs()[0].split()
    assert reason == "dataset_drift"
    held = f"no retrain for carloan: run {key} (dataset_drift) still running"
    wait_for(lambda: any(s.startswith(held) or ("in cooldown until" in s and "(dataset drift" in s)
                         for s in env.decisions()), 30, "the second drifting window", driftloop)

    # 2. Prometheus fires the shipped DriftloopDatasetDrift rule; Alertmanager delivers it
    # and repeats it; driftloop records it once and the policy holds every copy
    wait_for(lambda: env.alert_decisions() >= 3, 45, "three webhook deliveries", driftloop)
    with Store(env.state_url) as store:
        alerts = store.alerts("carloan")
    assert [a.payload["labels"]["alertname"] for a in alerts] == ["DriftloopDatasetDrift"]
    sentences = env.decisions()
    # the first delivery is held by the cooldown, or by the run when it is still going
    assert any("alert DriftloopDatasetDrift firing since" in s
               and ("in cooldown until" in s or "still running since" in s) for s in sentences)
    assert any("alert DriftloopDatasetDrift" in s and "already handled" in s for s in sentences)
    assert env.counter("driftloop_retrain_triggers", "reason") == {"dataset_drift": 1.0}
    assert env.counter("driftloop_retrain_launches", "outcome") == {"started": 1.0}

    # 3. no token: 401, nothing recorded, nothing started
    unsigned = _alert_payload("feedface", "2026-01-05T12:00:00Z")
    response = httpx.post(f"{env.url}/api/v1/alerts", json=unsigned, timeout=5)
    assert response.status_code == 401, response.text
    with Store(env.state_url) as store:
        assert all(a.fingerprint != "feedface" for a in store.alerts())

    # 4. restart during the cooldown (SIGTERM, same state DB). The new process starts with
    # empty gauges, so Prometheus resolved the alert while it was down: replay Alertmanager's
    # last delivery by hand, then drift once more so the real loop fires a new alert
    driftloop.stop()
    assert driftloop.popen.returncode == 0, driftloop.log_tail()
    driftloop = env.start_driftloop()
    started.append(driftloop)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    first = alerts[0].payload
    replay = _alert_payload(first["fingerprint"], first["starts_at"])
    response = httpx.post(f"{env.url}/api/v1/alerts", json=replay, headers=auth, timeout=5)
    assert response.status_code == 200, response.text
    assert response.json()["duplicates"] == 1
    assert "already handled" in response.json()["decisions"][0]["sentence"]
    # (a retry Alertmanager had in flight during the restart may also land: already handled)
    before = env.alert_decisions(held_by_cooldown=True)
    _produce_drift(env, range(2, 3))
    wait_for(lambda: env.alert_decisions(held_by_cooldown=True) > before, 45,
             "a new alert after the restart", driftloop)
    assert env.runs() == [f"{key} dataset_drift"]
