"""What people see: a live panel while the story runs, and the timeline of decisions at the end.

On a terminal the panel (rich ``Live``) shows the phase, the traffic rate per
version, the last window's drift, the realized accuracy of each version, the
canary's progress, the URLs to open, and the latest decisions. Elsewhere (a
pipe, a CI log) it prints one line per phase and per decision instead.

Everything shown comes from the service's API and ``/metrics`` (a
:class:`~monitor.cli.demo.probe.Snapshot`), except the count of labels the
demo's own label feed published.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from monitor.cli.demo.probe import Decision, Snapshot
from monitor.cli.demo.story import PHASES

__all__ = ["View", "collapse", "timeline_table"]

_NUMBERS = re.compile(r"[0-9a-f]{6,}|\d+(\.\d+)?")
_DETAIL = re.compile(r"\s*\([^()]*\)")


def _shape(sentence: str) -> str:
    """A sentence without its numbers, ids and parenthesized details."""
    text = _NUMBERS.sub("#", sentence)
    while True:
        shorter = _DETAIL.sub("", text)
        if shorter == text:
            return text
        text = shorter


def collapse(decisions: Sequence[Decision]) -> list[tuple[Decision, int]]:
    """Decisions as (the first of a kind, how many like it): between two decisions that
    acted, the holds that say the same thing but for numbers and details are one row
    (twenty clean windows, a cooldown held through ten)."""
    rows: list[list[Any]] = []
    holds: dict[str, int] = {}  # shape -> its row, since the last decision that acted
    for decision in decisions:
        if decision.kind != "hold":
            rows.append([decision, 1])
            holds = {}
            continue
        shape = _shape(decision.sentence)
        if shape in holds:
            rows[holds[shape]][1] += 1
        else:
            holds[shape] = len(rows)
            rows.append([decision, 1])
    return [(decision, count) for decision, count in rows]


def timeline_table(decisions: Sequence[Decision], started: datetime) -> Table:
    table = Table(title="Every decision driftloop made", title_justify="left", expand=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("+", no_wrap=True, justify="right")
    table.add_column("kind", no_wrap=True)
    table.add_column("decision and reason", ratio=1)
    for decision, count in collapse(decisions):
        moment = datetime.fromisoformat(decision.at.replace("Z", "+00:00"))
        elapsed = max((moment - started).total_seconds(), 0.0)
        sentence = Text(decision.sentence)
        if count > 1:
            sentence.append(f"  (and {count - 1} more like it)", style="dim")
        style = "" if decision.kind == "hold" else "bold"
        table.add_row(moment.strftime("%H:%M:%S"), f"{elapsed:.0f}s", decision.kind, sentence,
                      style=style)
    return table


class View:
    def __init__(self, console: Console, title: str, urls: dict[str, str]) -> None:
        self.console = console
        self.title = title
        self.urls = urls
        self.live: Live | None = None
        self._phase = ""
        self._doing = ""
        self._shown: set[Decision] = set()
        self._last: Snapshot | None = None  # shown again when a phase changes between reads

    def start(self) -> None:
        if self.console.is_terminal:
            self.live = Live(Text("starting..."), console=self.console, refresh_per_second=4,
                             transient=False)
            self.live.start()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def note(self, text: str) -> None:
        self.console.print(text, soft_wrap=True, highlight=False)

    def show(self, phase: str, doing: str, snapshot: Snapshot | None,
             labels_published: int = 0, decisions: Sequence[Decision] = ()) -> None:
        self._last = snapshot or self._last
        if self.live is not None:
            self.live.update(self.render(phase, doing, self._last, labels_published, decisions))
        else:
            if (phase, doing) != (self._phase, self._doing):
                self.note(escape(f"[{phase}] {doing}"))
            for decision in decisions:
                if decision not in self._shown and decision.kind != "hold":
                    self.note(escape(f"  decision ({decision.kind}): {decision.sentence}"))
            self._shown.update(decisions)
        self._phase, self._doing = phase, doing

    # -- the panel ----------------------------------------------------------------------
    def render(self, phase: str, doing: str, snapshot: Snapshot | None, labels_published: int,
               decisions: Sequence[Decision]) -> RenderableType:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(ratio=1)
        steps = " · ".join(f"[reverse] {p} [/]" if p == phase else p for p in PHASES)
        grid.add_row("story", Text.from_markup(steps))
        grid.add_row("", Text(doing))
        if snapshot is not None:
            grid.add_row("traffic", _traffic(snapshot, labels_published))
            grid.add_row("drift", _drift(snapshot))
            grid.add_row("accuracy", _performance(snapshot))
            grid.add_row("canary", _canary(snapshot))
        for name in ("page", "metrics", "report", "mlflow"):
            grid.add_row(name, self.urls[name])
        recent = [d for d in decisions if d.kind != "hold"][-4:]
        latest_hold = next((d for d in reversed(decisions) if d.kind == "hold"), None)
        lines = [f"{d.at[11:19]} {d.kind}: {d.sentence}" for d in recent]
        if latest_hold is not None:
            lines.append(f"{latest_hold.at[11:19]} hold: {latest_hold.sentence}")
        grid.add_row("decisions", Text("\n".join(lines) or "none yet"))
        return Panel(Group(grid), title=self.title, title_align="left")


def _traffic(snapshot: Snapshot, labels_published: int) -> str:
    rates = {v: r for v, r in snapshot.rates.items() if r > 0}
    total = sum(rates.values())
    if not total:
        return f"waiting for the first events; {labels_published} labels published"
    split = " · ".join(f"v{v} {r / total:.0%}" for v, r in sorted(rates.items()))
    return f"{total:.0f} predictions/s ({split}); {labels_published} labels published"


def _drift(snapshot: Snapshot) -> str:
    window: dict[str, Any] | None = snapshot.windows[0] if snapshot.windows else None
    if window is None:
        return "no window evaluated yet"
    features = window.get("features") or {}
    drifted = sum(1 for f in features.values() if f.get("drift"))
    share = window.get("drift_share")
    verdict = "DATASET DRIFT" if window.get("dataset_drift") else "no dataset drift"
    shown = "?" if share is None else f"{share:.2f}"
    return (f"v{window['version']} window {window['window']} ({window['rows']} rows): {verdict}, "
            f"{drifted} of {len(features)} features drifted (share {shown})")


def _performance(snapshot: Snapshot) -> str:
    parts = []
    versions = sorted({str(w["version"]) for w in snapshot.windows})
    for version in versions:
        value = snapshot.metric("driftloop_performance", version=version, metric="accuracy")
        if value is None:
            continue
        last = next((w["performance"] for w in snapshot.windows
                     if w["version"] == version and w.get("performance")), None)
        note = ""
        if last and last.get("baseline") is not None:
            flag = ", degraded" if last.get("degraded") else ""
            note = f" (reference {last['baseline']:.3f}{flag})"
        parts.append(f"v{version} {value:.3f}{note}")
    return " · ".join(parts) or "waiting for labels to join predictions"


def _canary(snapshot: Snapshot) -> str:
    canary = snapshot.canary
    if not canary.get("phase"):
        return "no canary yet"
    counters = canary.get("counters") or {}
    last = canary.get("last_check") or {}
    score = last.get("score")
    check = (f"; last check {last.get('outcome')}"
             + (f" (score {score:.0f})" if isinstance(score, int | float) else "")) if last else ""
    events = ", ".join(f"v{a['version']} {a['events']} events/{a['labeled']} labeled"
                       for a in canary.get("interval") or [])
    return (f"v{canary.get('challenger')} vs v{canary.get('champion')}: {canary['phase']}, "
            f"passed {counters.get('passed', 0)}/{counters.get('iterations', '?')}, failed "
            f"{counters.get('failed_checks', 0)}/{counters.get('threshold', '?')}{check}"
            + (f"; this interval {events}" if events else ""))
