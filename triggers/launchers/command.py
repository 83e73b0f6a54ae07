"""Run a local command per retrain: argv with placeholders, no shell, a timeout.

``launch`` returns as soon as the process started; a watcher thread enforces
the timeout (killing the whole process group) and keeps the last
``OUTPUT_TAIL_BYTES`` of stdout+stderr, so memory stays bounded whatever the
command prints. Runs are remembered in this process only: after a restart
``status`` answers ``unknown`` (the policy's persisted state is what prevents
a second launch).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from triggers.launchers.base import (
    LaunchError,
    LaunchRequest,
    RunRef,
    RunState,
    RunStatus,
    check_placeholders,
    fill_placeholders,
)

__all__ = ["OUTPUT_TAIL_BYTES", "CommandLauncher"]

OUTPUT_TAIL_BYTES = 4096


@dataclass
class _Run:
    popen: subprocess.Popen[bytes]
    timeout: float
    tail: bytearray = field(default_factory=bytearray)
    timed_out: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    def read_output(self) -> None:
        stream = self.popen.stdout
        assert stream is not None
        for chunk in iter(lambda: os.read(stream.fileno(), 4096), b""):
            self.tail += chunk
            del self.tail[:-OUTPUT_TAIL_BYTES]

    def watch(self) -> None:
        reader = threading.Thread(target=self.read_output, daemon=True)
        reader.start()
        try:
            self.popen.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            # the command may have started children: stop the whole group it leads
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        reader.join(timeout=5)
        self.done.set()

    def status(self) -> RunStatus:
        if not self.done.is_set():
            return RunStatus("running", f"pid {self.popen.pid}")
        output = bytes(self.tail).decode("utf-8", errors="replace")
        code = self.popen.returncode
        if self.timed_out:
            return RunStatus("failed", f"timed out after {self.timeout:g}s\n{output}", code)
        state: RunState = "succeeded" if code == 0 else "failed"
        return RunStatus(state, f"exit status {code}\n{output}", code)


class CommandLauncher:
    """``argv`` is executed as given (never through a shell) with placeholders filled.

    >>> import sys
    >>> from triggers.launchers.base import LaunchRequest
    >>> launcher = CommandLauncher([sys.executable, "-c", "print('training {model}')"])
    >>> ref = launcher.launch(LaunchRequest("carloan", "3", "manual", None, None, "k1", "doc"))
    >>> launcher.wait(ref).detail.splitlines()
    ['exit status 0', 'training carloan']
    """

    type: ClassVar[str] = "command"
    tracks_status: ClassVar[bool] = True

    def __init__(
        self,
        argv: Sequence[str],
        timeout: float = 3600.0,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not argv:
            raise ValueError("command launcher argv: got an empty list, expected a program")
        for arg in argv:
            check_placeholders(arg, "command launcher argv")
        self.argv = list(argv)
        self.timeout = timeout
        self.cwd = cwd
        self.env = dict(env or {})
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def launch(self, request: LaunchRequest) -> RunRef:
        values = request.placeholders()
        argv = [fill_placeholders(arg, values) for arg in self.argv]
        with self._lock:
            # the same key twice in one process is the same run (a retried call)
            if request.idempotency_key in self._runs:
                return self._ref(request.idempotency_key, self._runs[request.idempotency_key])
            env = {
                **os.environ,
                **self.env,
                "DRIFTLOOP_MODEL": request.model,
                "DRIFTLOOP_REASON": request.reason,
                "DRIFTLOOP_IDEMPOTENCY_KEY": request.idempotency_key,
            }
            try:
                popen = subprocess.Popen(
                    argv,
                    cwd=self.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise LaunchError(
                    f"command launcher: cannot start {argv!r}: {exc}; "
                    "expected an executable program (argv is run without a shell)",
                    retryable=False,
                    reason=str(exc),
                ) from exc
            run = _Run(popen, self.timeout)
            self._runs[request.idempotency_key] = run
        threading.Thread(target=run.watch, name=f"retrain-{popen.pid}", daemon=True).start()
        return self._ref(request.idempotency_key, run)

    def status(self, ref: RunRef) -> RunStatus:
        run = self._runs.get(ref.idempotency_key)
        if run is None:
            return RunStatus("unknown", f"run {ref.run_id} is not known to this process")
        return run.status()

    def wait(self, ref: RunRef, timeout: float | None = None) -> RunStatus:
        """Block until the run finished (tests, the demo); the service polls ``status``."""
        run = self._runs.get(ref.idempotency_key)
        if run is not None:
            run.done.wait(timeout)
        return self.status(ref)

    @staticmethod
    def _ref(key: str, run: _Run) -> RunRef:
        return RunRef("command", f"pid-{run.popen.pid}", key, extra={"pid": str(run.popen.pid)})
