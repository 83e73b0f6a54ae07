"""Parity of the canary's two-sample statistics with scipy and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion as sm_proportion

from detectors.canary_stats import ArmEstimate, ArmStats, Moments, histogram, row_loss
from detectors.performance import performance_metric
from detectors.twosample import normal_difference, two_proportions, welch

PROPORTIONS = [(1800, 2000, 1750, 2000), (0, 500, 3, 700), (500, 500, 498, 500), (7, 9, 3, 11)]


@pytest.mark.parametrize(("xa", "na", "xb", "nb"), PROPORTIONS)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_two_proportions_bounds_match_statsmodels_agresti_caffo(
        xa: int, na: int, xb: int, nb: int, confidence: float) -> None:
    d = two_proportions(xa, na, xb, nb, confidence=confidence)
    assert d is not None
    # a one-sided bound at c is a side of the two-sided interval at alpha = 2 (1 - c)
    low, high = sm_proportion.confint_proportions_2indep(xa, na, xb, nb, method="agresti-caffo",
                                           compare="diff", alpha=2 * (1 - confidence))
    assert (d.lower, d.upper) == (pytest.approx(low), pytest.approx(high))
    assert d.difference == pytest.approx(xa / na - xb / nb)


# statsmodels also computes an odds ratio, which divides by zero for a rate of 1
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.parametrize(("xa", "na", "xb", "nb"), PROPORTIONS)
@pytest.mark.parametrize(("margin", "want", "alternative"),
                         [(-0.02, "above", "larger"), (0.01, "below", "smaller")])
def test_two_proportions_margin_test_matches_statsmodels(
        xa: int, na: int, xb: int, nb: int, margin: float, want: str, alternative: str) -> None:
    d = two_proportions(xa, na, xb, nb, confidence=0.95)
    assert d is not None
    ref = sm_proportion.test_proportions_2indep(xa, na, xb, nb, value=margin,
                                                method="agresti-caffo", compare="diff",
                                                alternative=alternative)
    assert d.statistic(margin) == pytest.approx(ref.statistic)
    assert d.p_value(margin, want) == pytest.approx(ref.pvalue)  # type: ignore[arg-type]


def test_two_proportions_hand_formula_with_scipy_norm() -> None:
    xa, na, xb, nb, margin = 930, 1000, 910, 1000, -0.01
    pa, pb = (xa + 1) / (na + 2), (xb + 1) / (nb + 2)
    se = math.sqrt(pa * (1 - pa) / (na + 2) + pb * (1 - pb) / (nb + 2))
    z = (pa - pb - margin) / se
    d = two_proportions(xa, na, xb, nb, confidence=0.95)
    assert d is not None
    assert d.statistic(margin) == pytest.approx(z)
    assert d.p_value(margin, "above") == pytest.approx(stats.norm.sf(z))
    assert d.lower == pytest.approx(pa - pb - stats.norm.ppf(0.95) * se)


def test_two_proportions_without_trials_is_none_and_bad_counts_raise() -> None:
    assert two_proportions(0, 0, 5, 10, confidence=0.95) is None
    with pytest.raises(ValueError, match="got counts 11/10"):
        two_proportions(11, 10, 5, 10, confidence=0.95)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("margin", "want", "alternative"),
                         [(0.1, "below", "less"), (-0.2, "above", "greater")])
def test_welch_matches_scipy_ttest_ind_unequal_variance(
        seed: int, margin: float, want: str, alternative: str) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(3.0, 1.0, 400), rng.normal(3.1, 2.5, 900)
    d = welch(Moments.of(a), Moments.of(b), confidence=0.95)
    assert d is not None
    # shifting b by the margin tests "mean(a) - mean(b) vs margin" with the same variances
    ref = stats.ttest_ind(a, b + margin, equal_var=False, alternative=alternative)
    assert d.statistic(margin) == pytest.approx(ref.statistic)
    assert d.p_value(margin, want) == pytest.approx(ref.pvalue)  # type: ignore[arg-type]
    assert d.df == pytest.approx(ref.df)
    low = stats.ttest_ind(a, b, equal_var=False, alternative="greater").confidence_interval(0.95)
    high = stats.ttest_ind(a, b, equal_var=False, alternative="less").confidence_interval(0.95)
    assert (d.lower, d.upper) == (pytest.approx(low.low), pytest.approx(high.high))


def test_welch_needs_two_values_per_arm_and_zero_variance_is_exact() -> None:
    assert welch(Moments.of(np.array([1.0])), Moments.of(np.ones(5)), confidence=0.95) is None
    d = welch(Moments.of(np.full(10, 2.0)), Moments.of(np.full(10, 1.0)), confidence=0.95)
    assert d is not None
    assert (d.lower, d.upper, d.standard_error) == (1.0, 1.0, 0.0)
    assert d.classify(0.5, "above") == "pass" and d.classify(1.0, "above") == "inconclusive"


def test_normal_difference_matches_scipy_norm() -> None:
    d = normal_difference(0.91, 0.01, 0.89, 0.02, confidence=0.9)
    se = math.hypot(0.01, 0.02)
    assert d.upper == pytest.approx(0.02 + stats.norm.ppf(0.9) * se)
    assert d.p_value(0.0, "above") == pytest.approx(stats.norm.sf(0.02 / se))
    with pytest.raises(ValueError, match="got standard errors -1"):
        normal_difference(0.9, -1, 0.9, 0.1, confidence=0.9)


def test_moments_merge_equals_moments_of_concatenation_and_match_numpy() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.exponential(50.0, 1000), rng.exponential(80.0, 3000)
    merged = Moments.of(a).merge(Moments.of(b))
    both = np.concatenate([a, b])
    assert merged.n == both.size
    assert merged.mean == pytest.approx(both.mean())
    assert merged.variance == pytest.approx(both.var(ddof=1))


def test_arm_stats_merge_adds_counts_and_round_trips() -> None:
    a = ArmStats.of(10, 1, (4, 6), loss=np.array([0.0, 1.0]), latency=np.array([5.0, 7.0]),
                    estimated=ArmEstimate(0.9, 0.02, 10))
    b = ArmStats.of(30, 2, (10, 20), loss=np.array([1.0]), estimated=ArmEstimate(0.8, 0.01, 30))
    m = a.merge(b)
    assert (m.n_events, m.n_invalid, m.prediction_counts) == (40, 3, (14, 26))
    assert (m.loss.n, m.loss.total, m.latency.n) == (3, 2.0, 2)
    assert m.estimated is not None
    assert m.estimated.value == pytest.approx(0.825)
    assert m.estimated.standard_error == pytest.approx(math.hypot(0.25 * 0.02, 0.75 * 0.01))
    assert ArmStats.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="got 2 and 3 prediction bins"):
        a.merge(ArmStats(prediction_counts=(1, 2, 3)))
    with pytest.raises(ValueError, match="n_invalid=5 of n_events=4"):
        ArmStats(4, 5)


@pytest.mark.parametrize(("metric", "judged"), [("accuracy", "accuracy"), ("f1", "accuracy"),
                                                ("mae", "mae"), ("mape", "mape")])
def test_row_loss_mean_matches_the_judged_metric(metric: str, judged: str) -> None:
    rng = np.random.default_rng(5)
    if judged == "accuracy":
        y, p = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
        assert 1 - row_loss(metric, y, p).mean() == pytest.approx(
            performance_metric("accuracy", y, p))
    else:
        yr, pr = rng.normal(10, 2, 300), rng.normal(10, 2, 300)
        assert row_loss(metric, yr, pr).mean() == pytest.approx(
            performance_metric(judged, yr, pr))


def test_row_loss_log_loss_mean_matches_performance_metric() -> None:
    rng = np.random.default_rng(6)
    y, s = rng.integers(0, 2, 200), rng.uniform(0.01, 0.99, 200)
    assert row_loss("log_loss", y, None, s).mean() == pytest.approx(
        performance_metric("log_loss", y, None, s))


def test_histogram_folds_outliers_into_end_bins_and_pools_unknown_categories() -> None:
    assert histogram(np.array([-5.0, 0.5, 1.5, 2.0, 99.0, np.nan]), edges=[0, 1, 2]) == (2, 3)
    assert histogram(np.array(["a", "b", "z", None], dtype=object),
                     categories=["a", "b"]) == (1, 1, 1)
    with pytest.raises(ValueError, match="exactly one of edges or categories"):
        histogram(np.array([1.0]))
