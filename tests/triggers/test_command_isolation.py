"""What the training command sees and leaves behind, with real child processes.

The child is a small Python script that prints its environment as JSON,
starts a grandchild (which inherits its stdout) and prints the grandchild's
PID. After the run ends, times out or is stopped, the grandchild must be gone;
secrets of the service must never reach the child nor the stored output tail.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from triggers.launchers import CommandLauncher, LaunchRequest, RunStatus
from triggers.launchers.command import OUTPUT_TAIL_BYTES

REQUEST = LaunchRequest(
    "carloan", "3", "dataset_drift", datetime(2019, 5, 1, tzinfo=UTC),
    datetime(2019, 5, 31, 8, tzinfo=UTC), "carloan-dataset_drift-0123456789abcdef", "retrain",
)
SECRETS = {
    "DRIFTLOOP_TOKEN": "tok-4f1c9e2a77",
    "GITHUB_TOKEN": "ghp_Zq81LmN0pQ",
    "DRIFTLOOP_GRAFANA_SECRET": "graf-77aa9911",
    "DATABASE_URL": "postgresql://app:pw-5521@db/app",
}

CHILD = """
import json, os, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("GRANDCHILD", grandchild.pid, flush=True)
if os.environ.get("PIDFILE"):
    with open(os.environ["PIDFILE"] + ".tmp", "w") as f:
        f.write(str(grandchild.pid))
    os.rename(os.environ["PIDFILE"] + ".tmp", os.environ["PIDFILE"])
print("ENV", json.dumps(dict(os.environ)), flush=True)
print("ECHO", os.environ.get("ECHO", ""), flush=True)
time.sleep(float(sys.argv[1]))
"""


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (killed, not yet reaped by init) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def gone_soon(pid: int, seconds: float = 10.0) -> bool:
    """Polls: SIGKILL is delivered asynchronously (this bounds a wait, asserts no timing)."""
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def line(status: RunStatus, tag: str) -> str:
    for text in status.detail.splitlines():
        if text.startswith(tag + " "):
            return text[len(tag) + 1:]
    raise AssertionError(f"no {tag} line in {status.detail!r}")


@pytest.fixture
def grandchildren() -> Iterator[list[int]]:
    """PIDs the test's runs started; any still alive at the end is killed by its PID."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def service_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("HOME", "/home/driftloop")


def started_grandchild(pidfile: Path, grandchildren: list[int]) -> int:
    """The grandchild's PID once the child wrote it (bounded poll)."""
    deadline = time.monotonic() + 30
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    grandchildren.append(pid)
    return pid


def run_child(launcher: CommandLauncher, grandchildren: list[int]) -> RunStatus:
    status = launcher.wait(launcher.launch(REQUEST), timeout=60)
    grandchildren.append(int(line(status, "GRANDCHILD")))
    return status


@pytest.mark.usefixtures("service_environment")
def test_command_environment_is_minimal_plus_configured_env(grandchildren: list[int]) -> None:
    launcher = CommandLauncher([sys.executable, "-c", CHILD, "0"], env={"MLFLOW_EXPERIMENT": "x"})
    status = run_child(launcher, grandchildren)
    env = json.loads(line(status, "ENV"))
    assert set(env) == {
        "PATH", "HOME", "LANG", "LC_ALL", "MLFLOW_EXPERIMENT", "DRIFTLOOP_MODEL",
        "DRIFTLOOP_VERSION", "DRIFTLOOP_REASON", "DRIFTLOOP_WINDOW_START",
        "DRIFTLOOP_WINDOW_END", "DRIFTLOOP_IDEMPOTENCY_KEY",
    }
    assert env["PATH"] == os.environ["PATH"]
    assert (env["HOME"], env["LANG"], env["MLFLOW_EXPERIMENT"]) == (
        "/home/driftloop", "C.UTF-8", "x")
    assert (env["DRIFTLOOP_VERSION"], env["DRIFTLOOP_WINDOW_END"]) == ("3", "2019-05-31T08:00:00Z")
    for value in SECRETS.values():
        assert value not in status.detail


@pytest.mark.usefixtures("service_environment")
def test_unset_locale_is_not_invented(
    monkeypatch: pytest.MonkeyPatch, grandchildren: list[int]
) -> None:
    monkeypatch.delenv("LC_ALL")
    status = run_child(CommandLauncher([sys.executable, "-c", CHILD, "0"]), grandchildren)
    assert "LC_ALL" not in json.loads(line(status, "ENV"))


def test_secret_values_are_redacted_from_the_output_tail(grandchildren: list[int]) -> None:
    secret = SECRETS["GITHUB_TOKEN"]
    launcher = CommandLauncher([sys.executable, "-c", CHILD, "0"], env={"ECHO": f"t={secret}!"},
                               redact=[secret, ""])
    status = run_child(launcher, grandchildren)
    assert line(status, "ECHO") == "t=[redacted]!"
    assert secret not in status.detail


def test_a_secret_cut_by_the_tail_boundary_leaves_no_fragment() -> None:
    secret = "S3cr3tT0k3nXYZ"
    # the secret starts 4 bytes before the kept tail: a naive cut keeps "3tT0k3nXYZ"
    code = (f"import sys; sys.stdout.write('A' * 5000 + {secret!r} + "
            f"'B' * ({OUTPUT_TAIL_BYTES} - {len(secret) - 4}))")
    launcher = CommandLauncher([sys.executable, "-c", code], redact=[secret])
    status = launcher.wait(launcher.launch(REQUEST), timeout=60)
    output = status.detail.partition("\n")[2]
    assert output.endswith("B" * 100)
    fragments = {secret[i:i + 3] for i in range(len(secret) - 2)}
    assert not [f for f in fragments if f in output]


def test_grandchild_of_a_finished_run_is_stopped(grandchildren: list[int]) -> None:
    status = run_child(CommandLauncher([sys.executable, "-c", CHILD, "0"]), grandchildren)
    assert (status.state, status.exit_code) == ("succeeded", 0)
    assert gone_soon(grandchildren[0])


def test_timeout_stops_the_command_and_its_grandchild(grandchildren: list[int]) -> None:
    launcher = CommandLauncher([sys.executable, "-c", CHILD, "600"], timeout=3)
    status = run_child(launcher, grandchildren)
    assert status.state == "failed"
    assert status.detail.startswith("timed out after 3s\n")
    assert gone_soon(grandchildren[0])


def test_stop_ends_a_running_command_and_its_grandchild(
    tmp_path: Path, grandchildren: list[int]
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    launcher = CommandLauncher([sys.executable, "-c", CHILD, "600"], timeout=3600,
                               env={"PIDFILE": str(pidfile)})
    ref = launcher.launch(REQUEST)
    grandchild = started_grandchild(pidfile, grandchildren)
    status = launcher.stop(ref)
    assert (status.state, status.exit_code) == ("failed", -signal.SIGKILL)
    assert status.detail.startswith(f"stopped by driftloop\nGRANDCHILD {grandchild}\n")
    assert gone_soon(int(ref.extra["pid"]))
    assert gone_soon(grandchild)


def test_close_stops_every_running_command(tmp_path: Path, grandchildren: list[int]) -> None:
    pidfile = tmp_path / "grandchild.pid"
    launcher = CommandLauncher([sys.executable, "-c", CHILD, "600"], timeout=3600,
                               env={"PIDFILE": str(pidfile)})
    ref = launcher.launch(REQUEST)
    grandchild = started_grandchild(pidfile, grandchildren)
    launcher.close()
    assert launcher.status(ref).detail.startswith("stopped by driftloop\n")
    assert gone_soon(grandchild)
