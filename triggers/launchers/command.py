"""Run a local command per retrain: argv with placeholders, no shell, a minimal environment.

``launch`` returns as soon as the process started; a ``ProcessRun`` watcher
enforces the timeout, stops the whole process group when the run ends, and
keeps a bounded, redacted tail of the output. Runs are remembered in this
process only: after a restart ``status`` answers ``unknown`` (the policy's
persisted state is what prevents a second launch).

The child never inherits the service's environment, which holds the API
token, Grafana and MLflow secrets, ``GITHUB_TOKEN`` and database passwords.
It gets ``PASSED_THROUGH`` (when set), the launcher's configured ``env`` and
the run's ``DRIFTLOOP_*`` variables, nothing else.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import ClassVar

from triggers.launch import (
    LaunchError,
    LaunchRequest,
    RunRef,
    RunStatus,
    check_placeholders,
    fill_placeholders,
)
from triggers.launchers.process import ProcessRun

__all__ = ["OUTPUT_TAIL_BYTES", "PASSED_THROUGH", "CommandLauncher", "child_environment"]

OUTPUT_TAIL_BYTES = 4096
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL")
_STOP_WAIT_SECONDS = 10.0


def child_environment(
    inherited: Mapping[str, str], configured: Mapping[str, str], request_values: Mapping[str, str]
) -> dict[str, str]:
    """PASSED_THROUGH from ``inherited``, then ``configured``, then ``DRIFTLOOP_<NAME>`` per value.

    The run's own variables come last, so a configured ``env`` cannot
    disguise which run the command belongs to.
    """
    env = {name: inherited[name] for name in PASSED_THROUGH if name in inherited}
    env.update(configured)
    env.update({f"DRIFTLOOP_{name.upper()}": value for name, value in request_values.items()})
    return env


class CommandLauncher:
    """``argv`` is executed as given (never through a shell) with placeholders filled.

    ``redact``: secret values (the service's tokens and passwords) replaced by
    ``[redacted]`` in the output tail a run's status carries, in case the
    command prints one it was given some other way.

    >>> import sys
    >>> from triggers.launch import LaunchRequest
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
        *,
        redact: Sequence[str] = (),
        output_tail_bytes: int = OUTPUT_TAIL_BYTES,
    ) -> None:
        if not argv:
            raise ValueError("command launcher argv: got an empty list, expected a program")
        if output_tail_bytes < 1:
            raise ValueError(
                f"command launcher output_tail_bytes: got {output_tail_bytes}, expected >= 1"
            )
        for arg in argv:
            check_placeholders(arg, "command launcher argv")
        self.argv = list(argv)
        self.timeout = timeout
        self.cwd = cwd
        self.env = dict(env or {})
        self.redact = tuple(redact)
        self.output_tail_bytes = output_tail_bytes
        self._runs: dict[str, ProcessRun] = {}
        self._lock = threading.Lock()

    def launch(self, request: LaunchRequest) -> RunRef:
        values = request.placeholders()  # a bad value raises here: nothing starts
        argv = [fill_placeholders(arg, values) for arg in self.argv]
        with self._lock:
            # the same key twice in one process is the same run (a retried call)
            if request.idempotency_key in self._runs:
                return self._ref(request.idempotency_key, self._runs[request.idempotency_key])
            try:
                popen = subprocess.Popen(
                    argv,
                    cwd=self.cwd,
                    env=child_environment(os.environ, self.env, values),
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
            run = ProcessRun(popen, self.timeout, self.output_tail_bytes, self.redact)
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

    def stop(self, ref: RunRef) -> RunStatus:
        """Kill the run's process group and return its final status (``stopped by driftloop``)."""
        run = self._runs.get(ref.idempotency_key)
        if run is not None:
            run.stop()
        return self.wait(ref, _STOP_WAIT_SECONDS)

    def close(self) -> None:
        """Stop every run still going: a run outliving the service cannot be reported."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop()
        for run in runs:
            run.done.wait(_STOP_WAIT_SECONDS)

    @staticmethod
    def _ref(key: str, run: ProcessRun) -> RunRef:
        return RunRef("command", f"pid-{run.popen.pid}", key, extra={"pid": str(run.popen.pid)})
