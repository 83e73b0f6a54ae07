from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime

import pytest

from triggers.launchers import CommandLauncher, LaunchError, LaunchRequest, RunRef
from triggers.launchers.command import OUTPUT_TAIL_BYTES

REQUEST = LaunchRequest(
    "carloan", "3", "dataset_drift", datetime(2019, 5, 1, tzinfo=UTC),
    datetime(2019, 5, 31, 8, tzinfo=UTC), "carloan-dataset_drift-0123456789abcdef", "retrain",
)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_argv_placeholders_are_filled_without_a_shell() -> None:
    launcher = CommandLauncher(
        [*python("import sys; print(sys.argv[1:])"), "{model}", "{version}", "{reason}",
         "{window_start}", "{window_end}", "{idempotency_key}", "$HOME;{model}"],
    )
    status = launcher.wait(launcher.launch(REQUEST), timeout=30)
    assert status.state == "succeeded"
    assert status.exit_code == 0
    assert status.detail.splitlines() == [
        "exit status 0",
        "['carloan', '3', 'dataset_drift', '2019-05-01T00:00:00Z', '2019-05-31T08:00:00Z', "
        "'carloan-dataset_drift-0123456789abcdef', '$HOME;carloan']",
    ]


def test_launch_returns_while_the_command_runs() -> None:
    launcher = CommandLauncher(python("import time; time.sleep(60)"), timeout=120)
    ref = launcher.launch(REQUEST)
    assert launcher.status(ref).state == "running"
    # stop our own child by its PID
    os.kill(int(ref.extra["pid"]), signal.SIGKILL)
    status = launcher.wait(ref, timeout=30)
    assert (status.state, status.exit_code) == ("failed", -signal.SIGKILL)


def test_nonzero_exit_is_failed_with_output_tail() -> None:
    code = (
        "import sys; sys.stdout.write('x' * 10000 + 'END'); sys.stderr.write('boom'); sys.exit(3)"
    )
    launcher = CommandLauncher(python(code))
    status = launcher.wait(launcher.launch(REQUEST), timeout=30)
    assert (status.state, status.exit_code) == ("failed", 3)
    head, _, output = status.detail.partition("\n")
    assert head == "exit status 3"
    assert len(output.encode()) == OUTPUT_TAIL_BYTES
    assert output.endswith("ENDboom")


def test_timeout_kills_the_command() -> None:
    launcher = CommandLauncher(python("print('started', flush=True); import time; time.sleep(60)"),
                               timeout=0.5)
    status = launcher.wait(launcher.launch(REQUEST), timeout=30)
    assert status.state == "failed"
    assert status.detail.startswith("timed out after 0.5s\nstarted")


def test_same_key_twice_is_the_same_run() -> None:
    launcher = CommandLauncher(python("pass"))
    first = launcher.launch(REQUEST)
    assert launcher.launch(REQUEST) == first
    launcher.wait(first, timeout=30)


def test_env_and_run_variables_reach_the_command() -> None:
    code = "import os; print(os.environ['EXTRA'], os.environ['DRIFTLOOP_IDEMPOTENCY_KEY'])"
    launcher = CommandLauncher(python(code), env={"EXTRA": "yes"})
    status = launcher.wait(launcher.launch(REQUEST), timeout=30)
    assert status.detail.splitlines()[1] == f"yes {REQUEST.idempotency_key}"


def test_missing_program_is_a_final_launch_error() -> None:
    launcher = CommandLauncher(["/nonexistent/train", "{model}"])
    with pytest.raises(LaunchError) as info:
        launcher.launch(REQUEST)
    assert info.value.retryable is False
    assert "command launcher: cannot start ['/nonexistent/train', 'carloan']" in str(info.value)


def test_unknown_run_after_restart_is_unknown() -> None:
    status = CommandLauncher(python("pass")).status(RunRef("command", "pid-1", "other-key"))
    assert status.state == "unknown"


def test_unknown_placeholder_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder \{window\}"):
        CommandLauncher(["train", "{window}"])
