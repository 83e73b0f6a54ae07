"""The canary state machine: the transition table, start, and step (table-driven)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.canary_results import CanaryVerdict
from triggers.canary import (
    CanaryDecision,
    CanaryPolicy,
    Judged,
    OperatorRequest,
    StepsDone,
    StepsFailed,
    start,
    step,
)
from triggers.canary_plan import MAX_TAG_CHARS, Aliases, canary_key, plan_steps
from triggers.canary_state import (
    PENDING_PHASES,
    TRANSITIONS,
    CanaryPhase,
    CanaryState,
    PhaseEvent,
    transition,
)
from triggers.moves import STATUS_TAG, DeleteAlias, HookCall, SetAlias, TagVersion, split_steps

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
POLICY = CanaryPolicy(iterations=3, threshold=2, max_inconclusive=3)


def verdict(outcome: str, score: float | None = 100.0) -> CanaryVerdict:
    return CanaryVerdict(outcome, score, f"{outcome} (score {score})", (), 3000, 3000,  # type: ignore[arg-type]
                         "accuracy")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def started() -> CanaryState:
    decision = start("carloan", "3", "4", T0, POLICY)
    assert decision.state is not None
    return decision.state


def apply_all(state: CanaryState, now: datetime = T0) -> CanaryState:
    assert state.pending is not None
    decision = step(state, StepsDone(state.pending.decision_id,
                                     tuple(s.key for s in state.pending.steps)), now, POLICY)
    assert decision.kind == "confirm" and decision.state is not None
    return decision.state


def progressing() -> CanaryState:
    return apply_all(started())


def feed(state: CanaryState, *outcomes: str) -> CanaryDecision:
    decision = CanaryDecision("check", state, "")
    for n, outcome in enumerate(outcomes):
        assert decision.state is not None
        decision = step(decision.state, Judged(f"i{n}", verdict(outcome)), at(5 * n + 5), POLICY)
    return decision


# -- the table ---------------------------------------------------------------------

PHASES: tuple[CanaryPhase, ...] = get_args(CanaryPhase)
EVENTS: tuple[PhaseEvent, ...] = get_args(PhaseEvent)


def state_in(phase: CanaryPhase) -> CanaryState:
    return replace(started(), phase=phase)


@pytest.mark.parametrize(("pair", "target"), sorted(TRANSITIONS.items()))
def test_transition_allowed_pair_moves_to_its_phase(pair: tuple[CanaryPhase, PhaseEvent],
                                                   target: CanaryPhase) -> None:
    assert transition(state_in(pair[0]), pair[1]).phase == target


FORBIDDEN = [(p, e) for p in PHASES for e in EVENTS if (p, e) not in TRANSITIONS]


@pytest.mark.parametrize(("phase", "event"), FORBIDDEN)
def test_transition_forbidden_pair_raises_naming_it(phase: CanaryPhase,
                                                    event: PhaseEvent) -> None:
    with pytest.raises(KeyError, match=f"no transition for '{event}' from '{phase}'"):
        transition(state_in(phase), event)


def test_transition_table_covers_every_phase_and_terminal_phases_only_revert() -> None:
    assert {p for p, _ in TRANSITIONS} | {t for t in TRANSITIONS.values()} == set(PHASES)
    assert [e for (p, e) in TRANSITIONS if p == "succeeded"] == ["revert"]
    assert not [e for (p, e) in TRANSITIONS if p in ("rolled_back", "aborted", "reverted",
                                                     "failed")]


# -- start ---------------------------------------------------------------------------

def test_start_sets_challenger_alias_tags_and_calls_the_start_hook_once_applied() -> None:
    decision = start("carloan", "3", "4", T0, POLICY)
    state = decision.state
    assert decision.kind == "start" and state is not None and state.phase == "starting"
    assert decision.sentence == "start canary carloan v4 against champion v3 (found by alias)"
    set_alias, tag, hook = decision.steps
    assert isinstance(set_alias, SetAlias) and set_alias.describe() == "carloan@challenger -> v4"
    assert isinstance(tag, TagVersion) and dict(tag.tags)[STATUS_TAG] == "progressing"
    assert isinstance(hook, HookCall) and (hook.event, hook.challenger) == ("start", "4")
    assert hook.idempotency_key == decision.decision_id == canary_key("carloan", "4", "start", T0)
    assert apply_all(state).phase == "progressing"


START_CASES = [
    ("no champion", None, "4", None, "alias", "refuse", "no version behind alias 'champion'"),
    ("challenger is champion", "4", "4", None, "alias", "refuse", "it is the champion already"),
    ("same version running", "3", "4", "progressing", "alias", "ignore", "already progressing"),
    ("retrain finds a judged version", "3", "4", "rolled_back", "retrain", "ignore",
     "already rolled_back"),
    ("person points the alias at it again", "3", "4", "rolled_back", "alias", "start",
     "found by alias"),
    ("decision being applied", "3", "5", "promoting", "alias", "ignore",
     "is still being applied"),
    ("retrain version waits for a running canary", "3", "5", "progressing", "retrain",
     "ignore", "canary of v4 is progressing"),
    ("alias supersedes a running canary", "3", "5", "progressing", "alias", "start",
     "supersedes v4 after 0 checks"),
    ("after a finished canary", "4", "5", "succeeded", "retrain", "start", "found by retrain"),
]


@pytest.mark.parametrize(("name", "champion", "challenger", "previous", "source", "kind", "says"),
                         START_CASES, ids=[c[0] for c in START_CASES])
def test_start_table(name: str, champion: str | None, challenger: str,
                     previous: CanaryPhase | None, source: str, kind: str, says: str) -> None:
    before = None
    if previous is not None:
        before = replace(progressing(), phase=previous)
        if previous == "promoting":
            before = feed(progressing(), "pass", "pass", "pass").state
    decision = start("carloan", champion, challenger, at(60), POLICY, before,
                     source=source)  # type: ignore[arg-type]
    assert decision.kind == kind
    assert says in decision.sentence
    assert decision.changed == (kind == "start")
    if kind != "start":
        assert decision.state is before


def test_start_superseding_tags_the_replaced_challenger() -> None:
    decision = start("carloan", "3", "5", at(60), POLICY, progressing())
    tagged = {s.version: dict(s.tags) for s in decision.steps if isinstance(s, TagVersion)}
    assert tagged["4"][STATUS_TAG] == "superseded"
    assert tagged["4"]["driftloop.canary.superseded_by"] == "5"
    assert tagged["5"][STATUS_TAG] == "progressing"


def test_start_again_later_gets_new_decision_ids() -> None:
    first = start("carloan", "3", "4", T0, POLICY).decision_id
    again = start("carloan", "3", "4", at(90), POLICY).decision_id
    assert first != again
    assert start("carloan", "3", "4", T0, POLICY).decision_id == first


def test_canary_key_is_a_short_slug() -> None:
    key = canary_key("Car Loan / EU" * 5, "12345678901234567890", "rollback", T0)
    assert len(key) <= 63 and re.fullmatch(r"[a-z0-9-]+", key)


def test_start_rejects_a_naive_now() -> None:
    with pytest.raises(ValueError, match="naive now"):
        start("carloan", "3", "4", datetime(2026, 1, 1), POLICY)


# -- step --------------------------------------------------------------------------

STEP_CASES = [
    # (name, outcomes fed in order, expected last kind, phase, sentence fragment)
    ("one pass keeps progressing", ["pass"], "check", "progressing",
     "1 of 3 passing in a row"),
    ("three passes promote", ["pass", "pass", "pass"], "promote", "promoting",
     "promote carloan v4: 3 passing checks in a row (score 100); champion v3 -> "
     "previous_champion"),
    ("inconclusive does not break the row", ["pass", "inconclusive", "pass", "pass"],
     "promote", "promoting", "3 passing checks in a row"),
    ("a failure resets the row", ["pass", "pass", "fail", "pass"], "check", "progressing",
     "1 of 3 passing in a row, 1 of 2 failed"),
    ("two failures roll back", ["fail", "pass", "fail"], "rollback", "rolling_back",
     "roll back carloan v4: 2 failed checks (threshold 2); last: fail"),
    ("max inconclusive rolls back", ["inconclusive"] * 3, "rollback", "rolling_back",
     "3 inconclusive checks in a row (max_inconclusive 3)"),
    ("a conclusive check resets the inconclusive run",
     ["inconclusive", "inconclusive", "pass", "inconclusive", "inconclusive"], "check",
     "progressing", "2 of 3 inconclusive in a row"),
]


@pytest.mark.parametrize(("name", "outcomes", "kind", "phase", "says"), STEP_CASES,
                         ids=[c[0] for c in STEP_CASES])
def test_step_verdict_table(name: str, outcomes: list[str], kind: str, phase: str,
                            says: str) -> None:
    decision = feed(progressing(), *outcomes)
    assert decision.kind == kind
    assert decision.state is not None and decision.state.phase == phase
    assert says in decision.sentence


def test_step_promotion_moves_aliases_tags_versions_then_calls_the_hook() -> None:
    decision = feed(progressing(), "pass", "pass", "pass")
    prev, champ, drop, tag_new, tag_old, hook = decision.steps
    assert prev == SetAlias(prev.key, "carloan", "previous_champion", "3")
    assert champ == SetAlias(champ.key, "carloan", "champion", "4", expect="3", guarded=True)
    assert drop == DeleteAlias(drop.key, "carloan", "challenger", "4")
    assert isinstance(tag_new, TagVersion) and isinstance(tag_old, TagVersion)
    new_tags, old_tags = dict(tag_new.tags), dict(tag_old.tags)
    assert (new_tags[STATUS_TAG], new_tags["driftloop.canary.score"]) == ("promoted", "100")
    assert json.loads(new_tags["driftloop.canary.evidence"])["outcome"] == "pass"
    assert new_tags["driftloop.canary.reason"] == decision.sentence
    assert (old_tags[STATUS_TAG], old_tags["driftloop.canary.replaced_by"]) == ("replaced", "4")
    assert isinstance(hook, HookCall)
    assert (hook.event, hook.champion, hook.challenger, hook.previous_champion) == (
        "promote", "4", "4", "3")
    assert len({s.key for s in decision.steps}) == 6


def test_step_rollback_deletes_the_challenger_alias_and_tags_it_rejected() -> None:
    decision = feed(progressing(), "fail", "fail")
    drop, tag, hook = decision.steps
    assert drop == DeleteAlias(drop.key, "carloan", "challenger", "4")
    assert isinstance(tag, TagVersion) and dict(tag.tags)[STATUS_TAG] == "rejected"
    assert isinstance(hook, HookCall) and (hook.event, hook.champion) == ("rollback", "3")
    assert decision.state is not None
    assert apply_all(decision.state).phase == "rolled_back"


def test_step_steps_done_in_parts_then_confirm() -> None:
    state = feed(progressing(), "pass", "pass", "pass").state
    assert state is not None and state.pending is not None
    keys = [s.key for s in state.pending.steps]
    part = step(state, StepsDone(state.pending.decision_id, tuple(keys[:3])), at(30), POLICY)
    assert part.kind == "progress" and part.state is not None
    assert part.state.phase == "promoting" and [s.key for s in part.steps] == keys[3:]
    again = step(part.state, StepsDone(state.pending.decision_id, tuple(keys[:3])), at(31),
                 POLICY)
    assert again.kind == "ignore" and not again.changed
    done = step(part.state, StepsDone(state.pending.decision_id, tuple(keys[3:])), at(32), POLICY)
    assert done.kind == "confirm" and done.state is not None
    assert done.state.phase == "succeeded" and done.state.pending is None
    assert done.state.status == "succeeded" and done.state.serving_champion == "4"
    assert done.sentence.startswith("applied: promote carloan v4")


def test_step_steps_of_another_decision_are_ignored() -> None:
    state = feed(progressing(), "fail", "fail").state
    assert state is not None
    for event in (StepsDone("other", ("x",)), StepsFailed("other", "gone")):
        decision = step(state, event, at(30), POLICY)
        assert decision.kind == "ignore" and decision.state is state


def test_step_steps_failed_ends_in_failed_with_the_reason() -> None:
    state = feed(progressing(), "fail", "fail").state
    assert state is not None and state.pending is not None
    decision = step(state, StepsFailed(state.pending.decision_id, "version 4 was deleted"),
                    at(30), POLICY)
    assert decision.kind == "fail" and decision.state is not None
    assert decision.state.phase == "failed" and decision.state.status == "failed"
    assert "could not be applied (version 4 was deleted); 0 of 3 steps" in decision.sentence


def test_step_duplicate_check_is_counted_once() -> None:
    state = feed(progressing(), "fail").state
    assert state is not None
    decision = step(state, Judged("i0", verdict("fail")), at(30), POLICY)
    assert decision.kind == "ignore" and decision.state is state
    assert "already counted" in decision.sentence


def test_step_checks_outside_progressing_are_not_counted() -> None:
    for state in (started(), feed(progressing(), "fail", "fail").state):
        assert state is not None
        decision = step(state, Judged("late", verdict("fail")), at(30), POLICY)
        assert decision.kind == "ignore" and decision.state is state


OPERATOR_CASES = [
    ("abort while starting", "starting", "abort", "abort", "aborting", "aborted"),
    ("abort while progressing", "progressing", "abort", "abort", "aborting", "aborted"),
    ("promote now", "progressing", "promote", "promote", "promoting", "succeeded"),
    ("operator rollback", "progressing", "rollback", "rollback", "rolling_back", "rolled_back"),
    ("rollback a completed promotion", "succeeded", "rollback", "revert", "reverting",
     "reverted"),
    ("promote while promoting", "promoting", "promote", "refuse", "promoting", None),
    ("abort after success", "succeeded", "abort", "refuse", "succeeded", None),
    ("rollback while rolling back", "rolling_back", "rollback", "refuse", "rolling_back", None),
    ("promote a rolled back canary", "rolled_back", "promote", "refuse", "rolled_back", None),
    ("rollback while starting", "starting", "rollback", "refuse", "starting", None),
]


@pytest.mark.parametrize(("name", "phase", "action", "kind", "next_phase", "final"),
                         OPERATOR_CASES, ids=[c[0] for c in OPERATOR_CASES])
def test_step_operator_table(name: str, phase: str, action: str, kind: str, next_phase: str,
                             final: str | None) -> None:
    state = {"starting": started, "progressing": progressing}.get(phase, lambda: replace(
        progressing(), phase=phase))()  # type: ignore[arg-type]
    decision = step(state, OperatorRequest(action, "r-1", "alice", "bad latency"),  # type: ignore[arg-type]
                    at(30), POLICY)
    assert decision.kind == kind
    assert decision.state is not None and decision.state.phase == next_phase
    assert "operator request r-1 by alice: bad latency" in decision.sentence
    if final is not None:
        assert apply_all(decision.state).phase == final
    else:
        assert not decision.changed and decision.state is state


def test_step_revert_moves_champion_back_and_drops_previous_champion() -> None:
    promoted = apply_all(feed(progressing(), "pass", "pass", "pass").state)  # type: ignore[arg-type]
    decision = step(promoted, OperatorRequest("rollback", "r-2"), at(60), POLICY)
    champ, drop, tag_new, tag_old, hook = decision.steps
    assert champ == SetAlias(champ.key, "carloan", "champion", "3", expect="4", guarded=True)
    assert drop == DeleteAlias(drop.key, "carloan", "previous_champion", "3")
    assert isinstance(tag_new, TagVersion) and dict(tag_new.tags)[STATUS_TAG] == "reverted"
    assert isinstance(tag_old, TagVersion) and dict(tag_old.tags)[STATUS_TAG] == "restored"
    assert isinstance(hook, HookCall)
    assert (hook.event, hook.champion, hook.previous_champion) == ("revert", "3", "4")
    assert decision.sentence.startswith("roll back the promotion of carloan v4: operator request")


def test_step_same_operator_request_twice_acts_once() -> None:
    first = step(progressing(), OperatorRequest("abort", "r-1"), at(30), POLICY)
    assert first.state is not None
    second = step(first.state, OperatorRequest("abort", "r-1"), at(31), POLICY)
    assert second.kind == "ignore" and second.state is first.state


def test_step_same_events_give_same_decision_ids_after_a_restart() -> None:
    def run() -> list[str | None]:
        state = progressing()
        ids = []
        for n, outcome in enumerate(["pass", "fail", "fail"]):
            decision = step(state, Judged(f"i{n}", verdict(outcome)), at(n), POLICY)
            assert decision.state is not None
            # a restart in between: the state comes back from its JSON
            state = CanaryState.from_dict(json.loads(json.dumps(decision.state.to_dict())))
            ids.append(decision.decision_id)
        return ids

    assert run() == run() == [None, None, canary_key("carloan", "4", "rollback", T0)]


def test_state_round_trips_through_json_in_every_phase_of_a_canary() -> None:
    decision = feed(progressing(), "pass", "inconclusive", "pass", "pass")
    states = [started(), progressing(), decision.state, apply_all(decision.state)]  # type: ignore[arg-type]
    for state in states:
        assert state is not None
        assert CanaryState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_state_from_dict_rejects_unknown_keys_and_phases() -> None:
    data = started().to_dict()
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        CanaryState.from_dict({**data, "colour": "red"})
    with pytest.raises(ValueError, match="phase: got 'paused'"):
        CanaryState.from_dict({**data, "phase": "paused"})


def test_policy_from_the_design_config_section() -> None:
    policy = CanaryPolicy.from_config(
        {"champion_alias": "champion", "challenger_alias": "challenger", "min_events": 2000,
         "iterations": 3, "threshold": 2, "max_performance_drop": 0.0, "interval": 300.0},
        metric="mae")
    assert (policy.iterations, policy.threshold, policy.interval_seconds) == (3, 2, 300.0)
    assert (policy.judge.metric, policy.judge.min_events) == ("mae", 2000)
    with pytest.raises(ValueError, match=r"unknown keys \['iteration'\]"):
        CanaryPolicy.from_config({"iteration": 3})


@pytest.mark.parametrize("alias", ["latest", "v3", "has space"])
def test_policy_rejects_reserved_or_invalid_alias(alias: str) -> None:
    with pytest.raises(ValueError, match=f"canary alias: got '{alias}'"):
        CanaryPolicy(challenger_alias=alias)


def test_importing_the_pure_modules_loads_no_http_client_nor_mlflow() -> None:
    code = ("import sys, triggers.canary, triggers.policy, triggers.mlflow_webhook; "
            "print(sorted(m for m in ('httpx', 'mlflow', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


EVENTS_ST = st.one_of(
    st.tuples(st.just("judged"), st.sampled_from(["pass", "fail", "inconclusive"])),
    st.tuples(st.just("operator"), st.sampled_from(["abort", "promote", "rollback"])),
    st.tuples(st.just("done"), st.integers(1, 6)),
    st.tuples(st.just("failed"), st.just("")),
)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(EVENTS_ST, max_size=40))
def test_step_any_event_sequence_keeps_the_invariants(events: list[tuple[str, object]]) -> None:
    state = started()
    for n, (kind, arg) in enumerate(events):
        now = at(n)
        if kind == "judged":
            event: object = Judged(f"i{n}", verdict(str(arg)))
        elif kind == "operator":
            event = OperatorRequest(arg, f"r{n}")  # type: ignore[arg-type]
        elif kind == "done":
            pending = state.pending
            keys = () if pending is None else tuple(s.key for s in pending.steps[: int(arg)])  # type: ignore[call-overload]
            event = StepsDone(pending.decision_id if pending else "none", keys)
        else:
            event = StepsFailed(state.pending.decision_id if state.pending else "none", "gone")
        decision = step(state, event, now, POLICY)  # type: ignore[arg-type]
        assert decision.state is not None
        assert decision.changed == (decision.kind not in ("ignore", "refuse"))
        state = decision.state
        assert (state.pending is not None) == (state.phase in PENDING_PHASES)
        if state.phase == "progressing":
            assert state.passed < POLICY.iterations
            assert state.failed_checks < POLICY.threshold
            assert state.inconclusive_in_a_row < POLICY.max_inconclusive
        if decision.kind in ("promote", "rollback", "abort", "revert"):
            assert decision.decision_id == canary_key("carloan", "4", decision.kind, T0)
            assert decision.steps == state.pending.steps  # type: ignore[union-attr]


def test_plan_steps_shorten_evidence_too_long_for_a_tag() -> None:
    checks = [{"name": f"c{n}", "outcome": "pass", "statistic": 0.1, "threshold": 0.2,
               "sentence": "x" * 500} for n in range(20)]
    steps = plan_steps("rollback", "d", model="m", champion="3", challenger="4",
                       aliases=Aliases(), sentence="roll back", score=10.0,
                       evidence={"outcome": "fail", "score": 10.0, "checks": checks})
    tag = next(s for s in steps if isinstance(s, TagVersion))
    evidence = dict(tag.tags)["driftloop.canary.evidence"]
    assert len(evidence) <= MAX_TAG_CHARS
    assert json.loads(evidence)["truncated"] is True
    assert [s.key for s in steps] == ["d/0", "d/1", "d/2"]
    moves, hooks = split_steps(steps)
    assert [type(m).__name__ for m in moves] == ["DeleteAlias", "TagVersion"]
    assert [h.event for h in hooks] == ["rollback"]
