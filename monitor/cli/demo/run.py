"""``driftloop demo``: set up, tell the story, show the timeline, and always clean up.

Exit codes: 0 when the story completed (and, with ``--keep-running``, when Ctrl-C
ends the exploring); 1 with one ``driftloop: error: demo: ...`` line when a step
failed; 130 when interrupted before the story ended. Whatever happens (SIGINT,
SIGTERM, an error), every process the demo started is stopped by its PID and the
temporary work folder removed; a second Ctrl-C while stopping is ignored, so the
clean-up is never cut short.
"""

from __future__ import annotations

import signal
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.markup import escape

from monitor.cli.demo.options import MODEL, DemoOptions
from monitor.cli.demo.probe import Probe, Snapshot
from monitor.cli.demo.processes import DemoError
from monitor.cli.demo.stack import Stack
from monitor.cli.demo.story import Outcome, Story
from monitor.cli.demo.view import View, timeline_table

__all__ = ["run"]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM ends the demo like Ctrl-C does (both reach the ``finally`` that cleans up)."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _workdir(options: DemoOptions) -> tuple[Path, bool]:
    if options.out is None:
        return Path(tempfile.mkdtemp(prefix="driftloop-demo-")), True
    out = options.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DemoError(f"--out {out}: exists and is not an empty folder; expected a new or "
                        "empty folder (the demo's registry and state must start empty)")
    out.mkdir(parents=True, exist_ok=True)
    return out.resolve(), False


def run(options: DemoOptions, console: Console | None = None) -> int:
    console = console or Console(highlight=False)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        workdir, owns = _workdir(options)
    except DemoError as exc:
        errors.print(f"driftloop: error: demo: {exc}", markup=False)
        return 1
    stack = Stack(options, workdir, owns_workdir=owns)
    title = (f"driftloop demo · scenario {options.scenario} · {options.event_format} events · "
             f"seed {options.seed}" + (" · short" if options.short else ""))
    view = View(console, title, stack.state["urls"])
    started = datetime.now(UTC)
    clock = time.monotonic()
    done = False
    code = 0
    with _signals_interrupt(), ExitStack() as closing:
        try:
            view.note(f"[bold]{escape(title)}[/]\n" + escape(
                f"Setting up in {workdir} ({'removed at the end' if owns else 'kept'}):"))
            stack.start(lambda line: view.note(escape(f"  {line}")))
            setup_seconds = time.monotonic() - clock
            probe = Probe(stack.service_url, MODEL)
            closing.callback(probe.close)

            def show(phase: str, doing: str, snapshot: Snapshot | None) -> None:
                published = stack.labels.published if stack.labels is not None else 0
                view.show(phase, doing, snapshot, published, probe.timeline.decisions)

            view.start()
            outcome = Story(stack, probe, show).run()
            view.stop()
            done = True
            console.print(timeline_table(probe.timeline.decisions, started))
            _summary(console, outcome, time.monotonic() - clock, setup_seconds)
            if options.keep_running:
                _explore(console, stack)
        except KeyboardInterrupt:
            view.stop()
            code = 0 if done else 130
            if not done:
                errors.print("driftloop: demo interrupted; stopping what it started",
                             markup=False)
        except DemoError as exc:
            view.stop()
            message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            stack.write_state(error=message)
            errors.print(f"driftloop: error: demo: {message}", markup=False)
            code = 1
        except Exception as exc:  # a failure nobody foresaw: still one line, still clean-up
            view.stop()
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            message = f"{type(exc).__name__}: {first_line}"
            stack.write_state(error=message)
            if not owns:  # --out: the trace is kept with the logs
                (workdir / "logs").mkdir(exist_ok=True)
                (workdir / "logs" / "demo-error.log").write_text(traceback.format_exc())
            errors.print(f"driftloop: error: demo failed: {message}", markup=False)
            code = 1
        finally:
            with _signals_ignored():
                stack.close()
    if not owns:
        console.print(escape(f"Files kept in {workdir} (config, logs, MLflow, state, reports)."))
    return code


def _summary(console: Console, outcome: Outcome, seconds: float, setup_seconds: float) -> None:
    phases = ", ".join([f"set-up {setup_seconds:.0f}s"] + [
        f"{phase} {spent:.0f}s" for phase, spent in outcome.phase_seconds.items()])
    drifted = sum(1 for w in outcome.settled_windows if w.get("dataset_drift"))
    windows = len(outcome.settled_windows)
    if outcome.result == "promoted":
        after = (f"on its own baseline, {drifted} of the last {windows} windows drifted "
                 "(the drift was the old baseline's)")
    else:
        after = f"{drifted} of the last {windows} windows still drifted: the world changed"
    console.print(
        f"[bold]Outcome[/]: retrain {outcome.retrain_run} ({outcome.retrain_reason}) registered "
        f"version {outcome.challenger}, which driftloop {outcome.result}; version "
        f"{outcome.champion} is the champion; {after}.", soft_wrap=True)
    console.print(f"[bold]Time[/]: {seconds:.0f}s ({phases}).", soft_wrap=True)


def _explore(console: Console, stack: Stack) -> None:
    stack.write_state(phase="exploring")
    urls = stack.state["urls"]
    console.print(f"[bold]The stack stays up[/] (traffic goes on): page {urls['page']}  "
                  f"metrics {urls['metrics']}  report {urls['report']}  MLflow {urls['mlflow']}  "
                  f"config {escape(str(stack.config_path))}. Ctrl-C stops it.", soft_wrap=True)
    while True:
        stack.check_traffic()
        time.sleep(1.0)
