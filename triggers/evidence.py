"""What ``policy.decide`` reacts to, and the policy's settings.

Each piece of evidence carries an identity, so the same window, alert or
manual request is never counted twice and a replay derives the same
idempotency key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "REASONS",
    "AlertEvidence",
    "Evidence",
    "ManualRequest",
    "Policy",
    "RunFinished",
    "WindowEvidence",
]

REASONS = (
    "dataset_drift",
    "performance_drop",
    "estimated_performance_drop",
    "quality",
    "alert",
    "manual",
)


@dataclass(frozen=True)
class Policy:
    """A model's retrain settings (``models.<name>.retrain`` plus ``drift.share``)."""

    on: frozenset[str] = frozenset({"dataset_drift", "performance_drop", "alert", "manual"})
    consecutive_windows: int = 2
    cooldown_seconds: float = 3600.0
    drift_share: float = 0.5
    # a run with no outcome after this long is presumed lost and stops blocking
    run_timeout_seconds: float = 86400.0
    # a person asking explicitly overrides the cooldown, never a running run
    manual_ignores_cooldown: bool = True
    # performance_drop reads a window's estimated performance while its version has no
    # realized performance yet (models.<name>.performance.use_estimate)
    use_estimate: bool = True
    remember: int = 256

    def __post_init__(self) -> None:
        unknown = sorted(set(self.on) - set(REASONS))
        if unknown:
            raise ValueError(f"retrain.on: unknown triggers {unknown}; known: {', '.join(REASONS)}")
        if self.consecutive_windows < 1:
            raise ValueError(
                f"retrain.consecutive_windows: got {self.consecutive_windows}, expected >= 1"
            )


@dataclass(frozen=True)
class WindowEvidence:
    """One evaluated window; ``None`` for a signal means "not measured" (no reset)."""

    window_id: str
    version: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    dataset_drift: bool | None = None
    drift_share: float | None = None
    performance_degraded: bool | None = None
    performance_metric: str | None = None
    performance_value: float | None = None
    performance_baseline: float | None = None
    estimated_degraded: bool | None = None
    estimated_value: float | None = None
    estimated_metric: str | None = None
    estimated_baseline: float | None = None
    quality_violations: tuple[str, ...] | None = None

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> WindowEvidence:
        """From a window result in the shape of design section 6.1.

        Identity is ``"<version>:<window>"`` (the window number within its
        version), falling back to the start time when there is no number.
        """
        version = None if result.get("version") is None else str(result["version"])
        window = result.get("window", result.get("start"))
        performance = result.get("performance") or {}
        estimated = result.get("estimated_performance") or {}
        quality = result.get("quality")
        violations = None
        if isinstance(quality, Mapping):
            violations = tuple(str(v) for v in quality.get("violations") or ())
        return cls(
            window_id=f"{version}:{window}",
            version=version,
            start=_time(result.get("start")),
            end=_time(result.get("end")),
            dataset_drift=_flag(result.get("dataset_drift")),
            drift_share=_number(result.get("drift_share")),
            performance_degraded=_flag(performance.get("degraded")),
            performance_metric=performance.get("metric"),
            performance_value=_number(performance.get("value")),
            performance_baseline=_number(performance.get("baseline")),
            # an inconclusive estimate (too few rows) measured nothing: no reset
            estimated_degraded=None if estimated.get("status") == "inconclusive"
            else _flag(estimated.get("degraded")),
            estimated_value=_number(estimated.get("value")),
            estimated_metric=estimated.get("metric"),
            estimated_baseline=_number(estimated.get("baseline")),
            quality_violations=violations,
        )


@dataclass(frozen=True)
class AlertEvidence:
    """A firing alert that asks for a retrain; identity is (fingerprint, startsAt)."""

    alertname: str
    fingerprint: str
    starts_at: datetime

    @property
    def identity(self) -> str:
        return f"{self.fingerprint}@{self.starts_at.isoformat()}"


@dataclass(frozen=True)
class ManualRequest:
    """``POST /api/v1/models/{model}/retrain``; ``request_id`` de-duplicates replays."""

    request_id: str
    requested_by: str = ""
    note: str = ""
    version: str | None = None


@dataclass(frozen=True)
class RunFinished:
    """The outcome of the run launched under ``idempotency_key`` (clears "running")."""

    idempotency_key: str
    outcome: Literal["succeeded", "failed", "unknown"]
    detail: str = ""


Evidence = WindowEvidence | AlertEvidence | ManualRequest | RunFinished


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
