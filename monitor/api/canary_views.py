"""What ``GET /api/v1/models/{model}/canary`` answers, and the one-word verdict the
progressive-delivery gates read.

The top-level ``verdict`` is what an Argo Rollouts ``web`` metric evaluates
(``successCondition: result.verdict == "pass"``, ``failureCondition: result.verdict
== "fail"``): ``pass`` once driftloop promotes (promoting, succeeded), ``fail`` once
it rolls back, aborts, reverts or fails, and while the canary is progressing the
outcome of its last check (``inconclusive`` before the first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from detectors import ArmStats
from monitor.react import describe
from triggers.canary import CanaryPolicy
from triggers.canary_state import CanaryState

__all__ = [
    "FAILED_PHASES",
    "PASSED_PHASES",
    "ArmInterval",
    "CanaryActionResponse",
    "CanaryResponse",
    "GateResponse",
    "canary_payload",
    "verdict_of",
]

PASSED_PHASES = frozenset({"promoting", "succeeded"})
FAILED_PHASES = frozenset({"rolling_back", "rolled_back", "aborting", "aborted", "reverting",
                           "reverted", "failed"})
Verdict = Literal["pass", "fail", "inconclusive"]


class ArmInterval(BaseModel):
    version: str
    events: int
    invalid: int
    labeled: int


class CanaryResponse(BaseModel):
    """A model's canary; ``phase`` is null when none has run."""

    model_config = ConfigDict(extra="allow")

    model: str
    verdict: Verdict
    phase: str | None
    status: Literal["running", "succeeded", "failed"] | None
    sentence: str
    champion: str | None = None
    challenger: str | None = None
    counters: dict[str, int] = {}
    last_check: dict[str, Any] | None = None
    evidence: dict[str, Any] = {}
    pending: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    started_at: str | None = None
    updated_at: str | None = None
    history: list[dict[str, Any]] = []
    interval: list[ArmInterval] = []
    registry: dict[str, Any] = {}


class CanaryActionResponse(BaseModel):
    model: str
    action: str
    decision: str
    sentence: str
    changed: bool
    phase: str | None
    decision_id: str | None
    request_id: str


class GateResponse(BaseModel):
    gate: str
    model: str | None
    open: bool
    verdict: Verdict
    phase: str | None
    sentence: str
    checksum: str | None = None


def verdict_of(state: CanaryState | None) -> Verdict:
    if state is None:
        return "inconclusive"
    if state.phase in PASSED_PHASES:
        return "pass"
    if state.phase in FAILED_PHASES:
        return "fail"
    if state.phase == "progressing" and state.last_outcome in ("pass", "fail"):
        return state.last_outcome  # type: ignore[return-value]
    return "inconclusive"


def canary_payload(model: str, state: CanaryState | None, policy: CanaryPolicy,
                   interval: Mapping[str, ArmStats], registry_error: str | None) -> dict[str, Any]:
    """The JSON of ``GET /api/v1/models/{model}/canary``."""
    registry = {"ok": registry_error is None, "error": registry_error}
    if state is None:
        return {"model": model, "verdict": "inconclusive", "phase": None, "status": None,
                "sentence": f"no canary of {model} has run; point the "
                            f"{policy.challenger_alias!r} alias at a version to start one",
                "champion": None, "challenger": None, "counters": {}, "last_check": None,
                "evidence": {}, "pending": None, "decision": None, "started_at": None,
                "updated_at": None, "history": [], "interval": [], "registry": registry}
    pending = None if state.pending is None else {
        "decision_id": state.pending.decision_id, "kind": state.pending.kind,
        "sentence": state.pending.sentence, "decided_at": state.pending.decided_at.isoformat(),
        "remaining": [s.describe() for s in state.pending.remaining]}
    last = None if state.last_check is None else {
        "id": state.last_check, "outcome": state.last_outcome, "score": state.last_score}
    arms = [{"version": version, "events": stats.n_events, "invalid": stats.n_invalid,
             "labeled": stats.loss.n} for version, stats in sorted(interval.items())
            if version in (state.champion, state.challenger)]
    sentence = state.reason or f"canary of {model} v{state.challenger} is {state.phase}"
    if pending is not None and registry_error:
        sentence = f"{pending['sentence']} (pending: {registry_error})"
    return {
        "model": model, "verdict": verdict_of(state), "phase": state.phase,
        "status": state.status, "sentence": sentence, "champion": state.champion,
        "challenger": state.challenger, "counters": dict(describe(state, policy)),
        "last_check": last, "evidence": dict(state.evidence), "pending": pending,
        "decision": None if state.decision is None else {
            "id": state.decision_id, "kind": state.decision, "reason": state.reason},
        "started_at": state.started_at.isoformat(), "updated_at": state.updated_at.isoformat(),
        "history": [h.to_dict() for h in state.history][-20:], "interval": arms,
        "registry": registry,
    }
