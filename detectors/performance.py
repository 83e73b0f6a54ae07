"""Model performance metrics (numpy only) and the degradation check.

Binary metrics take labels 0/1 (or bools) with positive class 1 and, for
roc_auc and log_loss, ``score`` = probability of class 1. ``f1`` is the binary
F1 for such labels and the macro F1 otherwise (``f1_macro`` always macro).
Multiclass log_loss takes ``scores`` (rows x classes, classes 0..k-1).

>>> import numpy as np
>>> performance_metric("accuracy", np.array([1, 0, 1]), np.array([1, 1, 1]))
0.6666666666666666
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from detectors.results import PerformanceResult

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "calibrate_max_drop",
    "evaluate_performance",
    "performance_metric",
]

HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "f1_macro", "roc_auc"})
METRICS = (*sorted(HIGHER_IS_BETTER), "log_loss", "mae", "rmse", "mape")
# the smallest drop called a degradation: 1 point for bounded scores, 1% for losses
# and errors, whose scale is the data's
MIN_DROP_ABSOLUTE = 0.01
MIN_DROP_RELATIVE = 0.01
_EPS = float(np.finfo(np.float64).eps)


def _binary(values: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(values)
    if v.dtype == bool:
        return v
    if not np.all(np.isin(v, (0, 1))):
        raise ValueError(f"{name}: got labels {np.unique(v)[:5].tolist()}, expected 0/1")
    return v == 1


def _f1(t: np.ndarray, p: np.ndarray) -> float:
    tp = np.count_nonzero(t & p)
    denominator = np.count_nonzero(t) + np.count_nonzero(p)
    return 2.0 * tp / denominator if denominator else 0.0


def _is_binary(*arrays: np.ndarray) -> bool:
    return all(a.dtype == bool or np.all(np.isin(a, (0, 1))) for a in arrays)


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    classes = np.unique(np.concatenate([y_true, y_pred]))
    return float(np.mean([_f1(y_true == c, y_pred == c) for c in classes]))


def _roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    positive = _binary(y_true, "roc_auc y_true")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan  # undefined with one class; the caller reports inconclusive
    ranks = stats.rankdata(score)  # ties get their average rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _log_loss(y_true: np.ndarray, score: np.ndarray | None,
              scores: np.ndarray | None) -> float:
    if scores is not None:
        probs = np.clip(np.asarray(scores, np.float64), _EPS, 1 - _EPS)
        probs = probs / probs.sum(axis=1, keepdims=True)
        picked = probs[np.arange(len(y_true)), np.asarray(y_true, dtype=np.int64)]
        return float(-np.mean(np.log(picked)))
    if score is None:
        raise ValueError("log_loss: got no score, expected probabilities of class 1")
    p = np.clip(np.asarray(score, np.float64), _EPS, 1 - _EPS)
    t = _binary(y_true, "log_loss y_true")
    return float(-np.mean(np.where(t, np.log(p), np.log1p(-p))))


def performance_metric(metric: str, y_true: np.ndarray, y_pred: np.ndarray | None,
                       score: np.ndarray | None = None,
                       scores: np.ndarray | None = None) -> float:
    """The metric on labeled rows; NaN when undefined (no rows, one class for roc_auc)."""
    y_true = np.asarray(y_true)
    if y_true.size == 0:
        return math.nan
    if metric == "roc_auc":
        if score is None:
            raise ValueError("roc_auc: got no score, expected probabilities of class 1")
        return _roc_auc(y_true, np.asarray(score, np.float64))
    if metric == "log_loss":
        return _log_loss(y_true, score, scores)
    if y_pred is None:
        raise ValueError(f"{metric}: got no predictions, expected y_pred")
    y_pred = np.asarray(y_pred)
    if metric == "accuracy":
        return float(np.mean(y_true == y_pred))
    if metric in ("mae", "rmse", "mape"):
        err = y_pred.astype(np.float64) - y_true.astype(np.float64)
        if metric == "mae":
            return float(np.mean(np.abs(err)))
        if metric == "rmse":
            return float(math.sqrt(np.mean(err * err)))
        # as sklearn: a fraction, with |y| floored at machine epsilon
        return float(np.mean(np.abs(err) / np.maximum(np.abs(y_true.astype(float)), _EPS)))
    if metric == "f1_macro" or (metric == "f1" and not _is_binary(y_true, y_pred)):
        return _macro_f1(y_true, y_pred)
    t, p = _binary(y_true, f"{metric} y_true"), _binary(y_pred, f"{metric} y_pred")
    if metric == "f1":
        return _f1(t, p)
    if metric == "precision":
        return np.count_nonzero(t & p) / max(int(np.count_nonzero(p)), 1)
    if metric == "recall":
        return np.count_nonzero(t & p) / max(int(np.count_nonzero(t)), 1)
    raise ValueError(f"performance metric: got {metric!r}, expected one of {', '.join(METRICS)}")


def _min_drop(metric: str, baseline: float) -> float:
    return MIN_DROP_ABSOLUTE if metric in HIGHER_IS_BETTER else MIN_DROP_RELATIVE * abs(baseline)


def calibrate_max_drop(metric: str, y_true: np.ndarray, y_pred: np.ndarray | None,
                       score: np.ndarray | None = None, *, window_rows: int,
                       resamples: int = 100, seed: int | np.random.Generator = 0,
                       scores: np.ndarray | None = None) -> float:
    """``max_drop: auto``: 3 std of the metric over bootstrap windows of ``window_rows``
    reference rows, at least the minimum drop. Bootstrap (with replacement) because a
    production window is an independent sample; chunks of the reference would shrink
    the spread as the window approaches the reference's size."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    y_true = np.asarray(y_true)
    n = y_true.size
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, n, size=window_rows)
        values.append(performance_metric(
            metric, y_true[idx], None if y_pred is None else np.asarray(y_pred)[idx],
            None if score is None else np.asarray(score)[idx],
            None if scores is None else np.asarray(scores)[idx]))
    finite = np.asarray([v for v in values if not math.isnan(v)])
    baseline = performance_metric(metric, y_true, y_pred, score, scores)
    spread = 3.0 * float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return max(spread, _min_drop(metric, baseline))


def evaluate_performance(metric: str, y_true: np.ndarray, y_pred: np.ndarray | None,
                         score: np.ndarray | None, baseline_value: float, max_drop: float, *,
                         scores: np.ndarray | None = None,
                         min_rows: int = 100) -> PerformanceResult:
    """Degraded when the metric is worse than ``baseline_value`` by more than ``max_drop``."""
    rows = int(np.asarray(y_true).size)
    value = performance_metric(metric, y_true, y_pred, score, scores) if rows else math.nan
    if rows < min_rows or math.isnan(value):
        return PerformanceResult(metric=metric, value=None if math.isnan(value) else value,
                                 baseline=baseline_value, max_drop=max_drop, degraded=False,
                                 labeled_rows=rows, status="inconclusive")
    if metric in HIGHER_IS_BETTER:
        degraded = value < baseline_value - max_drop
    else:
        degraded = value > baseline_value + max_drop
    return PerformanceResult(metric=metric, value=value, baseline=baseline_value,
                             max_drop=max_drop, degraded=degraded, labeled_rows=rows,
                             status="degraded" if degraded else "ok")
