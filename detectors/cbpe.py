"""Confidence-based performance estimation (CBPE): a classifier's degradation before labels.

Built once on the reference, where labels are known (``fit_cbpe``):

1. the scores are calibrated: isotonic regression of the labels on the scores
   (``detectors.isotonic``; one-vs-rest per class for a multiclass model);
2. the baseline of each metric is its estimate on the whole reference (in-sample
   isotonic calibration makes it the realized value up to rows whose step
   straddles the decision threshold);
3. the degradation threshold is calibrated like the drift bounds: ``resamples``
   bootstrap windows of each grid size are drawn from the reference rows, the
   metric is estimated on each, and the threshold at n rows is mean - 3 std of
   those estimates (interpolated in log(n); the std falls as 1/sqrt(n) beyond the
   grid), and at least ``MIN_DROP`` below the baseline. Bootstrap rather than
   chunks, as in ``performance.calibrate_max_drop``: a production window is an
   independent sample.

A window needs only its ``ConfidenceCounts`` (``CBPEReference.empty_counts``, then
``add_binary`` / ``add_multiclass`` per batch of rows); ``estimate_performance``
turns them into an ``EstimatedPerformanceResult`` whose band is the estimate
+- ``BAND_SIGMAS`` std of the realized metric around it.

CBPE assumes the calibration still holds: P(label | score) is unchanged and
only the mix of scores moved (covariate shift). A change of the concept itself
is invisible to it; realized performance, once labels arrive, is the check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from detectors.estimation import BINARY_METRICS, MULTICLASS_METRICS, ConfidenceCounts, estimate
from detectors.isotonic import ScoreCalibration, fit_isotonic
from detectors.results import EstimatedPerformanceResult

__all__ = [
    "BAND_SIGMAS",
    "CBPE_FORMAT_VERSION",
    "CBPE_WINDOW_SIZES",
    "MIN_DROP",
    "CBPEReference",
    "estimate_performance",
    "fit_cbpe",
]

CBPE_FORMAT_VERSION = 1
CBPE_WINDOW_SIZES = (100, 300, 1000, 3000, 10_000)
BAND_SIGMAS = 3.0  # as NannyML's CBPE band: the estimate +- 3 sampling errors
SIGMAS = 3.0
MIN_DROP = 0.01  # as performance.MIN_DROP_ABSOLUTE: one point of a bounded metric

Task = Literal["binary", "multiclass"]


@dataclass(frozen=True)
class CBPEReference:
    """Everything a window's estimate needs, JSON-safe through ``to_dict`` / ``from_dict``.

    ``calibrations``: one for a binary model (P(class 1 | score)), one per class for a
    multiclass model. ``baseline[metric]``: the reference's estimate; ``mean[metric][i]``
    and ``std[metric][i]``: of the estimate over bootstrap windows of ``window_sizes[i]``.
    """

    task: Task
    calibrations: tuple[ScoreCalibration, ...]
    threshold: float
    baseline: dict[str, float]
    window_sizes: tuple[int, ...]
    mean: dict[str, tuple[float, ...]]
    std: dict[str, tuple[float, ...]]
    sigmas: float = SIGMAS

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.baseline)

    def empty_counts(self) -> ConfidenceCounts:
        return ConfidenceCounts.empty(self.calibrations[0] if self.task == "binary" else None)

    def add(self, counts: ConfidenceCounts, *, score: np.ndarray | None = None,
            scores: np.ndarray | None = None, predicted: np.ndarray | None = None) -> None:
        """Fold rows into ``counts``: ``score`` (binary) or ``scores`` (multiclass)."""
        if self.task == "binary":
            if score is None:
                raise ValueError("binary estimate: got no score, expected P(class 1) per row")
            counts.add_binary(self.calibrations[0], score, predicted, self.threshold)
        else:
            if scores is None:
                raise ValueError("multiclass estimate: got no scores, expected rows x classes")
            counts.add_multiclass(self.calibrations, scores, predicted)

    def lower_bound(self, metric: str, n: int) -> float:
        """mean - sigmas * std of the estimate over reference windows of n rows."""
        sizes = np.log(np.asarray(self.window_sizes, np.float64))
        mean, std = np.asarray(self.mean[metric]), np.asarray(self.std[metric])
        n = max(int(n), 1)
        at = math.log(n)
        centre = float(np.interp(at, sizes, mean))
        if n < self.window_sizes[0]:
            spread = float(std[0]) * math.sqrt(self.window_sizes[0] / n)
        elif n > self.window_sizes[-1]:
            spread = float(std[-1]) * math.sqrt(self.window_sizes[-1] / n)
        else:
            spread = float(np.interp(at, sizes, std))
        return centre - self.sigmas * spread

    def to_dict(self) -> dict[str, Any]:
        return {"version": CBPE_FORMAT_VERSION, "task": self.task,
                "calibrations": [c.to_dict() for c in self.calibrations],
                "threshold": self.threshold, "baseline": dict(self.baseline),
                "window_sizes": list(self.window_sizes),
                "mean": {k: list(v) for k, v in self.mean.items()},
                "std": {k: list(v) for k, v in self.std.items()}, "sigmas": self.sigmas}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CBPEReference:
        version = int(data.get("version", 0))
        if version != CBPE_FORMAT_VERSION:
            raise ValueError(f"CBPE reference version: got {version}, "
                             f"expected {CBPE_FORMAT_VERSION}")
        task = data["task"]
        if task not in ("binary", "multiclass"):
            raise ValueError(f"CBPE reference task: got {task!r}, expected binary or multiclass")
        return cls(task=task,
                   calibrations=tuple(ScoreCalibration.from_dict(c)
                                      for c in data["calibrations"]),
                   threshold=float(data["threshold"]),
                   baseline={str(k): float(v) for k, v in data["baseline"].items()},
                   window_sizes=tuple(int(n) for n in data["window_sizes"]),
                   mean={str(k): tuple(float(x) for x in v) for k, v in data["mean"].items()},
                   std={str(k): tuple(float(x) for x in v) for k, v in data["std"].items()},
                   sigmas=float(data.get("sigmas", SIGMAS)))


def _counts_of_rows(reference: CBPEReference, rows: np.ndarray, score: np.ndarray | None,
                    scores: np.ndarray | None, predicted: np.ndarray | None) -> ConfidenceCounts:
    counts = reference.empty_counts()
    reference.add(counts, score=None if score is None else score[rows],
                  scores=None if scores is None else scores[rows],
                  predicted=None if predicted is None else predicted[rows])
    return counts


def fit_cbpe(y_true: np.ndarray, *, score: np.ndarray | None = None,
             scores: np.ndarray | None = None, predicted: np.ndarray | None = None,
             threshold: float = 0.5, calibrate: bool = True,
             window_sizes: Sequence[int] = CBPE_WINDOW_SIZES, resamples: int = 100,
             seed: int | np.random.Generator = 0) -> CBPEReference:
    """The CBPE reference of a classifier from its labeled reference rows.

    Binary: ``y_true`` 0/1, ``score`` = the model's score for class 1, ``predicted`` its
    0/1 labels (None: score >= ``threshold``). Multiclass: ``y_true`` class indices
    0..k-1, ``scores`` rows x k. ``calibrate=False`` takes the scores as probabilities.
    Metrics undefined on the reference (recall without positives, ROC AUC with one
    class) are left out of ``baseline``.
    """
    y = np.asarray(y_true)
    calibrations: tuple[ScoreCalibration, ...]
    metrics: tuple[str, ...]
    if resamples < 2:
        raise ValueError(f"CBPE resamples: got {resamples}, expected at least 2")
    if score is not None:
        task: Task = "binary"
        s = np.asarray(score, np.float64)
        if s.shape != y.shape:
            raise ValueError(f"CBPE fit: got {s.size} scores for {y.size} labels, "
                             "expected one per label")
        calibrations = (fit_isotonic(s, y) if calibrate else ScoreCalibration.identity(),)
        metrics = BINARY_METRICS
    elif scores is not None:
        task = "multiclass"
        m = np.asarray(scores, np.float64)
        if m.ndim != 2 or m.shape[0] != y.size:
            raise ValueError(f"CBPE fit: got scores of shape {m.shape} for {y.size} labels, "
                             "expected rows x classes")
        calibrations = tuple(fit_isotonic(m[:, k], (y == k).astype(np.int64)) if calibrate
                             else ScoreCalibration.identity() for k in range(m.shape[1]))
        metrics = MULTICLASS_METRICS
    else:
        raise ValueError("CBPE fit: got neither score nor scores, expected one of them")
    sizes = tuple(sorted({int(n) for n in window_sizes}))
    draft = CBPEReference(task, calibrations, float(threshold), {}, sizes, {}, {})
    all_rows = np.arange(y.size)
    whole = _counts_of_rows(draft, all_rows, score, scores, predicted)
    baseline = {k: v for k in metrics if not math.isnan(v := estimate(whole, k).value)}
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    values = {k: np.full((len(sizes), resamples), np.nan) for k in baseline}
    for i, n in enumerate(sizes):
        for j in range(resamples):
            counts = _counts_of_rows(draft, rng.integers(0, y.size, size=n), score, scores,
                                     predicted)
            for k in baseline:
                values[k][i, j] = estimate(counts, k).value
    mean: dict[str, tuple[float, ...]] = {}
    std: dict[str, tuple[float, ...]] = {}
    for k, per_size in values.items():
        # a metric undefined on most small windows (rare positives) keeps the baseline and
        # no spread there: such windows are inconclusive anyway
        finite = [row[~np.isnan(row)] for row in per_size]
        mean[k] = tuple(float(f.mean()) if f.size > 1 else baseline[k] for f in finite)
        std[k] = tuple(float(f.std(ddof=1)) if f.size > 1 else 0.0 for f in finite)
    return CBPEReference(task, calibrations, float(threshold), baseline, sizes, mean, std)


def estimate_performance(reference: CBPEReference, counts: ConfidenceCounts, metric: str, *,
                         max_drop: float | Literal["auto"] = "auto",
                         min_rows: int = 100) -> EstimatedPerformanceResult:
    """The window's estimated ``metric`` against the reference.

    threshold: ``max_drop="auto"`` is min(mean - 3 std of the estimate over reference
    windows of the window's size, baseline - MIN_DROP); a number is baseline - max_drop.
    """
    if metric not in reference.baseline:
        raise ValueError(f"estimated metric: got {metric!r}, expected one of "
                         f"{', '.join(reference.metrics)} (defined on this reference)")
    baseline = reference.baseline[metric]
    if max_drop == "auto":
        threshold = min(reference.lower_bound(metric, counts.n), baseline - MIN_DROP)
    else:
        threshold = baseline - float(max_drop)
    calibration = reference.calibrations[0] if reference.task == "binary" else None
    found = estimate(counts, metric, calibration)
    if counts.n < min_rows or math.isnan(found.value):
        return EstimatedPerformanceResult(
            metric=metric, value=None if math.isnan(found.value) else found.value,
            lower=None, upper=None, baseline=baseline, threshold=threshold, degraded=False,
            status="inconclusive", n=counts.n)
    half = BAND_SIGMAS * found.std
    degraded = found.value < threshold
    return EstimatedPerformanceResult(
        metric=metric, value=found.value, lower=max(found.value - half, 0.0),
        upper=min(found.value + half, 1.0), baseline=baseline, threshold=threshold,
        degraded=degraded, status="degraded" if degraded else "ok", n=counts.n)
