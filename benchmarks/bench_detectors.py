"""driftloop's detectors against Evidently's ``Report([DataDriftPreset()])`` on the same data.

Data: a 100k-row reference and a window of 100k (then 1M) rows, 20 numeric and
5 categorical features, 8 numeric and 2 categorical of them truly shifted.

- time: warm, median of a few runs. driftloop's side is what a window costs the
  service: columns out of the frame, summarize into the baseline's bins, evaluate
  drift and quality (the baseline is built once at training time and not timed).
  Evidently's side is ``Dataset.from_pandas`` + ``Report.run``.
- peak memory: in a fresh subprocess per tool, the peak of memory allocated
  during one run (tracemalloc, which sees numpy's buffers); the data, the
  imports and, for driftloop, the baseline profiles are loaded before.
- verdicts: driftloop configured like Evidently (``DriftSettings.evidently()``:
  Wasserstein (normed) 0.1 for numbers, Jensen-Shannon 0.1 for categoricals)
  against the per-column verdicts in Evidently's snapshot.
- CBPE (label-free performance estimation of a binary classifier): per window,
  folding the window's scores into its ``ConfidenceCounts`` in 20 chunks (as the
  service folds buffered rows) and estimating the five binary metrics; the
  reference's calibration and thresholds are built once and timed apart. Its
  accuracy: 60 windows of 2,000 rows with labels withheld, the last 30 with
  scores moved towards 0.5, each estimate compared afterwards with the realized
  metric.

Run: ``python benchmarks/bench_detectors.py`` (``--quick`` skips Evidently at 1M).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import detectors  # noqa: E402

N_NUMERIC, N_CATEGORICAL = 20, 5
SHIFTED_NUMERIC = tuple(f"num_{i:02d}" for i in range(8))
SHIFTED_CATEGORICAL = ("cat_0", "cat_1")
CATEGORIES = np.array([f"c{i}" for i in range(8)], dtype=object)


def make_frame(rows: int, shifted: bool, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        kind = i % 3
        values = (rng.normal(10.0, 2.0, rows) if kind == 0 else
                  rng.lognormal(1.0, 0.5, rows) if kind == 1 else
                  rng.gamma(2.0, 3.0, rows))
        if shifted and name in SHIFTED_NUMERIC:
            values = values * 1.25 + values.std() * 0.3
        data[name] = values
    base_p = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03])
    for j in range(N_CATEGORICAL):
        name = f"cat_{j}"
        p = base_p[::-1].copy() if shifted and name in SHIFTED_CATEGORICAL else base_p
        data[name] = rng.choice(CATEGORIES, rows, p=p / p.sum())
    return pd.DataFrame(data)


def kinds_of(frame: pd.DataFrame) -> dict[str, str]:
    return {c: ("categorical" if c.startswith("cat_") else "numeric") for c in frame.columns}


def build_profiles(reference: pd.DataFrame) -> dict[str, detectors.FeatureProfile]:
    return {c: detectors.profile_column(reference[c].to_numpy(), kind)
            for c, kind in kinds_of(reference).items()}


def run_driftloop(profiles: dict[str, detectors.FeatureProfile], current: pd.DataFrame,
                  settings: detectors.DriftSettings,
                  calibration: detectors.Calibration | None) -> detectors.DatasetDriftResult:
    summary = detectors.WindowSummary.empty(profiles)
    summary.add({c: current[c].to_numpy() for c in profiles}, len(current))
    result = detectors.evaluate_drift(profiles, summary, settings, calibration)
    detectors.evaluate_quality(profiles, summary, detectors.QualitySettings())
    return result


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    kinds = kinds_of(reference)
    definition = DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == "numeric"],
        categorical_columns=[c for c, k in kinds.items() if k == "categorical"])
    return Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition))


def evidently_verdicts(snapshot: Any) -> dict[str, tuple[str, float, float, bool]]:
    """column -> (method, score, threshold, drift) from the snapshot's ValueDrift metrics."""
    verdicts = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        method, threshold, score = config["method"], float(config["threshold"]), metric["value"]
        # Evidently: distances drift at score >= threshold, tests at p-value < threshold
        is_test = "p_value" in method.lower() or "test" in method.lower()
        drift = score < threshold if is_test else score >= threshold
        verdicts[config["column"]] = (method, float(score), threshold, bool(drift))
    return verdicts


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    result = fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def memory_child(tool: str, rows: int, reference_rows: int) -> None:
    """Runs in a subprocess: prints the peak memory (MB) of one run above the loaded data."""
    reference = make_frame(reference_rows, False, 1)
    current = make_frame(rows, True, 2)
    if tool == "evidently":
        import evidently.presets  # noqa: F401  (imports are not the run's memory)
        work: Callable[[], Any] = lambda: run_evidently(reference, current)  # noqa: E731
    else:
        profiles = build_profiles(reference)
        settings = detectors.DriftSettings()
        work = lambda: run_driftloop(profiles, current, settings, None)  # noqa: E731
    tracemalloc.start()
    work()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"peak_mb": peak / 1e6}))


def peak_mb(tool: str, rows: int, reference_rows: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", tool, "--rows", str(rows),
         "--reference-rows", str(reference_rows)],
        check=True, capture_output=True, text=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"])


def classifier_rows(rng: np.random.Generator, n: int,
                    spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels from P(y=1 | x) = sigmoid(3x), an under-confident score sigmoid(2x) to
    calibrate; a smaller ``spread`` puts more rows near 0.5."""
    x = rng.normal(0.0, spread, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-3.0 * x))).astype(np.int64)
    return y, 1.0 / (1.0 + np.exp(-2.0 * x))


def cbpe_accuracy_lines(reference_rows: int = 20_000, rows: int = 2000) -> list[str]:
    rng = np.random.default_rng(4)
    y_ref, score_ref = classifier_rows(rng, reference_rows, 1.5)
    reference = detectors.fit_cbpe(y_ref, score=score_ref, seed=0)
    windows = [classifier_rows(rng, rows, 1.5 if w < 30 else 0.6) for w in range(60)]
    lines = []
    for metric in reference.metrics:
        errors, covered, flagged = [], 0, [0, 0]
        means = {"estimated": [0.0, 0.0], "realized": [0.0, 0.0]}
        for w, (y, score) in enumerate(windows):
            counts = reference.empty_counts()
            reference.add(counts, score=score)
            result = detectors.estimate_performance(reference, counts, metric)
            truth = detectors.performance_metric(metric, y, (score >= 0.5).astype(np.int64),
                                                 score=score)
            assert result.value is not None and result.lower is not None
            assert result.upper is not None
            errors.append(abs(result.value - truth))
            covered += result.lower <= truth <= result.upper
            flagged[w >= 30] += result.degraded
            means["estimated"][w >= 30] += result.value / 30
            means["realized"][w >= 30] += truth / 30
        lines.append(
            f"detectors cbpe {metric} over 60 windows of {rows:,} rows (last 30 shifted to the "
            f"middle): mean |estimate - realized| {np.mean(errors):.4f}, band covers "
            f"{covered}/60, degraded {flagged[0]}/30 unshifted and {flagged[1]}/30 shifted; "
            f"estimated {means['estimated'][0]:.3f} -> {means['estimated'][1]:.3f}, realized "
            f"{means['realized'][0]:.3f} -> {means['realized'][1]:.3f}")
    return lines


def cbpe_line(rows: int, reference_rows: int) -> str:
    rng = np.random.default_rng(3)
    y_ref, score_ref = classifier_rows(rng, reference_rows, 1.5)
    started = time.perf_counter()
    reference = detectors.fit_cbpe(y_ref, score=score_ref, seed=0)
    fit_seconds = time.perf_counter() - started
    y, score = classifier_rows(rng, rows, 0.8)
    chunks = np.array_split(score, 20)

    def fold() -> detectors.ConfidenceCounts:
        counts = reference.empty_counts()
        for chunk in chunks:
            reference.add(counts, score=chunk)
        return counts

    fold_seconds, counts = timed(fold, 5)
    estimate_seconds, results = timed(
        lambda: [detectors.estimate_performance(reference, counts, m)
                 for m in reference.metrics], 5)
    accuracy = next(r for r in results if r.metric == "accuracy")
    realized = float(np.mean((score >= 0.5) == (y == 1)))
    return (f"detectors cbpe {label(rows)}: {(fold_seconds + estimate_seconds) * 1e3:.1f} ms "
            f"per window (fold scores {fold_seconds * 1e3:.1f} ms, estimate "
            f"{len(results)} metrics {estimate_seconds * 1e3:.2f} ms); estimated accuracy "
            f"{accuracy.value:.4f} [{accuracy.lower:.4f}, {accuracy.upper:.4f}], realized "
            f"{realized:.4f}; reference fit {fit_seconds:.2f} s on {label(reference_rows)} rows "
            f"({reference.calibrations[0].n_bins} calibration steps)")


def label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 else f"{rows // 1000}k"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip Evidently at 1M rows")
    parser.add_argument("--memory-child", choices=("driftloop", "evidently"))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.rows, args.reference_rows)
        return 0

    reference = make_frame(args.reference_rows, False, 1)
    profiles = build_profiles(reference)
    calibration = detectors.calibrate(profiles, seed=0)
    auto = detectors.DriftSettings()
    evidently_like = detectors.DriftSettings.evidently()
    truth = set(SHIFTED_NUMERIC) | set(SHIFTED_CATEGORICAL)

    times: dict[int, float] = {}
    for rows, evidently_runs in ((100_000, 3), (1_000_000, 0 if args.quick else 1)):
        current = make_frame(rows, True, 2)
        seconds, auto_result = timed(
            functools.partial(run_driftloop, profiles, current, auto, calibration), 5)
        times[rows] = seconds
        flagged = {f for f, r in auto_result.features.items() if r.drift}
        line = f"detectors {label(rows)}: driftloop {seconds * 1e3:.1f} ms"
        if evidently_runs:
            ev_seconds, snapshot = timed(functools.partial(run_evidently, reference, current),
                                         evidently_runs)
            line += f", evidently {ev_seconds * 1e3:.0f} ms, ratio {ev_seconds / seconds:.0f}x"
        if rows == 100_000:
            line += (f"; peak MB driftloop {peak_mb('driftloop', rows, args.reference_rows):.1f},"
                     f" evidently {peak_mb('evidently', rows, args.reference_rows):.0f}")
        print(line, flush=True)
        print(f"detectors {label(rows)} (threshold auto): flagged {len(flagged & truth)} of "
              f"{len(truth)} shifted columns, {len(flagged - truth)} of "
              f"{len(profiles) - len(truth)} stable columns", flush=True)
        if evidently_runs:
            ours = run_driftloop(profiles, current, evidently_like, None)
            theirs = evidently_verdicts(snapshot)
            agree = sum(ours.features[c].drift == theirs[c][3] for c in theirs)
            diff = max(abs((ours.features[c].score or 0.0) - theirs[c][1]) for c in theirs)
            print(f"detectors {label(rows)} verdicts with Evidently's methods and thresholds: "
                  f"{agree} of {len(theirs)} columns agree with Evidently "
                  f"(largest score difference {diff:.4f})", flush=True)
    print(cbpe_line(100_000, args.reference_rows), flush=True)
    for line in cbpe_accuracy_lines():
        print(line, flush=True)
    per_row = {rows: seconds / rows * 1e9 for rows, seconds in times.items()}
    growth = per_row[1_000_000] / per_row[100_000]
    print(f"detectors growth: {per_row[100_000]:.0f} ns per row at 100k, "
          f"{per_row[1_000_000]:.0f} ns per row at 1M ({growth:.2f}x per row for 10x the rows)",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
