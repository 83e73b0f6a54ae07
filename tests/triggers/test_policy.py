"""Table-driven tests for triggers.policy.decide: (state, evidence) -> decision."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase

import pytest

from triggers.evidence import (
    AlertEvidence,
    Evidence,
    ManualRequest,
    Policy,
    RunFinished,
    WindowEvidence,
)
from triggers.policy import Decision, decide, idempotency_key
from triggers.state import TRANSITIONS, TriggerState

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
POLICY = Policy(
    on=frozenset({"dataset_drift", "performance_drop", "estimated_performance_drop", "quality",
                  "alert", "manual"}),
    consecutive_windows=2,
    cooldown_seconds=3600,
    drift_share=0.5,
)


def drifted(n: int, share: float = 0.57) -> WindowEvidence:
    return WindowEvidence(f"3:{n}", "3", T0, T0, dataset_drift=True, drift_share=share)


def clean(n: int) -> WindowEvidence:
    return WindowEvidence(f"3:{n}", "3", T0, T0, dataset_drift=False, drift_share=0.1)


def degraded(n: int) -> WindowEvidence:
    return WindowEvidence(
        f"3:{n}", "3", dataset_drift=False, drift_share=0.1, performance_degraded=True,
        performance_metric="accuracy", performance_value=0.915, performance_baseline=0.944,
    )


ALERT = AlertEvidence("DriftloopDatasetDrift", "1a2b3c", datetime(2026, 11, 28, 8, 55, tzinfo=UTC))


@dataclass(frozen=True)
class Step:
    evidence: Evidence
    minutes: float
    action: str
    reason: str
    sentence: str  # exact text; "*" matches any run of characters


def run_steps(steps: list[Step], policy: Policy = POLICY) -> list[Decision]:
    state = TriggerState("carloan")
    decisions = []
    for step in steps:
        decision = decide(state, step.evidence, T0 + timedelta(minutes=step.minutes), policy)
        assert (decision.action, decision.reason) == (step.action, step.reason), decision.sentence
        assert fnmatchcase(decision.sentence, step.sentence), decision.sentence
        assert (decision.idempotency_key is not None) == (decision.action == "retrain")
        # every step follows the one transition table
        assert decision.state.phase in TRANSITIONS.values()
        decisions.append(decision)
        state = decision.state
    return decisions


def finished(decisions: list[Decision], index: int) -> RunFinished:
    key = decisions[index].idempotency_key
    assert key is not None
    return RunFinished(key, "succeeded")


CASES: dict[str, list[Step]] = {
    "drift_needs_two_consecutive_windows": [
        Step(drifted(1), 0, "none", "",
             "no retrain for carloan: dataset drift in 1 of 2 consecutive windows needed "
             "(share 0.57 >= 0.50)"),
        Step(drifted(2), 1, "retrain", "dataset_drift",
             "retrain carloan: dataset drift in 2 consecutive windows (share 0.57 >= 0.50)"),
    ],
    "clean_window_resets_hysteresis": [
        Step(drifted(1), 0, "none", "", "no retrain for carloan: dataset drift in 1 of 2*"),
        Step(clean(2), 1, "none", "",
             "no retrain for carloan: window 3:2 clean (share 0.10 < 0.50)"),
        Step(drifted(3), 2, "none", "", "no retrain for carloan: dataset drift in 1 of 2*"),
        Step(drifted(4), 3, "retrain", "dataset_drift", "retrain carloan: dataset drift in 2*"),
    ],
    "same_window_never_counted_twice": [
        Step(drifted(1), 0, "none", "", "no retrain for carloan: dataset drift in 1 of 2*"),
        Step(drifted(1), 1, "none", "", "no retrain for carloan: window 3:1 already counted"),
        Step(drifted(2), 2, "retrain", "dataset_drift", "retrain carloan: dataset drift in 2*"),
    ],
    "performance_drop_named_first_when_both_met": [
        Step(replace(degraded(1), dataset_drift=True, drift_share=0.6), 0, "none", "",
             "no retrain for carloan: performance drop in 1 of 2 consecutive windows needed "
             "(accuracy 0.915 vs baseline 0.944)"),
        Step(replace(degraded(2), dataset_drift=True, drift_share=0.6), 1, "retrain",
             "performance_drop",
             "retrain carloan: performance drop in 2 consecutive windows "
             "(accuracy 0.915 vs baseline 0.944)"),
    ],
    "unmeasured_performance_keeps_its_streak": [
        Step(degraded(1), 0, "none", "", "no retrain for carloan: performance drop in 1 of 2*"),
        Step(clean(2), 1, "none", "", "no retrain for carloan: performance drop in 1 of 2*"),
        Step(degraded(3), 2, "retrain", "performance_drop", "retrain carloan: performance drop*"),
    ],
    "estimated_performance_drop": [
        Step(WindowEvidence("3:1", estimated_degraded=True, estimated_value=0.81), 0, "none", "",
             "no retrain for carloan: estimated performance drop in 1 of 2*"),
        Step(WindowEvidence("3:2", estimated_degraded=True, estimated_value=0.80), 1, "retrain",
             "estimated_performance_drop",
             "retrain carloan: estimated performance drop in 2 consecutive windows "
             "(estimated 0.800)"),
    ],
    "quality_violations": [
        Step(WindowEvidence("3:1", quality_violations=("car_value missing 40%",)), 0, "none", "",
             "no retrain for carloan: data-quality violations in 1 of 2*"),
        Step(WindowEvidence("3:2", quality_violations=("car_value missing 41%",)), 1, "retrain",
             "quality",
             "retrain carloan: data-quality violations in 2 consecutive windows "
             "(car_value missing 41%)"),
    ],
    "cooldown_holds_after_a_finished_run": [
        Step(drifted(1), 0, "none", "", "no retrain for carloan: dataset drift in 1*"),
        Step(drifted(2), 1, "retrain", "dataset_drift", "retrain carloan: dataset drift*"),
        # the finished step is filled in by the test (it needs the launched key)
        Step(ALERT, 30, "none", "alert",
             "no retrain for carloan: in cooldown until 2026-11-28T10:01:00Z (alert "
             "DriftloopDatasetDrift firing since 2026-11-28T08:55:00Z (fingerprint 1a2b3c))"),
        # a launch consumed the streak: fresh consecutive windows are needed
        Step(drifted(3), 40, "none", "", "no retrain for carloan: dataset drift in 1 of 2*"),
        Step(drifted(4), 50, "none", "dataset_drift",
             "no retrain for carloan: in cooldown until 2026-11-28T10:01:00Z (dataset drift in 2 "
             "consecutive windows (share 0.57 >= 0.50))"),
        Step(drifted(5), 61, "retrain", "dataset_drift", "retrain carloan: dataset drift in 3*"),
    ],
    "one_run_at_a_time": [
        Step(ManualRequest("r1", "ana"), 0, "retrain", "manual",
             "retrain carloan: manual request r1 by ana"),
        Step(ALERT, 120, "none", "alert",
             "no retrain for carloan: run carloan-manual-* (manual) still running since "
             "2026-11-28T09:00:00Z, one at a time (alert DriftloopDatasetDrift*"),
    ],
    "alert_deduped_on_fingerprint_and_starts_at": [
        Step(ALERT, 0, "retrain", "alert",
             "retrain carloan: alert DriftloopDatasetDrift firing since 2026-11-28T08:55:00Z "
             "(fingerprint 1a2b3c)"),
        Step(ALERT, 300, "none", "alert",
             "no retrain for carloan: alert DriftloopDatasetDrift (fingerprint 1a2b3c, firing "
             "since 2026-11-28T08:55:00Z) already handled"),
        Step(replace(ALERT, starts_at=T0 + timedelta(hours=5)), 301, "none", "alert",
             "no retrain for carloan: run *"),
    ],
    "manual_overrides_cooldown_but_not_twice": [
        Step(ALERT, 0, "retrain", "alert", "retrain carloan: alert*"),
        Step(ManualRequest("r1", note="new data landed"), 10, "none", "manual",
             "no retrain for carloan: run *"),
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_policy_table(name: str) -> None:
    steps = CASES[name]
    if name == "cooldown_holds_after_a_finished_run":
        first = run_steps(steps[:2])
        done = decide(first[-1].state, finished(first, 1), T0 + timedelta(minutes=20), POLICY)
        assert done.sentence.startswith("retrain run carloan-dataset_drift-")
        assert done.sentence.endswith(" for carloan succeeded; cooldown until 2026-11-28T10:01:00Z")
        assert done.state.phase == "idle"
        state = done.state
        for step in steps[2:]:
            decision = decide(state, step.evidence, T0 + timedelta(minutes=step.minutes), POLICY)
            got = (decision.action, decision.reason)
            assert got == (step.action, step.reason), decision.sentence
            assert fnmatchcase(decision.sentence, step.sentence), decision.sentence
            state = decision.state
        return
    run_steps(steps)


# -- labels come late: performance_drop reads the estimate until realized performance ---------
ON_PERFORMANCE = replace(POLICY, on=frozenset({"dataset_drift", "performance_drop"}))
NO_ESTIMATE = replace(ON_PERFORMANCE, use_estimate=False)
BOTH = replace(POLICY, on=frozenset({"performance_drop", "estimated_performance_drop"}))


def estimated(n: int, version: str = "3", degraded: bool | None = True) -> WindowEvidence:
    return WindowEvidence(f"{version}:{n}", version, dataset_drift=False, drift_share=0.1,
                          estimated_degraded=degraded, estimated_value=0.81,
                          estimated_metric="accuracy", estimated_baseline=0.89)


def realized(n: int, version: str = "3", degraded: bool = False) -> WindowEvidence:
    return WindowEvidence(f"{version}:performance:{n}", version, performance_degraded=degraded,
                          performance_metric="accuracy", performance_value=0.93,
                          performance_baseline=0.944)


STAND_IN = ("(estimated accuracy 0.810 vs baseline 0.890; no realized performance of version "
            "{} yet)")
NOT_ON = ("no retrain for carloan: estimated performance drop*, but "
          "'estimated_performance_drop' is not in retrain.on")
ESTIMATE_CASES: dict[str, tuple[Policy, list[Step]]] = {
    "estimate_stands_in_for_missing_labels": (ON_PERFORMANCE, [
        Step(estimated(1), 0, "none", "",
             "no retrain for carloan: performance drop in 1 of 2 consecutive windows needed "
             + STAND_IN.format(3)),
        Step(estimated(2), 1, "retrain", "performance_drop",
             "retrain carloan: performance drop in 2 consecutive windows " + STAND_IN.format(3)),
    ]),
    "first_realized_window_ends_the_stand_in": (ON_PERFORMANCE, [
        Step(estimated(1), 0, "none", "", "no retrain for carloan: performance drop in 1 of 2*"),
        Step(realized(1), 1, "none", "", NOT_ON),
        # the estimate keeps being read, by its own signal only
        Step(estimated(2), 2, "none", "", NOT_ON),
        Step(estimated(3), 3, "none", "", NOT_ON),
    ]),
    "a_new_version_uses_its_estimate_until_its_own_labels": (ON_PERFORMANCE, [
        Step(realized(1, "3"), 0, "none", "", "no retrain for carloan: window 3:performance:1*"),
        Step(estimated(1, "4"), 1, "none", "",
             "no retrain for carloan: performance drop in 1 of 2*" + STAND_IN.format(4)),
        Step(estimated(2, "3"), 2, "none", "", "no retrain for carloan: performance drop in 1*"),
        Step(estimated(3, "4"), 3, "retrain", "performance_drop",
             "retrain carloan: performance drop in 2 consecutive windows " + STAND_IN.format(4)),
    ]),
    "inconclusive_estimate_keeps_the_streak": (ON_PERFORMANCE, [
        Step(estimated(1), 0, "none", "", "no retrain for carloan: performance drop in 1 of 2*"),
        Step(estimated(2, degraded=None), 1, "none", "",
             "no retrain for carloan: performance drop in 1 of 2*"),
        Step(estimated(3), 2, "retrain", "performance_drop", "retrain carloan: performance*"),
    ]),
    "use_estimate_off_waits_for_labels": (NO_ESTIMATE, [
        Step(estimated(1), 0, "none", "", NOT_ON),
        Step(estimated(2), 1, "none", "", NOT_ON),
        Step(realized(1, degraded=True), 2, "none", "",
             "no retrain for carloan: performance drop in 1 of 2*(accuracy 0.930 vs*"),
    ]),
    "both_enabled_the_estimated_reason_is_named_and_outlives_labels": (BOTH, [
        Step(estimated(1), 0, "none", "",
             "no retrain for carloan: estimated performance drop in 1 of 2*"),
        Step(estimated(2), 1, "retrain", "estimated_performance_drop",
             "retrain carloan: estimated performance drop in 2 consecutive windows "
             "(estimated 0.810)"),
        Step(realized(1), 70, "none", "", "no retrain for carloan: window 3:performance:1*"),
        Step(estimated(3), 71, "none", "",
             "no retrain for carloan: estimated performance drop in 1 of 2*"),
        Step(estimated(4), 72, "retrain", "estimated_performance_drop",
             "retrain carloan: estimated performance drop in 2*"),
    ]),
}


@pytest.mark.parametrize("name", sorted(ESTIMATE_CASES))
def test_policy_table_with_estimates(name: str) -> None:
    policy, steps = ESTIMATE_CASES[name]
    state = TriggerState("carloan")
    for step in steps:
        decision = decide(state, step.evidence, T0 + timedelta(minutes=step.minutes), policy)
        assert (decision.action, decision.reason) == (step.action, step.reason), decision.sentence
        assert fnmatchcase(decision.sentence, step.sentence), decision.sentence
        state = decision.state
        if decision.action == "retrain":  # the run ends at once: later steps are not blocked
            key = decision.idempotency_key or ""
            state = decide(state, RunFinished(key, "succeeded"), T0, policy).state


def test_realized_versions_survive_a_restart_and_old_states_load() -> None:
    state = decide(TriggerState("carloan"), realized(1), T0, ON_PERFORMANCE).state
    assert state.realized_versions == ("3",)
    restored = TriggerState.from_dict(state.to_dict())
    assert restored.realized_versions == ("3",)
    after = decide(restored, estimated(2), T0, ON_PERFORMANCE)
    assert after.state.performance_windows == 0  # labels known: the estimate is not read
    old = {k: v for k, v in state.to_dict().items() if k != "realized_versions"}
    assert TriggerState.from_dict(old).realized_versions == ()


def test_window_evidence_reads_the_estimate_and_an_inconclusive_one_measures_nothing() -> None:
    result = {"version": "3", "window": 4, "estimated_performance": {
        "metric": "accuracy", "value": 0.81, "lower": 0.79, "upper": 0.83, "baseline": 0.89,
        "threshold": 0.87, "degraded": True, "status": "degraded", "n": 2000}}
    evidence = WindowEvidence.from_result(result)
    assert (evidence.estimated_degraded, evidence.estimated_value, evidence.estimated_metric,
            evidence.estimated_baseline) == (True, 0.81, "accuracy", 0.89)
    assert evidence.performance_degraded is None
    inconclusive = {**result["estimated_performance"], "value": None, "degraded": False,
                    "status": "inconclusive", "n": 40}
    quiet = WindowEvidence.from_result({**result, "estimated_performance": inconclusive})
    assert quiet.estimated_degraded is None


def test_manual_request_ignores_cooldown_after_the_run_finished() -> None:
    launched = decide(TriggerState("carloan"), ALERT, T0, POLICY)
    key = launched.idempotency_key
    assert key is not None
    idle = decide(launched.state, RunFinished(key, "failed"), T0 + timedelta(minutes=5), POLICY)
    manual = decide(idle.state, ManualRequest("r9"), T0 + timedelta(minutes=6), POLICY)
    assert manual.action == "retrain"
    again = decide(manual.state, RunFinished(manual.idempotency_key or "", "succeeded"), T0, POLICY)
    replay = decide(again.state, ManualRequest("r9"), T0 + timedelta(minutes=7), POLICY)
    assert replay.sentence == "no retrain for carloan: manual request r9 already handled"


@pytest.mark.parametrize(
    ("evidence", "slug"),
    [
        (drifted(2), "dataset_drift"),
        (ALERT, "alert"),
        (ManualRequest("r1"), "manual"),
    ],
)
def test_disabled_trigger_never_launches(evidence: Evidence, slug: str) -> None:
    policy = replace(POLICY, on=POLICY.on - {slug}, consecutive_windows=1)
    decision = decide(TriggerState("carloan"), evidence, T0, policy)
    assert decision.action == "none"
    assert f"'{slug}' is not in retrain.on" in decision.sentence


def test_run_finished_for_another_key_is_ignored() -> None:
    launched = decide(TriggerState("carloan"), ALERT, T0, POLICY)
    other = decide(launched.state, RunFinished("someone-else", "succeeded"), T0, POLICY)
    assert other.state.phase == "running"
    assert other.sentence.startswith("ignored for carloan: run someone-else finished (succeeded)")


def test_lost_run_stops_blocking_after_run_timeout() -> None:
    policy = replace(POLICY, run_timeout_seconds=7200)
    launched = decide(TriggerState("carloan"), ALERT, T0, policy)
    later = decide(launched.state, ManualRequest("r2"), T0 + timedelta(hours=3), policy)
    assert later.action == "retrain"
    assert later.sentence.startswith(
        f"run {launched.idempotency_key} presumed lost (no outcome since 2026-11-28T09:00:00Z); "
        "retrain carloan: manual request r2"
    )


def test_replay_after_restart_gives_the_same_idempotency_key() -> None:
    first = run_steps([
        Step(drifted(1), 0, "none", "", "no retrain*"),
        Step(drifted(2), 1, "retrain", "dataset_drift", "retrain*"),
    ])
    # a crash before the new state was persisted: the same windows arrive again
    restarted = TriggerState.from_dict(first[0].state.to_dict())
    again = decide(restarted, drifted(2), T0 + timedelta(minutes=9), POLICY)
    assert again.idempotency_key == first[1].idempotency_key
    assert again.idempotency_key == idempotency_key("carloan", "dataset_drift", "3:2")


def test_idempotency_key_is_short_and_label_safe() -> None:
    long_name = "Car Loan / EU (v2) with a very long name"
    key = idempotency_key(long_name, "estimated_performance_drop", "x")
    assert len(key) <= 63
    assert key.startswith("car-loan-eu-v2-with-estimated_performance_drop-")
    assert key.replace("-", "").replace("_", "").isalnum()


def test_decision_launch_request_carries_the_window() -> None:
    decisions = run_steps([
        Step(drifted(1), 0, "none", "", "no retrain*"),
        Step(drifted(2), 1, "retrain", "dataset_drift", "retrain*"),
    ])
    request = decisions[1].launch_request()
    assert request is not None
    assert (request.model, request.version, request.reason) == ("carloan", "3", "dataset_drift")
    assert request.window_start == T0
    assert request.sentence == decisions[1].sentence
    assert decisions[0].launch_request() is None


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="naive"):
        decide(TriggerState("carloan"), ALERT, datetime(2026, 1, 1), POLICY)


def test_window_evidence_from_result_reads_design_shape() -> None:
    result = {
        "model": "carloan", "version": "3", "window": 7, "first_offset": None,
        "start": "2019-05-01T00:00:00Z", "end": "2019-05-31T08:00:00Z", "rows": 5000,
        "dataset_drift": True, "drift_share": 0.57, "features": {},
        "quality": {"missing": {}, "unseen_categories": {}, "violations": ["x missing"]},
        "performance": {"metric": "accuracy", "value": 0.915, "baseline": 0.944,
                        "degraded": True, "labeled_rows": 5000},
    }
    window = WindowEvidence.from_result(result)
    assert window.window_id == "3:7"
    assert window.start == datetime(2019, 5, 1, tzinfo=UTC)
    assert (window.dataset_drift, window.drift_share) == (True, 0.57)
    assert (window.performance_degraded, window.performance_value) == (True, 0.915)
    assert window.quality_violations == ("x missing",)
    assert WindowEvidence.from_result({**result, "performance": None}).performance_degraded is None


def test_policy_rejects_unknown_trigger() -> None:
    with pytest.raises(ValueError, match="unknown triggers \\['drfit'\\]"):
        Policy(on=frozenset({"drfit"}))


def test_manual_request_text_is_escaped_and_bounded_in_the_sentence() -> None:
    request = ManualRequest("req\n1", requested_by="eve\r\nINFO retrain approved by admin",
                            note="\x1b[2J" + "n" * 10_000)
    decision = decide(TriggerState("carloan"), request, T0, POLICY)
    assert decision.action == "retrain"
    assert decision.sentence.startswith(
        "retrain carloan: manual request req\\n1 by eve\\r\\nINFO retrain approved by admin: "
        "\\x1b[2Jnnn")
    assert "\n" not in decision.sentence and "\x1b" not in decision.sentence
    assert len(decision.sentence) < 600
