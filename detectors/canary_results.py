"""The canary judge's settings and results (frozen, JSON-safe both ways).

A ``CanaryVerdict`` is ``pass | fail | inconclusive`` with a 0-100 score and one
``CheckResult`` per check. A check says its method, the statistic and the
threshold it was compared with, the direction a pass needs (``above``: the
statistic must be shown above the threshold; ``below``: shown below), the one-sided
confidence bounds when the statistic is a difference, the rows per arm and a
sentence a person can read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from detectors.performance import METRICS
from detectors.twosample import Outcome

__all__ = [
    "CHECKS",
    "DEFAULT_CRITICAL",
    "DEFAULT_WEIGHTS",
    "CanaryVerdict",
    "CheckResult",
    "JudgeSettings",
    "Outcome",
]

CHECKS = ("traffic", "performance", "invalid_rate", "prediction_divergence", "latency")
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "performance": 2.0,
    "invalid_rate": 1.0,
    "prediction_divergence": 1.0,
    "latency": 1.0,
}
DEFAULT_CRITICAL = frozenset({"performance", "invalid_rate"})


@dataclass(frozen=True)
class JudgeSettings:
    """How one interval is judged.

    ``max_performance_drop`` is in the judged metric's units (accuracy points, mae
    units...): a challenger passes performance when shown no worse than the
    champion by more than it. ``max_latency_increase`` is relative to the
    champion's mean latency. ``critical`` checks force the verdict: a failing one
    makes it ``fail`` with score 0, an inconclusive one makes it ``inconclusive``.
    Otherwise the score (weighted share of passing conclusive checks) reads as
    Kayenta: ``pass`` at >= ``pass_score``, ``fail`` below ``marginal_score``,
    ``inconclusive`` (marginal) between.
    """

    metric: str = "accuracy"
    min_events: int = 2000
    min_labels: int = 100
    confidence: float = 0.95
    max_performance_drop: float = 0.0
    max_divergence: float = 0.1
    max_invalid_increase: float = 0.01
    max_latency_increase: float = 0.2
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    critical: frozenset[str] = DEFAULT_CRITICAL
    pass_score: float = 95.0
    marginal_score: float = 75.0

    def __post_init__(self) -> None:
        problems = []
        if self.metric not in METRICS:
            problems.append(f"metric: got {self.metric!r}, expected one of {', '.join(METRICS)}")
        if self.min_events < 1 or self.min_labels < 2:
            problems.append(f"min_events/min_labels: got {self.min_events}/{self.min_labels}, "
                            "expected >= 1 / >= 2")
        if not 0.5 < self.confidence < 1.0:
            problems.append(f"confidence: got {self.confidence}, expected a value in (0.5, 1)")
        for name in ("max_performance_drop", "max_divergence", "max_invalid_increase",
                     "max_latency_increase"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name}: got {getattr(self, name)}, expected >= 0")
        unknown = sorted((set(self.weights) | set(self.critical)) - set(DEFAULT_WEIGHTS))
        if unknown:
            problems.append(f"weights/critical: unknown checks {unknown}; "
                            f"known: {', '.join(DEFAULT_WEIGHTS)}")
        if any(w < 0 for w in self.weights.values()):
            problems.append(f"weights: got {dict(self.weights)}, expected values >= 0")
        if not 0 <= self.marginal_score <= self.pass_score <= 100:
            problems.append(f"scores: got marginal {self.marginal_score}, pass {self.pass_score},"
                            " expected 0 <= marginal <= pass <= 100")
        if problems:
            raise ValueError("canary judge settings " + "; ".join(problems))

    def weight(self, check: str) -> float:
        return float(self.weights.get(check, DEFAULT_WEIGHTS.get(check, 0.0)))


@dataclass(frozen=True)
class CheckResult:
    """One check of one interval; ``statistic`` is None when it could not be computed."""

    name: str
    method: str
    outcome: Outcome
    statistic: float | None
    threshold: float
    direction: Literal["above", "below"]
    n_champion: int
    n_challenger: int
    sentence: str
    champion_value: float | None = None
    challenger_value: float | None = None
    lower: float | None = None
    upper: float | None = None
    p_value: float | None = None
    critical: bool = False
    weight: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: non-finite numbers become None."""
        return {k: _finite(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class CanaryVerdict:
    """The judgement of one interval. ``estimated``: performance was judged on
    estimated values because labels were missing. ``score`` is None when no check
    was conclusive (e.g. too little traffic)."""

    outcome: Outcome
    score: float | None
    reason: str
    checks: tuple[CheckResult, ...]
    n_champion: int
    n_challenger: int
    metric: str
    estimated: bool = False

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def failed_checks(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if c.outcome == "fail")

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "verdict": self.outcome,  # the name Argo Rollouts' successCondition examples read
            "score": _finite(self.score),
            "reason": self.reason,
            "estimated": self.estimated,
            "metric": self.metric,
            "n_champion": self.n_champion,
            "n_challenger": self.n_challenger,
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanaryVerdict:
        return cls(
            outcome=data["outcome"],
            score=None if data.get("score") is None else float(data["score"]),
            reason=str(data.get("reason", "")),
            checks=tuple(CheckResult.from_dict(c) for c in data.get("checks") or ()),
            n_champion=int(data.get("n_champion", 0)),
            n_challenger=int(data.get("n_challenger", 0)),
            metric=str(data.get("metric", "")),
            estimated=bool(data.get("estimated", False)),
        )


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
