"""``driftloop serve`` refuses bad start-up input: the real console script exits non-zero
with one ``driftloop: error:`` line on stderr and no Python traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

DRIFTLOOP = Path(sys.executable).with_name("driftloop")
# a refusal takes about 2 s (imports); a service that starts instead is stopped here
TIMEOUT_SECONDS = 20.0

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Exit:
    code: int
    stdout: str
    stderr: str

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("driftloop: error:")]


def serve(config: Path, tmp_path: Path) -> Exit:
    # no DRIFTLOOP__ override or token from the test's environment reaches the service
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP")}
    process = subprocess.Popen(
        [str(DRIFTLOOP), "serve", "--config", str(config)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"driftloop serve --config {config} kept running instead of refusing to "
                    f"start; stderr tail: {stderr[-600:]!r}")
    return Exit(process.returncode, stdout, stderr)


def assert_refused(result: Exit, code: int | None, *fragments: str) -> None:
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream and 'File "' not in stream, stream
    assert result.code != 0, result.stderr
    if code is not None:
        assert result.code == code, result.stderr
    [line] = result.error_lines()
    for fragment in fragments:
        assert fragment in line, line


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def model_config(tmp_path: Path, baseline: Path) -> Path:
    return write(tmp_path / "driftloop.yaml",
                 f"state:\n  url: sqlite:///{tmp_path / 'state.db'}\n"
                 "kafka:\n  bootstrap_servers: ['127.0.0.1:1']\n"
                 f"models:\n  carloan:\n    baseline: {baseline}\n")


def test_bad_config_exits_2_naming_key_value_and_expectation(tmp_path: Path) -> None:
    config = write(tmp_path / "driftloop.yaml", "server:\n  port: 70000\n")
    assert_refused(serve(config, tmp_path), 2,
                   "config server.port: got 70000, expected a port number from 0 to 65535")


def test_unparsable_config_exits_2_naming_the_line(tmp_path: Path) -> None:
    config = write(tmp_path / "driftloop.yaml", "server:\n  port: [8080\n")
    assert_refused(serve(config, tmp_path), 2, f"config {config} line ", "not valid YAML")


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    assert_refused(serve(tmp_path / "nope.yaml", tmp_path), 2, "nope.yaml: file not found")


def test_missing_baseline_exits_2_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing-baseline.json"
    assert_refused(serve(model_config(tmp_path, missing), tmp_path), 2,
                   f"baseline {missing}", "not found")


def test_malformed_baseline_exits_2_naming_the_file(tmp_path: Path) -> None:
    broken = write(tmp_path / "baseline.json", '{"schema": "driftloop/baseline/v1", ')
    assert_refused(serve(model_config(tmp_path, broken), tmp_path), 2,
                   f"baseline {broken}", "not valid JSON")


def test_baseline_of_another_schema_exits_2(tmp_path: Path) -> None:
    other = write(tmp_path / "baseline.json", '{"version": 1}')
    assert_refused(serve(model_config(tmp_path, other), tmp_path), 2,
                   f"baseline {other}", "driftloop/baseline/v2")


def test_unreachable_state_store_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    config = write(tmp_path / "driftloop.yaml",
                   "state:\n  url: postgresql+psycopg://postgres@127.0.0.1:1/x\n"
                   "kafka:\n  bootstrap_servers: ['127.0.0.1:1']\n")
    assert_refused(serve(config, tmp_path), None, "state")


def test_public_address_without_a_token_is_refused(tmp_path: Path) -> None:
    variable = f"DRIFTLOOP_TEST_TOKEN_{uuid.uuid4().hex[:8].upper()}"  # never set
    config = write(tmp_path / "driftloop.yaml",
                   f"server:\n  host: 0.0.0.0\n  port: 0\n  auth_token_env: {variable}\n"
                   f"state:\n  url: sqlite:///{tmp_path / 'state.db'}\n"
                   "kafka:\n  bootstrap_servers: ['127.0.0.1:1']\n")
    assert_refused(serve(config, tmp_path), 2, "server.host '0.0.0.0'", "token")


def test_unreachable_broker_at_start_is_not_ready_rather_than_a_crash(tmp_path: Path) -> None:
    """Design 9: a broker outage keeps the service up, reporting not ready."""
    with socket.socket() as probe:  # a free loopback port for the API
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write(tmp_path / "driftloop.yaml",
                   f"server:\n  port: {port}\n"
                   f"state:\n  url: sqlite:///{tmp_path / 'state.db'}\n"
                   "kafka:\n  bootstrap_servers: ['127.0.0.1:1']\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP")}
    process = subprocess.Popen(
        [str(DRIFTLOOP), "serve", "--config", str(config)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    ready: httpx.Response | None = None
    try:
        for _ in range(200):  # up to about 60 s: the process may also die first
            if process.poll() is not None:
                break
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.3)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
    assert "Traceback" not in stderr + stdout, stderr[-1500:]
    assert ready is not None, f"the API never answered; exit {process.returncode}"
    assert ready.status_code == 503 and "broker" in ready.json()["detail"], ready.text
    assert process.returncode == 0, stderr[-600:]


def test_protect_reads_without_a_token_is_refused(tmp_path: Path) -> None:
    variable = f"DRIFTLOOP_TEST_TOKEN_{uuid.uuid4().hex[:8].upper()}"  # never set
    config = write(tmp_path / "driftloop.yaml",
                   f"server:\n  port: 0\n  auth_token_env: {variable}\n  protect_reads: true\n"
                   f"state:\n  url: sqlite:///{tmp_path / 'state.db'}\n"
                   "kafka:\n  bootstrap_servers: ['127.0.0.1:1']\n")
    assert_refused(serve(config, tmp_path), 2, "server.protect_reads: got true",
                   "server.auth_token_env")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def test_sigterm_stops_a_running_retrain_command_and_its_children(
        tmp_path: Path, example_baseline: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pid_file = tmp_path / "grandchild.pid"
    script = (f"import subprocess, time; p = subprocess.Popen(['sleep', '300']); "
              f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(300)")
    config = write(tmp_path / "driftloop.yaml",
                   f"server:\n  port: {port}\n  auth_token_env: DRIFTLOOP_TEST_TOKEN\n"
                   f"state:\n  url: sqlite:///{tmp_path / 'state.db'}\n"
                   "kafka:\n  bootstrap_servers: ['127.0.0.1:1']\n"
                   f"models:\n  carloan:\n    baseline: {example_baseline}\n"
                   f"    retrain:\n      launcher:\n        type: command\n"
                   f"        argv: [{sys.executable}, -c, {script!r}]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP")}
    env["DRIFTLOOP_TEST_TOKEN"] = "t0ken-for-the-test"
    process = subprocess.Popen(
        [str(DRIFTLOOP), "serve", "--config", str(config)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    grandchild = None
    try:
        started = None
        for _ in range(200):
            if process.poll() is not None:
                break
            try:
                started = httpx.post(
                    f"http://127.0.0.1:{port}/api/v1/models/carloan/retrain", json={},
                    headers={"Authorization": "Bearer t0ken-for-the-test"}, timeout=5.0)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert started is not None and started.status_code == 202, started
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text():
                grandchild = int(pid_file.read_text())
                break
            time.sleep(0.1)
        assert grandchild is not None and _alive(grandchild)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            _, stderr = process.communicate()
    assert process.returncode == 0, stderr[-600:]
    for _ in range(100):  # the reaper may take a moment
        if not _alive(grandchild):
            break
        time.sleep(0.05)
    survived = _alive(grandchild)
    if survived:  # stopped here by its PID, so a failing run leaves nothing behind
        os.kill(grandchild, signal.SIGKILL)
    assert not survived, f"the command's child {grandchild} outlived the service"
