"""Deciding a canary: pure ``start`` and ``step`` over a persisted ``CanaryState``.

``start(model, champion, challenger, now, policy, previous)`` opens a canary when a
new challenger appears. ``step(state, event, now, policy)`` takes one event (an
interval's verdict, an operator request, steps applied or failed) and advances at
most one transition of ``canary_state.TRANSITIONS``. Neither reads a clock nor does
I/O. Each returns a ``CanaryDecision``: the next state (persist it first when
``changed``), the steps still to apply, and a sentence a person can grep.

The service's tick: re-read the state; if it has ``pending`` steps, apply them
(registry moves idempotently, then hooks one by one) and feed ``StepsDone`` /
``StepsFailed`` back through ``step``; otherwise judge the interval and feed
``Judged``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Literal

from triggers.canary_plan import canary_key, plan_steps
from triggers.canary_policy import (
    CanaryDecision,
    CanaryEvent,
    CanaryPolicy,
    DecisionKind,
    Judged,
    OperatorRequest,
    StepsDone,
    StepsFailed,
)
from triggers.canary_state import (
    CanaryState,
    HistoryEntry,
    Pending,
    PhaseEvent,
    transition,
)
from triggers.moves import HookEvent

__all__ = [
    "CanaryDecision",
    "CanaryEvent",
    "CanaryPolicy",
    "Judged",
    "OperatorRequest",
    "StepsDone",
    "StepsFailed",
    "start",
    "step",
]

# (operator action, phase) -> (transition, decision); any other pair is refused
_OPERATOR: dict[tuple[str, str], tuple[PhaseEvent, HookEvent]] = {
    ("abort", "starting"): ("abort", "abort"),
    ("abort", "progressing"): ("abort", "abort"),
    ("promote", "progressing"): ("promote", "promote"),
    ("rollback", "progressing"): ("rollback", "rollback"),
    ("rollback", "succeeded"): ("revert", "revert"),
}


def start(model: str, champion: str | None, challenger: str, now: datetime,
          policy: CanaryPolicy, previous: CanaryState | None = None, *,
          source: Literal["alias", "retrain"] = "alias") -> CanaryDecision:
    """A canary of ``challenger`` against ``champion``, or why not.

    ``source``: "alias" when the challenger alias points at the version (a person
    chose it: it supersedes a running canary of another version, and a version
    judged before is judged again), "retrain" when it was found by a retrain's run
    tag (judged once, and it waits for a running canary to end). Nothing starts
    while a decision is still being applied: the caller asks again later.
    """
    _aware(now, model)
    if previous is not None and previous.model != model:
        raise ValueError(f"canary start for {model}: got the state of {previous.model}")
    who = f"canary {model} v{challenger}"
    if champion is None:
        return _unchanged("refuse", previous, f"no {who}: no version behind alias "
                          f"{policy.champion_alias!r} to compare with")
    if champion == challenger:
        return _unchanged("refuse", previous, f"no {who}: it is the champion already")
    superseded, superseded_version = "", None
    if previous is not None:
        running = not previous.terminal
        if previous.challenger == challenger and (running or source == "retrain"):
            return _unchanged("ignore", previous, f"{who} already {previous.phase}, "
                              "not started again")
        if previous.pending is not None:
            return _unchanged("ignore", previous, f"{who} waits: {previous.pending.sentence} "
                              "is still being applied")
        if running and source == "retrain":
            return _unchanged("ignore", previous, f"{who} waits: canary of "
                              f"v{previous.challenger} is {previous.phase}")
        if running:
            superseded = f"; supersedes v{previous.challenger} after {previous.checks} checks"
            superseded_version = previous.challenger
    decision_id = canary_key(model, challenger, "start", now)
    sentence = f"start {who} against champion v{champion} (found by {source}){superseded}"
    steps = plan_steps("start", decision_id, model=model, champion=champion,
                       challenger=challenger, aliases=policy.aliases, sentence=sentence,
                       score=None, evidence={}, superseded=superseded_version)
    state = CanaryState(model, "starting", champion, challenger, now, now,
                        pending=Pending(decision_id, "start", sentence, steps, now),
                        decision_id=decision_id, decision="start", reason=sentence,
                        history=(HistoryEntry(now, "start", decision_id, sentence),))
    return CanaryDecision("start", state, sentence, decision_id, steps)


def step(state: CanaryState, event: CanaryEvent, now: datetime,
         policy: CanaryPolicy) -> CanaryDecision:
    _aware(now, state.model)
    if isinstance(event, Judged):
        return _judged(state, event, now, policy)
    if isinstance(event, OperatorRequest):
        return _operator(state, event, now, policy)
    if isinstance(event, StepsDone):
        return _done(state, event, now, policy)
    if isinstance(event, StepsFailed):
        return _failed(state, event, now, policy)
    raise TypeError(f"canary step for {state.model}: unknown event {type(event).__name__}")


def _judged(state: CanaryState, judged: Judged, now: datetime,
            policy: CanaryPolicy) -> CanaryDecision:
    who = f"{state.model} v{state.challenger}"
    if state.phase != "progressing":
        return _unchanged("ignore", state,
                          f"check {judged.check_id} of {who} not counted: canary is {state.phase}")
    if judged.check_id in state.seen_checks:
        return _unchanged("ignore", state,
                          f"check {judged.check_id} of {who} already counted")
    verdict = judged.verdict
    outcome = verdict.outcome
    state = replace(
        state,
        checks=state.checks + 1,
        passed=0 if outcome == "fail" else state.passed + (outcome == "pass"),
        failed_checks=state.failed_checks + (outcome == "fail"),
        inconclusive_in_a_row=state.inconclusive_in_a_row + 1 if outcome == "inconclusive" else 0,
        last_check=judged.check_id, last_outcome=outcome, last_score=verdict.score,
        evidence=verdict.to_dict(),
        seen_checks=(*state.seen_checks, judged.check_id)[-policy.remember:],
    )
    score = "" if verdict.score is None else f" (score {verdict.score:.0f})"
    if outcome == "pass" and state.passed >= policy.iterations:
        because = f"{state.passed} passing checks in a row{score}"
        return _decide(state, "promote", "promote", because, now, policy)
    if state.failed_checks >= policy.threshold:
        because = (f"{state.failed_checks} failed checks (threshold {policy.threshold}); "
                   f"last: {verdict.reason}")
        return _decide(state, "rollback", "rollback", because, now, policy)
    if state.inconclusive_in_a_row >= policy.max_inconclusive:
        because = (f"{state.inconclusive_in_a_row} inconclusive checks in a row "
                   f"(max_inconclusive {policy.max_inconclusive}); last: {verdict.reason}")
        return _decide(state, "rollback", "rollback", because, now, policy)
    sentence = (f"canary {who} check {judged.check_id}: {outcome}{score}; "
                f"{state.passed} of {policy.iterations} passing in a row, "
                f"{state.failed_checks} of {policy.threshold} failed, "
                f"{state.inconclusive_in_a_row} of {policy.max_inconclusive} inconclusive in a "
                f"row; {verdict.reason}")
    new = transition(state, "check", updated_at=now)
    return CanaryDecision("check", new, sentence)


def _operator(state: CanaryState, request: OperatorRequest, now: datetime,
              policy: CanaryPolicy) -> CanaryDecision:
    who = f"{state.model} v{state.challenger}"
    if request.request_id in state.seen_requests:
        return _unchanged("ignore", state, f"operator {request.action} {request.request_id} "
                          f"of {who} already handled")
    by = f" by {request.requested_by}" if request.requested_by else ""
    note = f": {request.note}" if request.note else ""
    because = f"operator request {request.request_id}{by}{note}"
    plan = _OPERATOR.get((request.action, state.phase))
    if plan is None:
        return _unchanged("refuse", state,
                          f"refused {request.action} of {who}: canary is {state.phase} ({because})")
    state = replace(state, seen_requests=(*state.seen_requests, request.request_id)[
        -policy.remember:])
    if request.action == "promote":
        because += f" ({state.passed} of {policy.iterations} passing checks so far)"
    return _decide(state, plan[0], plan[1], because, now, policy)


def _decide(state: CanaryState, event: PhaseEvent, hook: HookEvent, because: str,
            now: datetime, policy: CanaryPolicy) -> CanaryDecision:
    """A decision with registry moves: persisted with its steps, applied by a later tick."""
    model, champion, challenger = state.model, state.champion, state.challenger
    verb = {"promote": "promote", "rollback": "roll back", "abort": "abort",
            "revert": "roll back the promotion of"}[hook]
    moves = {"promote": f"; champion v{champion} -> {policy.previous_champion_alias}",
             "revert": f"; champion back to v{champion}"}.get(hook, "")
    sentence = f"{verb} {model} v{challenger}: {because}{moves}"
    decision_id = canary_key(model, challenger, hook, state.started_at)
    steps = plan_steps(hook, decision_id, model=model, champion=champion, challenger=challenger,
                       aliases=policy.aliases, sentence=sentence, score=state.last_score,
                       evidence=state.evidence)
    new = transition(
        state, event, updated_at=now, pending=Pending(decision_id, hook, sentence, steps, now),
        decision_id=decision_id, decision=hook, reason=sentence,
        history=_history(state, HistoryEntry(now, hook, decision_id, sentence), policy))
    return CanaryDecision(hook, new, sentence, decision_id, steps)


def _done(state: CanaryState, done: StepsDone, now: datetime,
          policy: CanaryPolicy) -> CanaryDecision:
    pending = state.pending
    if pending is None or pending.decision_id != done.decision_id:
        return _unchanged("ignore", state,
                          f"steps of {done.decision_id} ignored: not the pending decision")
    known = {s.key for s in pending.steps}
    added = tuple(k for k in done.keys if k in known and k not in pending.done)
    if not added:
        return _unchanged("ignore", state,
                          f"steps of {done.decision_id} already recorded")
    pending = replace(pending, done=pending.done + added)
    remaining = pending.remaining
    if remaining:
        sentence = (f"{pending.decision_id}: {len(pending.done)} of {len(pending.steps)} steps "
                    f"applied ({'; '.join(s.describe() for s in remaining)} to go)")
        new = transition(state, "progress", updated_at=now, pending=pending)
        return CanaryDecision("progress", new, sentence, pending.decision_id, remaining)
    new = transition(state, "confirm", updated_at=now, pending=None)
    sentence = f"applied: {pending.sentence} (now {new.phase})"
    new = replace(new, history=_history(
        state, HistoryEntry(now, "confirm", pending.decision_id, sentence), policy))
    return CanaryDecision("confirm", new, sentence, pending.decision_id)


def _failed(state: CanaryState, failed: StepsFailed, now: datetime,
            policy: CanaryPolicy) -> CanaryDecision:
    pending = state.pending
    if pending is None or pending.decision_id != failed.decision_id:
        return _unchanged("ignore", state,
                          f"failure of {failed.decision_id} ignored: not the pending decision")
    sentence = (f"failed: {pending.sentence} could not be applied ({failed.reason}); "
                f"{len(pending.done)} of {len(pending.steps)} steps were done")
    new = transition(state, "fail", updated_at=now, pending=None, reason=sentence,
                     history=_history(state, HistoryEntry(now, "fail", pending.decision_id,
                                                          sentence), policy))
    return CanaryDecision("fail", new, sentence, pending.decision_id)


def _unchanged(kind: DecisionKind, state: CanaryState | None, sentence: str) -> CanaryDecision:
    return CanaryDecision(kind, state, sentence, changed=False)


def _history(state: CanaryState, entry: HistoryEntry,
             policy: CanaryPolicy) -> tuple[HistoryEntry, ...]:
    return (*state.history, entry)[-policy.history:]


def _aware(now: datetime, model: str) -> None:
    if now.tzinfo is None:
        raise ValueError(f"canary of {model}: got a naive now={now!r}, expected UTC-aware")
