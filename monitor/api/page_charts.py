"""Geometry of the page's inline SVG: the features x windows drift heatmap and the line
charts (dataset drift share, performance), computed here so the template only places
shapes.

Pure: window results (design 6.1, oldest first) in, frozen view objects out. Text
stays text: the template escapes it (names and sentences come from events).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Cell",
    "Heatmap",
    "LineChart",
    "Series",
    "Tick",
    "WindowColumn",
    "drift_heatmap",
    "line_chart",
    "window_label",
]

CELL_W, CELL_H, GAP = 26, 20, 2
LABEL_CHARS = 28


def window_label(result: Mapping[str, Any]) -> str:
    """``v1 p0:7`` (version and window key), or ``v1 #7`` without a partition."""
    partition = result.get("partition")
    key = f"p{partition}:{result.get('window')}" if partition is not None \
        else f"#{result.get('window')}"
    return f"v{result.get('version')} {key}"


def _number(value: Any) -> str:
    if value is None:
        return "-"
    number = float(value)
    return f"{number:.3g}" if abs(number) < 0.001 and number != 0.0 else f"{number:.3f}"


@dataclass(frozen=True)
class WindowColumn:
    label: str
    x: float
    title: str
    report_url: str | None


@dataclass(frozen=True)
class Cell:
    x: float
    y: float
    status: str  # drift | ok | na
    opacity: float
    title: str
    feature: str
    window: str


@dataclass(frozen=True)
class Heatmap:
    width: int
    height: int
    label_width: int
    cell_w: int
    cell_h: int
    features: tuple[tuple[str, str, float], ...]  # (shown label, full name, y)
    windows: tuple[WindowColumn, ...]
    cells: tuple[Cell, ...]


def _strength(score: Mapping[str, Any]) -> tuple[str, float]:
    """(status, opacity): how far the score is past (or short of) its threshold."""
    value, threshold = score.get("score"), score.get("threshold")
    if score.get("status") == "inconclusive" or value is None or not threshold:
        return "na", 1.0
    value, threshold = float(value), float(threshold)
    if score.get("direction") == "below":  # a p-value: smaller is stronger
        ratio = threshold / value if value > 0 else 4.0
    else:
        ratio = value / threshold
    if score.get("drift"):
        return "drift", round(0.55 + 0.45 * min(1.0, (ratio - 1.0) / 3.0), 3)
    return "ok", round(0.15 + 0.5 * max(0.0, min(1.0, ratio)), 3)


def drift_heatmap(windows: Sequence[Mapping[str, Any]],
                  report_urls: Mapping[str, str]) -> Heatmap:
    """Rows: features (in the newest window's order, then any older ones); columns:
    windows, oldest first. ``report_urls`` maps a window label to its report."""
    features: list[str] = []
    for result in reversed(windows):
        features += [f for f in (result.get("features") or {}) if f not in features]
    longest = max((min(len(f), LABEL_CHARS) for f in features), default=8)
    label_width = max(90, min(230, 7 * longest + 16))
    columns, cells = [], []
    for i, result in enumerate(windows):
        x = label_width + i * (CELL_W + GAP)
        label = window_label(result)
        span = f"{result.get('start') or '?'} to {result.get('end') or '?'}"
        share = f"drift share {_number(result.get('drift_share'))}"
        verdict = "dataset drift" if result.get("dataset_drift") else "no dataset drift"
        columns.append(WindowColumn(label, x, f"{label}: {span}, {result.get('rows')} rows, "
                                              f"{share}, {verdict}", report_urls.get(label)))
        scores = result.get("features") or {}
        for j, feature in enumerate(features):
            y = 4 + j * (CELL_H + GAP)
            score = scores.get(feature)
            if score is None:
                cells.append(Cell(x, y, "na", 1.0, f"{feature} in {label}: not in this window",
                                  feature, label))
                continue
            status, opacity = _strength(score)
            sign = "<" if score.get("direction") == "below" else ">="
            outcome = {"drift": "drift", "ok": "no drift", "na": "inconclusive"}[status]
            title = (f"{feature} in {label}: {score.get('method')} {_number(score.get('score'))}"
                     f" (drift when {sign} {_number(score.get('threshold'))}): {outcome}")
            cells.append(Cell(x, y, status, opacity, title, feature, label))
    shown = tuple((f if len(f) <= LABEL_CHARS else f[:LABEL_CHARS - 1] + "…", f,
                   4 + j * (CELL_H + GAP) + CELL_H * 0.7) for j, f in enumerate(features))
    width = label_width + max(1, len(windows)) * (CELL_W + GAP) + 8
    height = 4 + max(1, len(features)) * (CELL_H + GAP) + 62
    return Heatmap(width, height, label_width, CELL_W, CELL_H, shown, tuple(columns),
                   tuple(cells))


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # value | threshold | baseline
    segments: tuple[str, ...]  # SVG polyline "x,y x,y" runs between missing values
    dots: tuple[tuple[float, float, str], ...]  # (x, y, title)


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: int
    bottom: float
    right: float
    series: tuple[Series, ...]
    ticks: tuple[Tick, ...]
    empty: str | None  # why there is nothing to draw


def _ticks(lo: float, hi: float) -> list[float]:
    step = (hi - lo) / 6 if hi > lo else 1.0
    magnitude = 10 ** math.floor(math.log10(step))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step),
               default=step)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def line_chart(labels: Sequence[str], lines: Mapping[str, tuple[str, Sequence[float | None]]],
               *, bounds: tuple[float, float] | None = None, empty: str = "no data yet",
               width: int = 520, height: int = 170) -> LineChart:
    """One point per window (``labels``, oldest first) for each named line
    (name -> (css class, values)); ``bounds`` fixes the y range (else the data's)."""
    left, top, right, bottom = 48, 8, width - 10, height - 22
    values = [v for _, series in lines.values() for v in series if v is not None]
    if not values:
        return LineChart(width, height, left, bottom, right, (), (), empty)
    lo, hi = bounds if bounds is not None else (min(values), max(values))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    if bounds is None:
        pad = (hi - lo) * 0.1
        lo, hi = lo - pad, hi + pad
    n = len(labels)

    def x_at(i: int) -> float:
        return round(left + (right - left) * (i / (n - 1) if n > 1 else 0.5), 1)

    def y_at(value: float) -> float:
        return round(bottom - (bottom - top) * (value - lo) / (hi - lo), 1)

    drawn = []
    for name, (css, series) in lines.items():
        segments: list[str] = []
        run: list[str] = []
        dots: list[tuple[float, float, str]] = []
        for i, value in enumerate(series):
            if value is None:
                if run:
                    segments.append(" ".join(run))
                run = []
                continue
            x, y = x_at(i), y_at(float(value))
            run.append(f"{x},{y}")
            dots.append((x, y, f"{name} {_number(value)} ({labels[i]})"))
        if run:
            segments.append(" ".join(run))
        drawn.append(Series(name, css, tuple(segments), tuple(dots) if css == "value" else ()))
    ticks = tuple(Tick(y_at(t), _number(t).rstrip("0").rstrip(".") or "0")
                  for t in _ticks(lo, hi))
    return LineChart(width, height, left, bottom, right, tuple(drawn), ticks, None)
