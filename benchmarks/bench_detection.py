"""Detection quality: which shifts driftloop, Evidently and a NannyML-style rule flag, and
how often each flags a window that did not change.

Seven seeded synthetic features (benchmarks/detection_data.py) with a 50,000-row
reference each; windows of 500, 5,000, 50,000 and 1,000,000 rows. Per feature and
size: 200 null windows drawn fresh from the generating distribution, and 50 windows
(20 at 1,000,000 rows) per shift. Every tool sees the same windows
(benchmarks/detection_tools.py describes the tools and their rules).

Printed, as plain lines:
- the false-alarm rate per (feature, window) on null windows, per size and tool;
- the detection table: the share of windows flagged per feature, shift and size
  ("dl" driftloop's defaults, "ev" Evidently's defaults, "nm" NannyML-style);
- the same for driftloop's other distance methods at their own min_effect;
- the dominance check: driftloop flags at least as many windows as Evidently in
  every shifted cell, with at most 1% false alarms per (feature, window), and never
  flags a shift below the materiality bound (0.02 and 0.05 sd, 2 points of share)
  on windows of 50,000 rows or more.

Run: ``python benchmarks/bench_detection.py`` (about 5 minutes on one core;
``--quick`` runs sizes up to 50,000 with fewer windows, for development).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from detection_data import FEATURES, NULL, Feature, Shift  # noqa: E402
from detection_tools import (  # noqa: E402
    NANNY_MIN_CHUNKS,
    Driftloop,
    Evidently,
    NannyStyle,
)

SIZES = (500, 5_000, 50_000, 1_000_000)
REFERENCE_ROWS = 50_000
NULL_WINDOWS = 200
SHIFT_WINDOWS = {500: 50, 5_000: 50, 50_000: 50, 1_000_000: 20}
LARGE = 50_000  # windows from this size on must not flag shifts below materiality
MAX_FALSE_ALARMS = 0.01
DEFAULT_METHOD = {"numeric": "wasserstein", "categorical": "jensenshannon"}
OTHER_METHODS = {"numeric": ("jensenshannon", "psi"), "categorical": ("linf", "psi")}
TOOLS = ("dl", "ev", "nm")


@dataclass
class Cell:
    """Flags counted over the windows of one (feature, shift, size)."""

    windows: int = 0
    flags: dict[str, int] = field(default_factory=dict)

    def add(self, flags: dict[str, bool]) -> None:
        self.windows += 1
        for tool, flagged in flags.items():
            self.flags[tool] = self.flags.get(tool, 0) + int(flagged)

    def rate(self, tool: str) -> float:
        return self.flags.get(tool, 0) / self.windows


Results = dict[tuple[str, str, int], Cell]


def _window(feature: Feature, rng: np.random.Generator, n: int, shift: Shift) -> np.ndarray:
    if feature.kind == "numeric":
        return np.sort(feature.values(rng, n, shift))
    return feature.counts(rng, n, shift)


def _reference(feature: Feature, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(reference as the tools take it, the same rows in their drawn order)."""
    if feature.kind == "numeric":
        values = feature.values(rng, REFERENCE_ROWS)
        return values, values
    codes = rng.choice(feature.levels, REFERENCE_ROWS, p=np.asarray(feature.shares))
    return np.bincount(codes, minlength=feature.levels + 1), codes


def _nanny_chunks(feature: Feature, rows: np.ndarray, n: int,
                  rng: np.random.Generator) -> list[np.ndarray]:
    if n * NANNY_MIN_CHUNKS <= rows.size:
        parts = [rows[i:i + n] for i in range(0, rows.size - n + 1, n)]
        if feature.kind == "numeric":
            return parts
        return [np.bincount(p, minlength=feature.levels + 1) for p in parts]
    return [_window(feature, rng, n, NULL) for _ in range(NANNY_MIN_CHUNKS)]


def run_feature(feature: Feature, index: int, sizes: Sequence[int], null_windows: int,
                shift_windows: dict[int, int], seed: int) -> Results:
    reference, rows = _reference(feature, np.random.default_rng([seed, index, 0]))
    methods = (DEFAULT_METHOD[feature.kind], *OTHER_METHODS[feature.kind])
    ours = Driftloop(feature, reference, methods, seed=seed)
    results: Results = {}
    for size_index, n in enumerate(sizes):
        nanny_rng = np.random.default_rng([seed, index, 1, size_index])
        nanny = NannyStyle(feature, _nanny_chunks(feature, rows, n, nanny_rng))
        evidently: Evidently | None = None
        for shift_index, shift in enumerate(feature.shifts):
            rng = np.random.default_rng([seed, index, 2, size_index, shift_index])
            cell = results.setdefault((feature.name, shift.label, n), Cell())
            count = null_windows if shift.kind == "null" else shift_windows[n]
            for _ in range(count):
                window = _window(feature, rng, n, shift)
                if evidently is None:
                    evidently = Evidently(feature, reference, window)
                flags = {f"dl:{m}": f for m, f in ours.flags(window).items()}
                flags["dl"] = flags[f"dl:{methods[0]}"]
                flags["ev"] = evidently.flag(window)
                flags["nm"] = nanny.flag(window)
                cell.add(flags)
    return results


def _size_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k" if n >= 1000 else str(n)


def _percent(rate: float) -> str:
    return f"{100.0 * rate:5.1f}"


def false_alarm_lines(results: Results, sizes: Sequence[int]) -> list[str]:
    lines = []
    for tool, name in (("dl", "driftloop"), ("ev", "evidently"), ("nm", "nannyml-style")):
        rates = []
        for n in sizes:
            cells = [c for (f, s, m), c in results.items() if s == "null" and m == n]
            flagged = sum(c.flags.get(tool, 0) for c in cells)
            windows = sum(c.windows for c in cells)
            worst = max(cells, key=lambda c: c.rate(tool))
            rates.append(f"{_size_label(n)} {100.0 * flagged / windows:.2f}% "
                         f"(max feature {100.0 * worst.rate(tool):.1f}%)")
        lines.append(f"detection false alarms per (feature, window), {name}: "
                     + "; ".join(rates))
    return lines


LABELS = {"dl": "dl", "ev": "ev", "nm": "nm", "dl:jensenshannon": "js", "dl:psi": "psi",
          "dl:linf": "linf"}


def table_lines(results: Results, sizes: Sequence[int], tools: Sequence[str],
                title: str) -> list[str]:
    sizes_head = " ".join(f"{_size_label(n):>5}" for n in sizes)
    head = " | ".join(f"{LABELS[t]:<4}{sizes_head}" for t in tools)
    lines = [f"detection table, % of windows flagged ({title}):",
             f"{'feature':<13}{'shift':<15}| {head}"]
    for feature in FEATURES:
        for shift in feature.shifts:
            if (feature.name, shift.label, sizes[0]) not in results:
                continue
            parts = []
            for tool in tools:
                if tool.startswith("dl:") and tool[3:] not in OTHER_METHODS[feature.kind]:
                    parts.append(" " * (4 + 6 * len(sizes) - 1))
                    continue
                rates = " ".join(_percent(results[(feature.name, shift.label, n)].rate(tool))
                                 for n in sizes)
                parts.append(f"{'':<4}{rates}")
            lines.append(f"{feature.name:<13}{shift.label:<15}| " + " | ".join(parts))
    return lines


def _null_rate(results: Results, tool: str, n: int) -> float:
    cells = [c for (_, s, m), c in results.items() if s == "null" and m == n]
    return sum(c.flags.get(tool, 0) for c in cells) / sum(c.windows for c in cells)


def dominance_lines(results: Results, sizes: Sequence[int]) -> list[str]:
    shifts = {(f.name, s.label): s for f in FEATURES for s in f.shifts}
    lines = []
    for n in sizes:
        cells = [(f, label, c) for (f, label, m), c in sorted(results.items())
                 if m == n and shifts[(f, label)].kind != "null"]
        worse = [f"{f} {label} (dl {_percent(c.rate('dl')).strip()}, ev "
                 f"{_percent(c.rate('ev')).strip()}, ev null "
                 f"{_percent(results[(f, 'null', n)].rate('ev')).strip()})"
                 for f, label, c in cells if c.rate("dl") < c.rate("ev")]
        lines.append(f"detection dominance at {_size_label(n)}: driftloop flags at least as "
                     f"often as Evidently in {len(cells) - len(worse)} of {len(cells)} shifted "
                     f"cells; false alarms dl {100.0 * _null_rate(results, 'dl', n):.2f}%, "
                     f"ev {100.0 * _null_rate(results, 'ev', n):.2f}% per (feature, window)"
                     + (f"; less often in: {', '.join(worse)}" if worse else ""))
    # what any detector could reach at 1% false alarms: the one-sided z-test with known
    # variance is the most powerful test of a normal mean shift (Neyman-Pearson)
    z = NormalDist().inv_cdf(1.0 - MAX_FALSE_ALARMS)
    bounds = ", ".join(f"+{d:g} sd {100.0 * NormalDist().cdf(d * math.sqrt(sizes[0]) - z):.0f}%"
                       for d in (0.05, 0.1, 0.2))
    lines.append(f"detection ceiling at {_size_label(sizes[0])} rows and 1% false alarms (z-test "
                 f"of a normal mean, known variance): {bounds}")
    irrelevant = [f"{f} {label} @{_size_label(m)} {_percent(c.rate('dl')).strip()}%"
                  for (f, label, m), c in sorted(results.items())
                  if m >= LARGE and not shifts[(f, label)].material
                  and shifts[(f, label)].kind != "null" and c.rate("dl") > 0]
    lines.append(f"detection materiality: shifts below it flagged by driftloop on windows of "
                 f"{LARGE:,}+ rows: " + (", ".join(irrelevant) if irrelevant else "none"))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="sizes up to 50,000 rows, 100 null and 20 shifted windows")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = SIZES[:3] if args.quick else SIZES
    null_windows = 100 if args.quick else NULL_WINDOWS
    shift_windows = {n: 20 for n in sizes} if args.quick else SHIFT_WINDOWS
    started = time.perf_counter()
    results: Results = {}
    for index, feature in enumerate(FEATURES):
        feature_started = time.perf_counter()
        results.update(run_feature(feature, index, sizes, null_windows, shift_windows,
                                   args.seed))
        print(f"detection {feature.name}: {time.perf_counter() - feature_started:.0f} s",
              file=sys.stderr, flush=True)
    print(f"detection setup: reference {REFERENCE_ROWS:,} rows per feature, "
          f"{null_windows} null windows per feature and size, "
          + ", ".join(f"{shift_windows[n]} at {_size_label(n)}" for n in sizes)
          + " per shift", flush=True)
    for line in (false_alarm_lines(results, sizes)
                 + table_lines(results, sizes, TOOLS, "dl driftloop defaults, "
                               "ev Evidently defaults, nm NannyML-style")
                 + table_lines(results, sizes, ("dl:jensenshannon", "dl:psi", "dl:linf"),
                               "driftloop's other distance methods at their own min_effect: "
                               "js Jensen-Shannon, psi, linf L-infinity")
                 + dominance_lines(results, sizes)):
        print(line, flush=True)
    print(f"detection run time: {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
