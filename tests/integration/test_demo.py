"""``driftloop demo --short`` end to end, as a subprocess with its own broker, MLflow and service.

Each test runs the demo with ``--state-file`` (where it writes its URLs, its children's
PIDs and the story's phase) and, but for the interruption test, ``--keep-running``, so
the stack is still up when the story ends. The sequence of decisions is read from the
service's API (polled while the story runs: the API lists the newest ten) and the MLflow
registry, never from what the demo prints. Ctrl-C (SIGINT, by PID) then ends the demo,
which must stop every process it started and remove its temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import Managed
from tests.support.service import poll

pytestmark = pytest.mark.integration

MODEL = "carloan"
STORY_SECONDS = 240.0


@dataclass
class DemoRun:
    proc: Managed
    state_file: Path
    decisions: dict[tuple[str, str, str], None] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        try:
            return dict(orjson.loads(self.state_file.read_bytes()))
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}

    def api(self, path: str) -> dict[str, Any]:
        response = httpx.get(f"{self.state()['urls']['service']}{path}", timeout=10)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_phase(self, phases: set[str], timeout: float = STORY_SECONDS) -> dict[str, Any]:
        """Poll the state file until the story reaches one of ``phases``, reading the
        model's decisions from the API meanwhile."""

        def reached() -> dict[str, Any] | None:
            state = self.state()
            assert state.get("error") is None, f"{state['error']}\n{self.proc.log_tail(60)}"
            if state.get("phase") not in (None, "setting up"):
                self.collect()
            return state if state.get("phase") in phases else None

        return dict(poll(reached, timeout, f"the demo's phase in {sorted(phases)}", self.proc,
                         interval=0.3))

    def collect(self) -> None:
        try:
            found = self.api(f"/api/v1/models/{MODEL}")["decisions"]
        except httpx.HTTPError:
            return
        for decision in reversed(found):
            self.decisions.setdefault((decision["at"], decision["kind"], decision["sentence"]))

    def first(self, kind: str, test: Callable[[str], bool]) -> int:
        """Index, in time order, of the first decision of ``kind`` whose sentence passes."""
        ordered = sorted(self.decisions)
        found = [i for i, (_, k, sentence) in enumerate(ordered) if k == kind and test(sentence)]
        assert found, f"no {kind} decision as expected among:\n" + "\n".join(
            f"{at} {k}: {s}" for at, k, s in ordered)
        return found[0]

    def interrupt(self) -> int:
        """Ctrl-C (SIGINT to the demo's PID); its exit code."""
        os.kill(self.proc.pid, signal.SIGINT)
        self.proc.popen.wait(90)
        return int(self.proc.popen.returncode)


@contextmanager
def running_demo(tmp_path: Path, *args: str) -> Iterator[DemoRun]:
    """``driftloop demo --short ARGS``; a test that fails before its own Ctrl-C still ends
    the demo with one (then its children by PID, should the demo not stop them)."""
    state_file = tmp_path / "demo-state.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP")}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path))
    argv = [sys.executable, "-m", "monitor.cli", "demo", "--short", "--state-file",
            str(state_file), *args]
    run = DemoRun(Managed("demo", argv, tmp_path / "demo.log", 0, env=env).start(), state_file)
    try:
        yield run
    finally:
        if run.proc.alive():
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.interrupt()
        state = run.state()
        for pid in [*state.get("children", {}).values(), *state.get("retrain_pids", [])]:
            if _still_ours(pid, state):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)


def _cmdline(pid: int | str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def _still_ours(pid: int, state: dict[str, Any]) -> bool:
    """The PID still runs one of the demo's children (its folder or broker port on its
    command line), not a process that reused the number."""
    cmdline = _cmdline(pid)
    return bool(cmdline) and (state["workdir"] in cmdline or state["bootstrap"] in cmdline)


def assert_all_gone(state: dict[str, Any]) -> None:
    """Every child the demo started has exited, nothing runs from its folder, the folder
    is gone."""
    workdir = state["workdir"]
    for name, pid in state["children"].items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still exists"
    mine = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != mine:
            cmdline = _cmdline(entry.name)
            assert workdir not in cmdline, f"pid {entry.name} still runs from {workdir}: {cmdline}"
    assert not Path(workdir).exists()
    assert state["phase"] == "stopped" and state["stopped"] is True


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def registry(run: DemoRun) -> MlflowClient:
    return MlflowClient(run.state()["urls"]["mlflow"])


def status_tag(client: MlflowClient, version: str) -> str:
    return str(client.get_model_version(MODEL, version).tags["driftloop.canary.status"])


def aliases(client: MlflowClient) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}


def windows(run: DemoRun, version: str) -> list[dict[str, Any]]:
    """The version's window results, oldest first."""
    found = run.api(f"/api/v1/models/{MODEL}/windows?limit=1000")["windows"]
    return [w for w in reversed(found) if w["version"] == version]


def assert_drift_detected_on_the_first_version(run: DemoRun) -> None:
    first = windows(run, "1")
    drifted = [i for i, w in enumerate(first) if w["dataset_drift"]]
    assert drifted, "no drifted window of version 1"
    assert not any(w["dataset_drift"] for w in first[:drifted[0]])
    assert drifted[0] > 0, "the steady phase had no clean window"
    assert any(w["performance"] and w["performance"]["degraded"] for w in first)


def retrain_run(run: DemoRun) -> dict[str, Any]:
    runs = run.api(f"/api/v1/models/{MODEL}")["retrain_runs"]
    assert len(runs) == 1, runs
    assert runs[0]["status"] == "succeeded", runs
    return dict(runs[0])


def registered_by(client: MlflowClient, key: str) -> tuple[str, str]:
    """(version, run id) of the version the retrain with launch key ``key`` registered."""
    version = client.get_model_version(MODEL, "2")
    assert version.run_id is not None
    assert client.get_run(version.run_id).data.tags["driftloop.idempotency_key"] == key
    return "2", version.run_id


def test_demo_default_story_promotes_the_retrained_version_then_stops_clean(
        tmp_path: Path) -> None:
    with running_demo(tmp_path, "--keep-running") as run:
        state = run.wait_phase({"exploring"})
        assert state["outcome"] == "promoted"
        assert_drift_detected_on_the_first_version(run)
        retrain = retrain_run(run)
        assert retrain["reason"] in ("dataset_drift", "performance_drop")
        client = registry(run)
        version, run_id = registered_by(client, retrain["id"])
        assert aliases(client) == {"champion": version, "previous_champion": "1"}
        assert status_tag(client, version) == "promoted"
        canary = run.api(f"/api/v1/models/{MODEL}/canary")
        assert (canary["phase"], canary["challenger"], canary["verdict"]) == (
            "succeeded", "2", "pass")
        # drift is gone against the new champion's own baseline
        settled = [w for w in windows(run, version) if w["baseline"] == f"runs:/{run_id}"]
        assert settled and not any(w["dataset_drift"] for w in settled)
        detected = run.first("hold", lambda s: "in 1 of 2 consecutive windows needed" in s
                             and ("dataset drift" in s or "performance drop" in s))
        launched = run.first("retrain", lambda s: s.startswith(f"retrain {MODEL}: ")
                             and "in 2 consecutive windows" in s)
        started = run.first("canary", lambda s: s.startswith(
            f"start canary {MODEL} v2 against champion v1 (found by retrain)"))
        promoted = run.first("canary", lambda s: s.startswith(f"promote {MODEL} v2:"))
        assert detected < launched < started < promoted
        assert run.interrupt() == 0
        assert_all_gone(run.state())


def test_demo_bad_challenger_is_rolled_back_and_the_first_version_keeps_serving(
        tmp_path: Path) -> None:
    with running_demo(tmp_path, "--keep-running", "--scenario", "bad-challenger") as run:
        state = run.wait_phase({"exploring"})
        assert state["outcome"] == "rolled back"
        assert_drift_detected_on_the_first_version(run)
        client = registry(run)
        version, _ = registered_by(client, retrain_run(run)["id"])
        assert aliases(client) == {"champion": "1"}
        assert status_tag(client, version) == "rejected"
        canary = run.api(f"/api/v1/models/{MODEL}/canary")
        assert (canary["phase"], canary["verdict"]) == ("rolled_back", "fail")
        performance = next(c for c in canary["evidence"]["checks"] if c["name"] == "performance")
        assert performance["outcome"] == "fail"
        launched = run.first("retrain", lambda s: s.startswith(f"retrain {MODEL}: "))
        started = run.first("canary", lambda s: s.startswith(f"start canary {MODEL} v2"))
        rolled_back = run.first("canary", lambda s: s.startswith(f"roll back {MODEL} v2:"))
        assert launched < started < rolled_back
        assert run.interrupt() == 0
        assert_all_gone(run.state())


def test_demo_alert_scenario_with_kserve_events_retrains_on_the_alertmanager_webhook(
        tmp_path: Path) -> None:
    with running_demo(tmp_path, "--keep-running", "--scenario", "alert",
                      "--format", "kserve") as run:
        state = run.wait_phase({"exploring"})
        assert state["outcome"] == "promoted"
        assert_drift_detected_on_the_first_version(run)
        retrain = retrain_run(run)
        assert retrain["reason"] == "alert"
        client = registry(run)
        version, _ = registered_by(client, retrain["id"])
        assert aliases(client)["champion"] == version
        launched = run.first("retrain", lambda s: s.startswith(
            f"retrain {MODEL}: alert DriftloopDatasetDrift firing since"))
        promoted = run.first("canary", lambda s: s.startswith(f"promote {MODEL} v2:"))
        assert launched < promoted
        # window signals alone never launched: 'alert' is the only reason configured
        assert not any(k == "retrain" and "consecutive windows" in s for _, k, s in run.decisions)
        # KServe CloudEvents, each version on its own endpoint, all decoded
        metrics = httpx.get(state["urls"]["metrics"], timeout=10).text
        for version in ("1", "2"):
            assert metric(metrics, "driftloop_events_total", kind="prediction", version=version) > 0
        assert metric(metrics, "driftloop_events_invalid_total") == 0
        assert run.interrupt() == 0
        assert_all_gone(run.state())


def test_demo_interrupted_while_retraining_stops_every_process_and_removes_its_folder(
        tmp_path: Path) -> None:
    with running_demo(tmp_path) as run:
        state = run.wait_phase({"retraining", "canary"})
        assert Path(state["workdir"]).is_dir() and state["removes_workdir"] is True
        assert set(state["children"]) == {"tansu", "mlflow", "driftloop"}
        assert run.interrupt() == 130
        assert_all_gone(run.state())
        assert "driftloop: demo interrupted" in run.proc.log_tail(20)
