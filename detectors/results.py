"""Frozen result objects. Each says which method ran, the statistic, the threshold
used, its direction, the sample sizes and a status; too little data is
``inconclusive``, never ``ok``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "DatasetDriftResult",
    "DriftResult",
    "EstimatedPerformanceResult",
    "PerformanceResult",
    "QualityResult",
]

Direction = Literal["above", "below"]
Status = Literal["drift", "ok", "inconclusive"]


@dataclass(frozen=True)
class DriftResult:
    """One feature's drift test.

    direction "above": a distance, drift when ``statistic >= threshold``;
    direction "below": a test, drift when ``p_value < threshold``.
    """

    feature: str
    method: str
    statistic: float | None
    threshold: float
    direction: Direction
    n_reference: int
    n_current: int
    status: Status
    p_value: float | None = None

    @property
    def drift(self) -> bool:
        return self.status == "drift"

    @property
    def score(self) -> float | None:
        """The number compared with the threshold (p-value for tests)."""
        return self.p_value if self.direction == "below" else self.statistic

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: a non-finite statistic (chi-square with an unseen category) is None."""
        data = {**asdict(self), "drift": self.drift, "score": self.score}
        if self.statistic is not None and not math.isfinite(self.statistic):
            data["statistic"] = None
        return data


@dataclass(frozen=True)
class DatasetDriftResult:
    """Share of drifting features among the conclusive ones, against ``share_threshold``.

    ``status`` is "inconclusive" when no feature had enough rows.
    """

    features: dict[str, DriftResult]
    drift_share: float
    share_threshold: float
    dataset_drift: bool
    n_features: int
    correction: str
    status: Status = "ok"

    @property
    def n_drifted(self) -> int:
        return sum(r.drift for r in self.features.values())

    def to_dict(self) -> dict[str, Any]:
        return {"features": {k: v.to_dict() for k, v in self.features.items()},
                "drift_share": self.drift_share, "share_threshold": self.share_threshold,
                "dataset_drift": self.dataset_drift, "n_features": self.n_features,
                "n_drifted": self.n_drifted, "correction": self.correction,
                "status": self.status}


@dataclass(frozen=True)
class QualityResult:
    """Data-quality checks of one window; ``violations`` are sentences.

    status: "violation" when any check failed, "inconclusive" for an empty window.
    """

    missing: dict[str, float]
    unseen_categories: dict[str, list[str]]
    out_of_range: dict[str, float]
    type_violations: dict[str, int]
    missing_columns: list[str]
    violations: list[str] = field(default_factory=list)
    status: Literal["ok", "violation", "inconclusive"] = "ok"
    extra_columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PerformanceResult:
    """A metric on labeled rows against its reference value.

    ``degraded`` when the metric is worse than ``baseline`` by more than ``max_drop``
    (lower for accuracy-like metrics, higher for losses and errors).
    """

    metric: str
    value: float | None
    baseline: float
    max_drop: float
    degraded: bool
    labeled_rows: int
    status: Literal["degraded", "ok", "inconclusive"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EstimatedPerformanceResult:
    """A classifier metric estimated without labels (CBPE), against its reference value.

    ``lower`` / ``upper``: the band the realized metric should fall in (sampling error
    given the calibrated probabilities). ``degraded`` when ``value < threshold`` (every
    estimated metric is higher-is-better). status "inconclusive" (value and band None)
    when the window has too few rows or the metric is undefined on it.
    """

    metric: str
    value: float | None
    lower: float | None
    upper: float | None
    baseline: float
    threshold: float
    degraded: bool
    status: Literal["degraded", "ok", "inconclusive"]
    n: int
    method: str = "cbpe"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
