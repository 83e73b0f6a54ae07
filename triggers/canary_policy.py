"""A canary's settings, the events ``canary.step`` takes, and what it returns.

Events carry their own identity (a check id, an operator request id, a decision
id), so a replay after a restart is recognised and counted once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from detectors.canary_results import CanaryVerdict, JudgeSettings
from triggers.canary_plan import Aliases
from triggers.canary_state import CanaryState
from triggers.moves import Step

__all__ = [
    "CanaryDecision",
    "CanaryEvent",
    "CanaryPolicy",
    "DecisionKind",
    "Judged",
    "OperatorRequest",
    "StepsDone",
    "StepsFailed",
]

_ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")
_RESERVED = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)
_JUDGE_KEYS = {"min_events", "min_labels", "confidence", "max_performance_drop",
               "max_divergence", "max_invalid_increase", "max_latency_increase"}


@dataclass(frozen=True)
class CanaryPolicy:
    """A model's canary settings (``models.<name>.canary``, plus the judge's)."""

    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    previous_champion_alias: str = "previous_champion"
    iterations: int = 3
    threshold: int = 2
    max_inconclusive: int = 10
    interval_seconds: float = 300.0
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    remember: int = 64
    history: int = 50

    def __post_init__(self) -> None:
        names = (self.champion_alias, self.challenger_alias, self.previous_champion_alias)
        for name in names:
            if not _ALIAS.match(name) or _RESERVED.match(name):
                raise ValueError(f"canary alias: got {name!r}, expected letters, digits, _ or -,"
                                 " and not 'latest' or 'v<number>'")
        if len(set(names)) != 3:
            raise ValueError(f"canary aliases: got {names}, expected three different names")
        for key in ("iterations", "threshold", "max_inconclusive"):
            if getattr(self, key) < 1:
                raise ValueError(f"canary {key}: got {getattr(self, key)}, expected >= 1")

    @property
    def aliases(self) -> Aliases:
        return Aliases(self.champion_alias, self.challenger_alias, self.previous_champion_alias)

    @classmethod
    def from_config(cls, section: Mapping[str, Any], metric: str = "accuracy") -> CanaryPolicy:
        """From a ``models.<name>.canary`` mapping and the model's performance metric."""
        own = {"champion_alias", "challenger_alias", "previous_champion_alias", "iterations",
               "threshold", "max_inconclusive", "interval"}
        unknown = sorted(set(section) - own - _JUDGE_KEYS)
        if unknown:
            raise ValueError(f"canary config: unknown keys {unknown}; "
                             f"known: {', '.join(sorted(own | _JUDGE_KEYS))}")
        values = {k: v for k, v in section.items() if k in own and k != "interval"}
        if "interval" in section:
            values["interval_seconds"] = float(section["interval"])
        judge = JudgeSettings(metric=metric, **{k: v for k, v in section.items()
                                                if k in _JUDGE_KEYS})
        return cls(**values, judge=judge)


@dataclass(frozen=True)
class Judged:
    """The verdict of one interval; ``check_id`` (e.g. the interval's end) de-duplicates."""

    check_id: str
    verdict: CanaryVerdict


@dataclass(frozen=True)
class OperatorRequest:
    """``POST /api/v1/models/{model}/canary/{action}``; ``request_id`` de-duplicates."""

    action: Literal["abort", "promote", "rollback"]
    request_id: str
    requested_by: str = ""
    note: str = ""


@dataclass(frozen=True)
class StepsDone:
    """Steps of the pending decision ``decision_id`` that were applied."""

    decision_id: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class StepsFailed:
    """The pending decision cannot be applied (not an outage: e.g. the version is gone)."""

    decision_id: str
    reason: str


CanaryEvent = Judged | OperatorRequest | StepsDone | StepsFailed
DecisionKind = Literal["start", "check", "promote", "rollback", "abort", "revert", "progress",
               "confirm", "fail", "ignore", "refuse"]


@dataclass(frozen=True)
class CanaryDecision:
    """``kind``: what happened. ``ignore`` (a duplicate or an event with nothing to do)
    and ``refuse`` (an operator action not allowed now, e.g. HTTP 409) leave the state
    as it was (``changed`` False); ``state`` is None only when ``start`` refuses and
    there was no canary before. ``steps``: what is still to apply."""

    kind: DecisionKind
    state: CanaryState | None
    sentence: str
    decision_id: str | None = None
    steps: tuple[Step, ...] = ()
    changed: bool = True
