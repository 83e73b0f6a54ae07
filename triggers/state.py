"""Per-model trigger state and the one table of allowed phase transitions.

A model is ``idle`` or ``running`` (one retrain in flight). Cooldown is not a
phase but a time (``cooldown_until``), because it ends by itself. The state is
a frozen value: ``policy.decide`` returns a new one, and the service persists
it (``to_dict`` / ``from_dict``) before acting, so a restart resumes with the
same streaks, cooldown and seen windows/alerts.

TRANSITIONS (phase, event) -> phase; anything not listed is a bug::

    idle     launch   running   a trigger was met, not in cooldown, nothing running
    idle     hold     idle      no trigger met / disabled / duplicate / in cooldown
    running  hold     running   a trigger while a run is in flight is suppressed
    running  finish   idle      the running run's outcome arrived (cooldown continues)
    running  expire   idle      the run outlived run_timeout_seconds: presumed lost
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Literal

__all__ = ["TRANSITIONS", "Event", "Phase", "TriggerState", "transition"]

Phase = Literal["idle", "running"]
Event = Literal["launch", "hold", "finish", "expire"]

TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    ("idle", "launch"): "running",
    ("idle", "hold"): "idle",
    ("running", "hold"): "running",
    ("running", "finish"): "idle",
    ("running", "expire"): "idle",
}

_TIMES = ("cooldown_until", "running_since", "last_launch_at")
_TUPLES = ("seen_windows", "seen_alerts", "seen_requests", "realized_versions")


@dataclass(frozen=True)
class TriggerState:
    """Everything ``decide`` needs to remember about one model."""

    model: str
    phase: Phase = "idle"
    # consecutive windows showing each signal; a window without it resets it to 0
    drift_windows: int = 0
    performance_windows: int = 0
    estimated_windows: int = 0
    quality_windows: int = 0
    cooldown_until: datetime | None = None
    running_key: str | None = None
    running_reason: str | None = None
    running_since: datetime | None = None
    last_launch_at: datetime | None = None
    launches: int = 0
    # bounded memories for de-duplication (oldest first)
    seen_windows: tuple[str, ...] = ()
    seen_alerts: tuple[str, ...] = ()
    seen_requests: tuple[str, ...] = ()
    # versions with a realized performance window: their estimate no longer stands in for
    # it (Policy.use_estimate)
    realized_versions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            data[item.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TriggerState:
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"trigger state: unknown keys {unknown}; expected {sorted(known)}")
        values = dict(data)
        for name in _TIMES:
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        for name in _TUPLES:
            values[name] = tuple(values.get(name) or ())
        if values.get("phase", "idle") not in ("idle", "running"):
            raise ValueError(
                f"trigger state phase: got {values['phase']!r}, expected idle or running"
            )
        return cls(**values)


def transition(state: TriggerState, event: Event, **changes: Any) -> TriggerState:
    """The state after ``event``; KeyError for a pair TRANSITIONS does not allow."""
    try:
        phase = TRANSITIONS[(state.phase, event)]
    except KeyError:
        raise KeyError(
            f"trigger state {state.model}: no transition for {event!r} from {state.phase!r}"
        ) from None
    return replace(state, phase=phase, **changes)
