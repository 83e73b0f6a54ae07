"""A model's canary as a persisted state machine: phases and the one transition table.

A decision that moves the registry is first persisted in a "-ing" phase with its
steps (``Pending``); a later tick applies the steps not done yet, reports them
(``progress``), and when all are done the canary moves on (``confirm``). A crash
anywhere in between resumes from the stored steps, and every step is idempotent,
so no alias moves twice and no hook is called again once recorded done.

TRANSITIONS (phase, event) -> phase; anything not listed raises::

    starting      progress  starting      some start steps applied
    starting      confirm   progressing   challenger alias set, version tagged, start hook called
    starting      abort     aborting      operator abort before the start was applied
    starting      fail      failed        a start step cannot be applied (e.g. version deleted)
    progressing   check     progressing   an interval judged; no limit reached
    progressing   promote   promoting     `iterations` passing checks in a row, or operator promote
    progressing   rollback  rolling_back  `threshold` failed checks, `max_inconclusive`
                                          inconclusive in a row, or operator rollback
    progressing   abort     aborting      operator abort
    promoting     progress  promoting
    promoting     confirm   succeeded     champion moved, previous_champion kept, challenger removed
    promoting     fail      failed
    rolling_back  progress  rolling_back
    rolling_back  confirm   rolled_back   challenger alias removed, version tagged rejected
    rolling_back  fail      failed
    aborting      progress  aborting
    aborting      confirm   aborted       challenger alias removed, version tagged aborted
    aborting      fail      failed
    succeeded     revert    reverting     operator rolls back a completed promotion
    reverting     progress  reverting
    reverting     confirm   reverted      champion back on previous_champion
    reverting     fail      failed

``succeeded`` (until reverted), ``rolled_back``, ``aborted``, ``reverted`` and
``failed`` are terminal: a new challenger starts a new canary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal, get_args

from triggers.moves import Step, step_from_dict

__all__ = [
    "PENDING_PHASES",
    "TERMINAL_PHASES",
    "TRANSITIONS",
    "CanaryPhase",
    "CanaryState",
    "HistoryEntry",
    "Pending",
    "PhaseEvent",
    "transition",
]

CanaryPhase = Literal[
    "starting", "progressing", "promoting", "rolling_back", "aborting", "reverting",
    "succeeded", "rolled_back", "aborted", "reverted", "failed",
]
PhaseEvent = Literal["progress", "confirm", "check", "promote", "rollback", "abort", "revert",
                     "fail"]

TRANSITIONS: dict[tuple[CanaryPhase, PhaseEvent], CanaryPhase] = {
    ("starting", "progress"): "starting",
    ("starting", "confirm"): "progressing",
    ("starting", "abort"): "aborting",
    ("starting", "fail"): "failed",
    ("progressing", "check"): "progressing",
    ("progressing", "promote"): "promoting",
    ("progressing", "rollback"): "rolling_back",
    ("progressing", "abort"): "aborting",
    ("promoting", "progress"): "promoting",
    ("promoting", "confirm"): "succeeded",
    ("promoting", "fail"): "failed",
    ("rolling_back", "progress"): "rolling_back",
    ("rolling_back", "confirm"): "rolled_back",
    ("rolling_back", "fail"): "failed",
    ("aborting", "progress"): "aborting",
    ("aborting", "confirm"): "aborted",
    ("aborting", "fail"): "failed",
    ("succeeded", "revert"): "reverting",
    ("reverting", "progress"): "reverting",
    ("reverting", "confirm"): "reverted",
    ("reverting", "fail"): "failed",
}
PENDING_PHASES = frozenset({"starting", "promoting", "rolling_back", "aborting", "reverting"})
TERMINAL_PHASES = frozenset({"succeeded", "rolled_back", "aborted", "reverted", "failed"})
_PHASES = frozenset(get_args(CanaryPhase))
# design section 8's driftloop_canary_status: 0 running, 1 succeeded, 2 failed
_STATUS = {"succeeded": "succeeded", "rolled_back": "failed", "aborted": "failed",
           "reverted": "failed", "failed": "failed"}


@dataclass(frozen=True)
class Pending:
    """A persisted decision whose steps are not all applied yet."""

    decision_id: str
    kind: str  # start, promote, rollback, abort, revert
    sentence: str
    steps: tuple[Step, ...]
    decided_at: datetime
    done: tuple[str, ...] = ()

    @property
    def remaining(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.key not in self.done)

    def to_dict(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "kind": self.kind, "sentence": self.sentence,
                "steps": [s.to_dict() for s in self.steps],
                "decided_at": self.decided_at.isoformat(), "done": list(self.done)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pending:
        return cls(data["decision_id"], data["kind"], data["sentence"],
                   tuple(step_from_dict(s) for s in data["steps"]),
                   datetime.fromisoformat(data["decided_at"]), tuple(data.get("done") or ()))


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    event: str
    decision_id: str | None
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "event": self.event,
                "decision_id": self.decision_id, "sentence": self.sentence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoryEntry:
        return cls(datetime.fromisoformat(data["at"]), data["event"], data.get("decision_id"),
                   data["sentence"])


@dataclass(frozen=True)
class CanaryState:
    """One canary: ``challenger`` judged against ``champion`` (the versions when it started).

    ``passed`` counts passing checks in a row (a failure resets it; an inconclusive
    check neither adds nor resets); ``failed_checks`` is never reset (as Flagger);
    ``inconclusive_in_a_row`` resets on any conclusive check.
    """

    model: str
    phase: CanaryPhase
    champion: str
    challenger: str
    started_at: datetime
    updated_at: datetime
    passed: int = 0
    failed_checks: int = 0
    inconclusive_in_a_row: int = 0
    checks: int = 0
    last_check: str | None = None
    last_outcome: str | None = None
    last_score: float | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    pending: Pending | None = None
    decision_id: str | None = None
    decision: str | None = None
    reason: str = ""
    history: tuple[HistoryEntry, ...] = ()
    seen_checks: tuple[str, ...] = ()
    seen_requests: tuple[str, ...] = ()

    @property
    def status(self) -> Literal["running", "succeeded", "failed"]:
        """For ``driftloop_canary_status``: "running" until a terminal phase."""
        return _STATUS.get(self.phase, "running")  # type: ignore[return-value]

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def serving_champion(self) -> str:
        """The version the champion alias is meant to point to in this phase."""
        return self.challenger if self.phase in ("succeeded", "reverting") else self.champion

    @property
    def serving_challenger(self) -> str | None:
        """The version the challenger alias is meant to point to (None once removed)."""
        return self.challenger if self.phase in ("starting", "progressing") else None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif item.name == "pending":
                value = None if value is None else value.to_dict()
            elif item.name == "history":
                value = [h.to_dict() for h in value]
            elif item.name == "evidence":
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[item.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanaryState:
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"canary state: unknown keys {unknown}; expected {sorted(known)}")
        if data.get("phase") not in _PHASES:
            raise ValueError(f"canary state phase: got {data.get('phase')!r}, "
                             f"expected one of {sorted(_PHASES)}")
        values = dict(data)
        values["started_at"] = datetime.fromisoformat(data["started_at"])
        values["updated_at"] = datetime.fromisoformat(data["updated_at"])
        values["pending"] = None if data.get("pending") is None else Pending.from_dict(
            data["pending"])
        values["history"] = tuple(HistoryEntry.from_dict(h) for h in data.get("history") or ())
        values["evidence"] = dict(data.get("evidence") or {})
        for name in ("seen_checks", "seen_requests"):
            values[name] = tuple(data.get(name) or ())
        return cls(**values)


def transition(state: CanaryState, event: PhaseEvent, **changes: Any) -> CanaryState:
    """The state after ``event``; KeyError for a pair TRANSITIONS does not allow."""
    try:
        phase = TRANSITIONS[(state.phase, event)]
    except KeyError:
        allowed = ", ".join(sorted(e for (p, e) in TRANSITIONS if p == state.phase))
        raise KeyError(
            f"canary {state.model} v{state.challenger}: no transition for {event!r} from "
            f"{state.phase!r}; allowed: {allowed or 'nothing'}"
        ) from None
    return replace(state, phase=phase, **changes)
