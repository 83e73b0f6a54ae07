"""One supervised child process: its own process group, a timeout, a bounded redacted tail.

The child leads a new session (so a new process group); whatever it starts
stays in that group unless it calls ``setsid`` itself. When the child exits,
times out or is stopped, the whole group gets SIGKILL, so no grandchild
outlives its run holding GPUs, files or the output pipe.

The group is signalled only while the child is unreaped (running or a
zombie): until then its PID, which is the group's ID, cannot be reused, so
the signal cannot reach an unrelated process. ``os.waitid(..., WNOWAIT)``
waits for the exit without reaping; ``Popen.wait`` reaps afterwards.

Output (stdout and stderr together) is kept as the last ``tail_bytes`` plus
the length of the longest secret, so a secret cut by the tail's first byte is
still found whole and redacted; memory stays bounded whatever the command
prints.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterable
from typing import Literal

from triggers.launch import RunState, RunStatus
from triggers.redact import MIN_SECRET_CHARS, REDACTED

__all__ = ["ProcessRun", "redacted_tail"]

_READ_BYTES = 65536

Ending = Literal["exited", "timed_out", "stopped"]


def redacted_tail(buffer: bytes, tail_bytes: int, secrets: Iterable[bytes]) -> str:
    """The last ``tail_bytes`` of ``buffer`` as text, every byte of a secret shown as REDACTED.

    ``buffer`` must hold the longest secret's length more than ``tail_bytes``
    (or the whole output), so any secret touching the tail is found whole.
    """
    hidden = bytearray(len(buffer))
    for secret in secrets:
        start = buffer.find(secret)
        while start != -1:
            hidden[start : start + len(secret)] = b"\x01" * len(secret)
            start = buffer.find(secret, start + 1)
    begin = max(0, len(buffer) - tail_bytes)
    parts: list[bytes] = []
    index = begin
    while index < len(buffer):
        end = index
        if hidden[index]:
            while end < len(buffer) and hidden[end]:
                end += 1
            parts.append(REDACTED.encode())
        else:
            while end < len(buffer) and not hidden[end]:
                end += 1
            parts.append(buffer[index:end])
        index = end
    return b"".join(parts).decode("utf-8", errors="replace")


class ProcessRun:
    """A started child; ``watch`` runs on its own thread until the child is reaped."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        timeout: float,
        tail_bytes: int,
        secrets: Iterable[str] = (),
    ) -> None:
        self.popen = popen
        self.timeout = timeout
        self.tail_bytes = tail_bytes
        self.secrets = tuple(s.encode() for s in secrets if len(s) >= MIN_SECRET_CHARS)
        self.done = threading.Event()
        self._keep = tail_bytes + max((len(s) for s in self.secrets), default=0)
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._ending: Ending | None = None
        self._exited = False
        self._reaped = False

    def watch(self) -> None:
        reader = threading.Thread(target=self._read_output, daemon=True)
        reader.start()
        timer = threading.Timer(self.timeout, self._end, args=("timed_out",))
        timer.daemon = True
        timer.start()
        self._wait_exit()
        with self._lock:
            self._exited = True
        timer.cancel()
        self._kill_group()  # grandchildren the command left behind
        self.popen.wait()
        with self._lock:
            self._reaped = True
        # EOF comes once every holder of the pipe is gone; a grandchild that left
        # the group with setsid can hold it, so the wait is bounded
        reader.join(timeout=5)
        self.done.set()

    def stop(self) -> None:
        """SIGKILL to the whole group; the watcher then records the run as stopped."""
        self._end("stopped")

    def status(self) -> RunStatus:
        if not self.done.is_set():
            return RunStatus("running", f"pid {self.popen.pid}")
        with self._lock:
            output = redacted_tail(bytes(self._buffer), self.tail_bytes, self.secrets)
        code = self.popen.returncode
        if self._ending == "timed_out":
            return RunStatus("failed", f"timed out after {self.timeout:g}s\n{output}", code)
        if self._ending == "stopped":
            return RunStatus("failed", f"stopped by driftloop\n{output}", code)
        state: RunState = "succeeded" if code == 0 else "failed"
        return RunStatus(state, f"exit status {code}\n{output}", code)

    def _read_output(self) -> None:
        stream = self.popen.stdout
        assert stream is not None
        for chunk in iter(lambda: os.read(stream.fileno(), _READ_BYTES), b""):
            with self._lock:
                self._buffer += chunk
                del self._buffer[: -self._keep]

    def _wait_exit(self) -> None:
        if hasattr(os, "waitid"):
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOWAIT)
        else:  # pragma: no cover - macOS: reap first, then signal the group at once
            self.popen.wait()

    def _end(self, ending: Ending) -> None:
        with self._lock:
            if self._exited or self._ending is not None:
                return
            self._ending = ending
        self._kill_group()

    def _kill_group(self) -> None:
        with self._lock:
            if self._reaped:
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
