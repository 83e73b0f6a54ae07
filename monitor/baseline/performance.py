"""The task of a model and its reference performance, part of the baseline.

Classification labels are compared as canonical strings (``1`` and ``1.0`` and
``True`` in a CSV all mean one class); for the detectors' metrics they are
encoded as integer codes over the reference classes, with the binary positive
class as 1. ``max_drop: auto`` is calibrated here the NannyML way: the metric is
computed on random reference chunks of each calibration window size, and the
allowed drop is 3 standard deviations of it, interpolated in log(n).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import detectors
from monitor.errors import InputError
from monitor.tables import categorical_array, numeric_array

__all__ = [
    "METRICS",
    "PerformanceReference",
    "classification_labels",
    "detector_metric",
    "encode_labels",
    "infer_task",
    "label_arrays",
    "metric_value",
    "reference_performance",
]

METRICS: Mapping[str, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"),
    "multiclass": ("accuracy", "f1"),
    "regression": ("mae", "rmse", "mape"),
}
_NEEDS_SCORE = frozenset({"roc_auc", "log_loss"})
# a target with more distinct numbers than this is a regression target
_MAX_CLASSES = 20


@dataclass(frozen=True)
class PerformanceReference:
    """Reference metric values, the class labels, and for ``max_drop: auto`` the allowed
    drop of each metric at each calibration window size (``max_drop[metric][i]`` at
    ``window_sizes[i]`` labeled rows)."""

    task: str
    metrics: dict[str, float]
    labeled_rows: int
    classes: tuple[str, ...] = ()
    positive_class: str | None = None
    window_sizes: tuple[int, ...] = ()
    max_drop: dict[str, tuple[float, ...]] | None = None

    def auto_max_drop(self, metric: str, n_rows: int) -> float:
        """The calibrated drop at ``n_rows`` labeled rows, interpolated in log(n) and held
        constant outside the grid (below 100 rows a window is inconclusive anyway)."""
        drops = (self.max_drop or {}).get(metric)
        if not drops or not self.window_sizes:
            return 0.0
        sizes = np.log(np.asarray(self.window_sizes, dtype=np.float64))
        return float(np.interp(np.log(max(n_rows, 1)), sizes, np.asarray(drops, np.float64)))

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "metrics": dict(self.metrics),
                "labeled_rows": self.labeled_rows, "classes": list(self.classes),
                "positive_class": self.positive_class, "window_sizes": list(self.window_sizes),
                "max_drop": None if self.max_drop is None
                else {k: list(v) for k, v in self.max_drop.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerformanceReference:
        drops = data.get("max_drop")
        return cls(
            task=str(data["task"]),
            metrics={str(k): float(v) for k, v in data["metrics"].items()},
            labeled_rows=int(data["labeled_rows"]),
            classes=tuple(str(c) for c in data.get("classes", ())),
            positive_class=data.get("positive_class"),
            window_sizes=tuple(int(w) for w in data.get("window_sizes", ())),
            max_drop=None if drops is None
            else {str(k): tuple(float(x) for x in v) for k, v in drops.items()},
        )


def detector_metric(task: str, metric: str) -> str:
    """The detectors' name of a configured metric (multiclass f1 is the macro F1)."""
    return "f1_macro" if task == "multiclass" and metric == "f1" else metric


def infer_task(frame: pd.DataFrame, target: str | None, prediction: str | None,
               source: str) -> str | None:
    """binary, multiclass or regression from the target (else the prediction) column."""
    column = target or prediction
    if column is None:
        return None
    values = frame[column].dropna()
    if values.empty:
        raise InputError(f"{source}: column {column!r} has no values, expected labels")
    if pd.api.types.is_bool_dtype(values):
        return "binary"
    if pd.api.types.is_numeric_dtype(values):
        floats = values.to_numpy(dtype=np.float64)
        integral = bool(np.all(np.mod(floats, 1.0) == 0.0))
        if not integral or values.nunique() > _MAX_CLASSES:
            return "regression"
    return "binary" if values.nunique() <= 2 else "multiclass"


def classification_labels(task: str, target: pd.Series,
                          prediction: pd.Series) -> tuple[tuple[str, ...], str | None]:
    """The classes seen in target or prediction, and the binary positive class."""
    if task == "regression":
        return (), None
    seen = set(categorical_array(target).tolist()) | set(categorical_array(prediction).tolist())
    classes = tuple(sorted(c for c in seen if c is not None))
    positive = None
    if task == "binary":
        for candidate in ("1", "true", "yes", "positive"):
            if candidate in classes:
                positive = candidate
                break
        else:
            positive = classes[-1] if classes else None
    return classes, positive


def encode_labels(reference: PerformanceReference, y_true: np.ndarray,
                  y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical labels -> what the detectors' metrics take: floats for regression,
    0/1 for binary (1 = positive class), codes over the reference classes otherwise
    (a class the reference never saw gets its own code, so it is never "right")."""
    if reference.task == "regression":
        return np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if reference.task == "binary":
        positive = reference.positive_class
        return ((np.asarray(y_true, dtype=object) == positive).astype(np.int64),
                (np.asarray(y_pred, dtype=object) == positive).astype(np.int64))
    index = {c: i for i, c in enumerate(reference.classes)}
    unknown = len(index)
    true_codes = np.fromiter((index.get(v, unknown) for v in y_true), np.int64, len(y_true))
    pred_codes = np.fromiter((index.get(v, unknown + 1) for v in y_pred), np.int64, len(y_pred))
    return true_codes, pred_codes


def metric_value(reference: PerformanceReference, metric: str, y_true: np.ndarray,
                 y_pred: np.ndarray, score: np.ndarray | None) -> float:
    true_enc, pred_enc = encode_labels(reference, y_true, y_pred)
    return float(detectors.performance_metric(
        detector_metric(reference.task, metric), true_enc, pred_enc, score=score))


def label_arrays(
    task: str, frame: pd.DataFrame, target: str, prediction: str, score: str | None,
    source: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Canonical (y_true, y_pred, score) of the rows where target and prediction are known."""
    known = frame[target].notna() & frame[prediction].notna()
    part = frame.loc[known]
    if task == "regression":
        y_true, bad, first = numeric_array(part[target], source)
        if bad:
            raise InputError(f"{source}: target column {target!r} {first} is not a number")
        y_pred, bad, first = numeric_array(part[prediction], source)
        if bad:
            raise InputError(f"{source}: prediction column {prediction!r} {first} is not a number")
    else:
        y_true, y_pred = categorical_array(part[target]), categorical_array(part[prediction])
    scores = None
    if score is not None:
        scores, bad, first = numeric_array(part[score], source)
        if bad:
            raise InputError(f"{source}: score column {score!r} {first} is not a number")
    return y_true, y_pred, scores


def reference_performance(task: str, frame: pd.DataFrame, target: str, prediction: str,
                          score: str | None, labels: tuple[tuple[str, ...], str | None],
                          window_sizes: Sequence[int], seed: int,
                          source: str) -> PerformanceReference | None:
    y_true, y_pred, scores = label_arrays(task, frame, target, prediction, score, source)
    if len(y_true) == 0:
        return None
    classes, positive = labels
    shell = PerformanceReference(task=task, metrics={}, labeled_rows=len(y_true),
                                 classes=classes, positive_class=positive)
    usable_scores = scores is not None and not np.isnan(scores).any()
    metrics = [m for m in METRICS[task] if m not in _NEEDS_SCORE or usable_scores]
    values: dict[str, float] = {}
    for metric in metrics:
        value = metric_value(shell, metric, y_true, y_pred, scores if usable_scores else None)
        if np.isfinite(value):
            values[metric] = value
    rng = np.random.default_rng(seed)
    true_enc, pred_enc = encode_labels(shell, y_true, y_pred)
    sizes = tuple(int(w) for w in window_sizes)
    drops = {
        metric: tuple(
            detectors.calibrate_max_drop(
                detector_metric(task, metric), true_enc, pred_enc,
                scores if usable_scores else None, window_rows=size, seed=rng)
            for size in sizes)
        for metric in values}
    return PerformanceReference(
        task=task, metrics=values, labeled_rows=len(y_true), classes=classes,
        positive_class=positive, window_sizes=sizes, max_drop=drops)
