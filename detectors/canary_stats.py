"""What the canary judge reads per arm: small summaries that merge exactly.

One ``ArmStats`` per (model version, interval) holds the event count, invalid
rows, prediction histogram counts over bins shared by both arms, ``Moments`` of a
per-row loss on joined labels and of latency, and optionally an estimated
performance (for when labels are late). Everything is a count or a sum, so the
summaries of several partitions or replicas add up to the summary of their union.

``Moments`` keeps (n, sum, sum of squares) rather than Welford's (n, mean, M2):
sums merge by addition in any order and persist as three plain numbers. The
variance then loses precision only when the mean exceeds the standard deviation
by ~10^6 or more, far from losses and latencies.

The per-row loss follows the performance metric's family (``judged_metric``):
accuracy-like classification metrics are judged on the 0/1 error (reported as
accuracy), mae and rmse on the absolute error (reported as mae), mape on the
absolute percentage error, log_loss on the per-row log loss.

>>> import numpy as np
>>> arm = ArmStats.of(4, loss=row_loss("accuracy", np.array([1, 0, 1, 1]), np.array([1, 1, 1, 1])))
>>> arm.loss.n, arm.loss.total
(4, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.performance import HIGHER_IS_BETTER, METRICS

__all__ = [
    "ArmEstimate",
    "ArmStats",
    "Moments",
    "histogram",
    "judged_metric",
    "row_loss",
]

_EPS = float(np.finfo(np.float64).eps)
_JUDGED = {"mae": "mae", "rmse": "mae", "mape": "mape", "log_loss": "log_loss"}


def judged_metric(metric: str) -> str:
    """The metric the canary compares for a configured performance metric."""
    if metric not in METRICS:
        raise ValueError(f"canary metric: got {metric!r}, expected one of {', '.join(METRICS)}")
    return "accuracy" if metric in HIGHER_IS_BETTER else _JUDGED[metric]


def row_loss(
    metric: str, y_true: np.ndarray, y_pred: np.ndarray | None, score: np.ndarray | None = None
) -> np.ndarray:
    """Per-row loss (lower is better) whose mean is the judged metric's loss.

    0/1 error for classification, absolute error for mae/rmse, absolute percentage
    error for mape (|y| floored at machine epsilon, as sklearn), log loss of
    ``score`` = P(class 1) for binary log_loss.
    """
    judged = judged_metric(metric)
    y_true = np.asarray(y_true)
    if judged == "log_loss":
        if score is None:
            raise ValueError("canary log_loss: got no score, expected probabilities of class 1")
        p = np.clip(np.asarray(score, np.float64), _EPS, 1 - _EPS)
        return np.where(y_true.astype(bool), -np.log(p), -np.log1p(-p))
    if y_pred is None:
        raise ValueError(f"canary {metric}: got no predictions, expected y_pred")
    y_pred = np.asarray(y_pred)
    if judged == "accuracy":
        return (y_true != y_pred).astype(np.float64)
    err = np.abs(y_pred.astype(np.float64) - y_true.astype(np.float64))
    if judged == "mape":
        return err / np.maximum(np.abs(y_true.astype(np.float64)), _EPS)
    return err


def histogram(
    values: np.ndarray, *, edges: Sequence[float] | None = None,
    categories: Sequence[str] | None = None,
) -> tuple[int, ...]:
    """Counts over shared bins: numeric ``edges`` (values outside join the end bins)
    or ``categories`` (plus a last bin for any other value). NaN/None are not counted."""
    if (edges is None) == (categories is None):
        raise ValueError("histogram: expected exactly one of edges or categories")
    if edges is not None:
        e = np.asarray(edges, np.float64)
        if e.size < 2 or np.any(np.diff(e) <= 0):
            raise ValueError(f"histogram edges: got {e.tolist()[:5]}, expected >= 2 increasing")
        x = np.asarray(values, np.float64)
        x = x[~np.isnan(x)]
        index = np.clip(np.searchsorted(e, x, side="right") - 1, 0, e.size - 2)
        return tuple(int(c) for c in np.bincount(index, minlength=e.size - 1))
    assert categories is not None
    position = {str(c): i for i, c in enumerate(categories)}
    counts = [0] * (len(position) + 1)
    for value in np.asarray(values, dtype=object):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        counts[position.get(str(value), len(position))] += 1
    return tuple(counts)


@dataclass(frozen=True)
class Moments:
    """Count, sum and sum of squares of a per-row quantity."""

    n: int = 0
    total: float = 0.0
    total_squares: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        x = np.asarray(values, np.float64)
        x = x[~np.isnan(x)]
        if not np.all(np.isfinite(x)):
            raise ValueError("moments: got infinite values, expected finite numbers")
        return cls(int(x.size), float(x.sum()), float(np.dot(x, x)))

    def merge(self, other: Moments) -> Moments:
        return Moments(
            self.n + other.n, self.total + other.total, self.total_squares + other.total_squares
        )

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1); NaN below 2 values."""
        if self.n < 2:
            return math.nan
        return max(self.total_squares - self.total * self.total / self.n, 0.0) / (self.n - 1)


@dataclass(frozen=True)
class ArmEstimate:
    """An estimated performance (e.g. CBPE accuracy), its standard error, over ``n`` rows."""

    value: float
    standard_error: float
    n: int

    def merge(self, other: ArmEstimate) -> ArmEstimate:
        # parts are independent: the pooled value is n-weighted, and so is its error
        total = self.n + other.n
        if total == 0:
            return self
        wa, wb = self.n / total, other.n / total
        se = math.sqrt((wa * self.standard_error) ** 2 + (wb * other.standard_error) ** 2)
        return ArmEstimate(wa * self.value + wb * other.value, se, total)


@dataclass(frozen=True)
class ArmStats:
    """One arm (champion or challenger) over one interval.

    ``n_invalid`` counts rows of this arm that failed validation or data-quality
    checks, among ``n_events``. ``loss`` covers joined (labeled) rows only.
    """

    n_events: int = 0
    n_invalid: int = 0
    prediction_counts: tuple[int, ...] = ()
    loss: Moments = field(default_factory=Moments)
    latency: Moments = field(default_factory=Moments)
    estimated: ArmEstimate | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.n_invalid <= self.n_events:
            raise ValueError(
                f"arm stats: got n_invalid={self.n_invalid} of n_events={self.n_events}, "
                "expected 0 <= n_invalid <= n_events"
            )

    @classmethod
    def of(
        cls, n_events: int, n_invalid: int = 0, prediction_counts: Sequence[int] = (),
        loss: np.ndarray | None = None, latency: np.ndarray | None = None,
        estimated: ArmEstimate | None = None,
    ) -> ArmStats:
        return cls(
            n_events, n_invalid, tuple(int(c) for c in prediction_counts),
            Moments() if loss is None else Moments.of(loss),
            Moments() if latency is None else Moments.of(latency),
            estimated,
        )

    def merge(self, other: ArmStats) -> ArmStats:
        counts = self.prediction_counts or other.prediction_counts
        if self.prediction_counts and other.prediction_counts:
            if len(self.prediction_counts) != len(other.prediction_counts):
                raise ValueError(
                    f"arm stats merge: got {len(self.prediction_counts)} and "
                    f"{len(other.prediction_counts)} prediction bins, expected the same bins"
                )
            counts = tuple(a + b for a, b in zip(self.prediction_counts,
                                                 other.prediction_counts, strict=True))
        estimated = self.estimated or other.estimated
        if self.estimated is not None and other.estimated is not None:
            estimated = self.estimated.merge(other.estimated)
        return ArmStats(
            self.n_events + other.n_events, self.n_invalid + other.n_invalid, counts,
            self.loss.merge(other.loss), self.latency.merge(other.latency), estimated,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_events": self.n_events,
            "n_invalid": self.n_invalid,
            "prediction_counts": list(self.prediction_counts),
            "loss": _moments_dict(self.loss),
            "latency": _moments_dict(self.latency),
            "estimated": None if self.estimated is None else {
                "value": self.estimated.value,
                "standard_error": self.estimated.standard_error,
                "n": self.estimated.n,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmStats:
        estimated = data.get("estimated")
        return cls(
            int(data["n_events"]),
            int(data.get("n_invalid", 0)),
            tuple(int(c) for c in data.get("prediction_counts") or ()),
            _moments(data.get("loss")),
            _moments(data.get("latency")),
            None if estimated is None else ArmEstimate(
                float(estimated["value"]), float(estimated["standard_error"]),
                int(estimated["n"]),
            ),
        )


def _moments_dict(m: Moments) -> dict[str, Any]:
    return {"n": m.n, "total": m.total, "total_squares": m.total_squares}


def _moments(data: Mapping[str, Any] | None) -> Moments:
    if not data:
        return Moments()
    return Moments(int(data["n"]), float(data["total"]), float(data["total_squares"]))
