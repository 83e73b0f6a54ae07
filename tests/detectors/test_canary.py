"""Table-driven tests of the canary judge: (champion, challenger, settings) -> verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.canary import judge
from detectors.canary_results import CanaryVerdict, JudgeSettings
from detectors.canary_stats import ArmEstimate, ArmStats, Moments

SETTINGS = JudgeSettings(metric="accuracy", min_events=2000, min_labels=100,
                         max_performance_drop=0.02)
REGRESSION = replace(SETTINGS, metric="mae", max_performance_drop=0.0)


def clf(n: int, errors: int, *, labeled: int | None = None, invalid: int = 0,
        hist: tuple[int, ...] = (), latency: Moments | None = None,
        estimated: ArmEstimate | None = None) -> ArmStats:
    """A classification arm: ``errors`` wrong among ``labeled`` (default all) joined rows."""
    labeled = n if labeled is None else labeled
    return ArmStats(n, invalid, hist, Moments(labeled, float(errors), float(errors)),
                    latency or Moments(), estimated)


def reg(n: int, mean_error: float, sd: float, seed: int) -> ArmStats:
    errors = np.abs(np.random.default_rng(seed).normal(mean_error, sd, n))
    return ArmStats.of(n, loss=errors)


def lat(mean: float, n: int = 3000, sd: float = 5.0, seed: int = 0) -> Moments:
    return Moments.of(np.random.default_rng(seed).normal(mean, sd, n))


@dataclass(frozen=True)
class Case:
    name: str
    champion: ArmStats
    challenger: ArmStats
    settings: JudgeSettings
    outcome: str
    score: float | None
    estimated: bool = False
    failed: tuple[str, ...] = ()


CASES = [
    Case("no data in either arm", ArmStats(), ArmStats(), SETTINGS, "inconclusive", None),
    Case("challenger arm empty", clf(5000, 500), ArmStats(), SETTINGS, "inconclusive", None),
    Case("champion arm empty", ArmStats(), clf(5000, 500), SETTINGS, "inconclusive", None),
    Case("one event short of min_events", clf(5000, 500), clf(1999, 200), SETTINGS,
         "inconclusive", None),
    Case("tie within a 0.02 margin passes", clf(5000, 500), clf(5000, 500), SETTINGS,
         "pass", 100.0),
    Case("tie at margin 0 is not shown non-inferior",
         clf(5000, 500), clf(5000, 500), replace(SETTINGS, max_performance_drop=0.0),
         "inconclusive", 100.0),
    Case("clearly better challenger passes at margin 0", clf(5000, 500), clf(5000, 300),
         replace(SETTINGS, max_performance_drop=0.0), "pass", 100.0),
    Case("clearly worse challenger fails with score 0", clf(5000, 300), clf(5000, 600),
         SETTINGS, "fail", 0.0, failed=("performance",)),
    Case("slightly worse, inside the noise of the margin", clf(5000, 500), clf(5000, 590),
         SETTINGS, "inconclusive", 100.0),
    Case("perfect arms pass with a margin", clf(3000, 0), clf(3000, 0),
         replace(SETTINGS, max_performance_drop=0.01), "pass", 100.0),
    Case("perfect arms at margin 0 stay inconclusive", clf(3000, 0), clf(3000, 0),
         replace(SETTINGS, max_performance_drop=0.0), "inconclusive", 100.0),
    Case("perfect champion, worse challenger fails", clf(3000, 0), clf(3000, 150),
         SETTINGS, "fail", 0.0, failed=("performance",)),
    Case("regression: lower error passes", reg(3000, 5.0, 1.0, 1), reg(3000, 4.0, 1.0, 2),
         REGRESSION, "pass", 100.0),
    Case("regression: higher error fails", reg(3000, 4.0, 1.0, 1), reg(3000, 5.0, 1.0, 2),
         REGRESSION, "fail", 0.0, failed=("performance",)),
    Case("regression: perfect arms at margin 0 are inconclusive",
         ArmStats.of(3000, loss=np.zeros(3000)), ArmStats.of(3000, loss=np.zeros(3000)),
         REGRESSION, "inconclusive", 100.0),
    Case("estimated only: better estimate passes",
         clf(5000, 0, labeled=0, estimated=ArmEstimate(0.85, 0.004, 5000)),
         clf(5000, 0, labeled=0, estimated=ArmEstimate(0.90, 0.004, 5000)),
         SETTINGS, "pass", 100.0, estimated=True),
    Case("estimated only: worse estimate fails",
         clf(5000, 0, labeled=50, estimated=ArmEstimate(0.90, 0.004, 5000)),
         clf(5000, 0, labeled=50, estimated=ArmEstimate(0.80, 0.004, 5000)),
         SETTINGS, "fail", 0.0, estimated=True, failed=("performance",)),
    Case("labels win over estimates when both arms have enough",
         clf(5000, 500, estimated=ArmEstimate(0.5, 0.01, 5000)),
         clf(5000, 500, estimated=ArmEstimate(0.99, 0.01, 5000)), SETTINGS, "pass", 100.0),
    Case("no labels and no estimates: critical performance is inconclusive",
         clf(5000, 0, labeled=0), clf(5000, 0, labeled=0), SETTINGS, "inconclusive", 100.0),
    Case("no labels, performance not critical: judged on the rest",
         clf(5000, 0, labeled=0), clf(5000, 0, labeled=0),
         replace(SETTINGS, critical=frozenset({"invalid_rate"})), "pass", 100.0),
    Case("more invalid rows fail the critical check", clf(5000, 500, invalid=10),
         clf(5000, 500, invalid=400), SETTINGS, "fail", 0.0, failed=("invalid_rate",)),
    Case("diverging predictions alone are marginal", clf(5000, 500, hist=(2500, 2500)),
         clf(5000, 500, hist=(4500, 500)), SETTINGS, "inconclusive", 75.0,
         failed=("prediction_divergence",)),
    Case("divergence and slower latency fail on score",
         clf(5000, 500, hist=(2500, 2500), latency=lat(100.0)),
         clf(5000, 500, hist=(4500, 500), latency=lat(200.0, seed=1)), SETTINGS, "fail", 60.0,
         failed=("prediction_divergence", "latency")),
    Case("same latency and predictions pass all five checks",
         clf(5000, 500, hist=(2500, 2500), latency=lat(100.0)),
         clf(5000, 500, hist=(2490, 2510), latency=lat(101.0, seed=1)), SETTINGS, "pass", 100.0),
    Case("latency in one arm only is left out of the score",
         clf(5000, 500, latency=lat(100.0)), clf(5000, 500), SETTINGS, "pass", 100.0),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_judge_table(case: Case) -> None:
    verdict = judge(case.champion, case.challenger, case.settings)
    assert verdict.outcome == case.outcome, verdict.reason
    assert verdict.score == (None if case.score is None else pytest.approx(case.score))
    assert verdict.estimated == case.estimated
    assert verdict.failed_checks == case.failed
    assert verdict.reason


def test_judge_too_little_traffic_says_which_arm_and_what_is_needed() -> None:
    verdict = judge(clf(5000, 500), clf(120, 10), SETTINGS)
    assert [c.name for c in verdict.checks] == ["traffic"]
    assert "challenger had 120" in verdict.reason and "need 2000 per arm" in verdict.reason
    assert "champion had" not in verdict.reason


def test_judge_performance_check_carries_values_bounds_and_sample_sizes() -> None:
    verdict = judge(clf(5000, 500), clf(4000, 300), SETTINGS)
    check = verdict.check("performance")
    assert check is not None
    assert (check.champion_value, check.challenger_value) == (pytest.approx(0.9),
                                                             pytest.approx(0.925))
    assert check.statistic == pytest.approx(0.025)
    assert check.threshold == -0.02 and check.direction == "above"
    assert check.lower is not None and check.upper is not None and check.statistic is not None
    assert check.lower < check.statistic < check.upper
    assert (check.n_champion, check.n_challenger) == (5000, 4000)
    assert check.method == "agresti_caffo" and check.critical
    assert "accuracy 0.925 (challenger) vs 0.9 (champion)" in check.sentence


def test_judge_failing_critical_check_forces_score_zero_even_if_others_pass() -> None:
    verdict = judge(clf(5000, 300, hist=(1, 1)), clf(5000, 900, hist=(1, 1)), SETTINGS)
    assert verdict.outcome == "fail" and verdict.score == 0.0
    assert verdict.reason.startswith("fail (score 0): critical check accuracy")


def test_judge_different_histogram_bins_raise_naming_both_sizes() -> None:
    with pytest.raises(ValueError, match="got 3 challenger and 2 champion bins"):
        judge(clf(5000, 500, hist=(1, 1)), clf(5000, 500, hist=(1, 1, 1)), SETTINGS)


def test_verdict_round_trips_through_json() -> None:
    verdict = judge(clf(5000, 500, hist=(2500, 2500), latency=lat(100.0)),
                    clf(5000, 450, hist=(2400, 2600), latency=lat(100.0, seed=3)), SETTINGS)
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert data["verdict"] == data["outcome"] == "pass"
    assert CanaryVerdict.from_dict(data) == verdict


def test_verdict_to_dict_turns_infinite_statistics_into_null() -> None:
    zero = ArmStats.of(3000, loss=np.zeros(3000))
    verdict = judge(zero, zero, REGRESSION)
    data = verdict.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["checks"][1]["p_value"] is not None


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"metric": "accurcy"}, "metric: got 'accurcy'"),
        ({"confidence": 1.0}, "confidence: got 1.0"),
        ({"max_performance_drop": -0.1}, "max_performance_drop: got -0.1"),
        ({"weights": {"speed": 1.0}}, "unknown checks ['speed']"),
        ({"pass_score": 50.0}, "marginal 75.0, pass 50.0"),
    ],
)
def test_judge_settings_reject_bad_values_naming_them(change: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match="canary judge settings") as info:
        JudgeSettings(**change)
    assert fragment in str(info.value)


arms = st.builds(
    lambda n, err, inv, h1, lm: ArmStats(
        n, min(inv, n), (h1, n - h1) if h1 <= n else (n, 0), Moments(n, float(min(err, n)),
                                                                      float(min(err, n))),
        Moments(n, lm * n, (lm * lm + 1.0) * n)),
    st.integers(0, 20000), st.integers(0, 20000), st.integers(0, 500), st.integers(0, 20000),
    st.floats(0.0, 1000.0),
)


@settings(max_examples=200, deadline=None)
@given(arm=arms, margin=st.floats(0.0, 0.1))
def test_judge_identical_arms_never_fail(arm: ArmStats, margin: float) -> None:
    verdict = judge(arm, arm, replace(SETTINGS, max_performance_drop=margin))
    assert verdict.outcome != "fail", verdict.reason


@settings(max_examples=100, deadline=None)
@given(a=arms, b=arms)
def test_judge_score_is_between_0_and_100_and_none_only_without_traffic(
        a: ArmStats, b: ArmStats) -> None:
    verdict = judge(a, b, SETTINGS)
    if verdict.score is None:
        assert verdict.outcome == "inconclusive"
    else:
        assert 0.0 <= verdict.score <= 100.0
