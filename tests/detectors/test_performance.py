"""Performance metrics against sklearn on the same arrays, and the degradation decision."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from detectors import calibrate_max_drop, evaluate_performance, performance_metric

RNG = np.random.default_rng(3)
Y = RNG.integers(0, 2, size=2000)
# scores rounded to 2 decimals so roc_auc has many ties
SCORE = np.round(np.clip(0.3 * Y + RNG.normal(0.35, 0.2, size=2000), 0.0, 1.0), 2)
PRED = (SCORE >= 0.5).astype(int)
Y_MULTI = RNG.integers(0, 4, size=2000)
PRED_MULTI = np.where(RNG.random(2000) < 0.7, Y_MULTI, RNG.integers(0, 4, size=2000))
PROBS = RNG.dirichlet(np.ones(4), size=2000)
Y_REG = RNG.normal(100, 20, size=2000)
PRED_REG = Y_REG + RNG.normal(0, 5, size=2000)


@pytest.mark.parametrize(("metric", "expected"), [
    ("accuracy", skm.accuracy_score(Y, PRED)),
    ("precision", skm.precision_score(Y, PRED)),
    ("recall", skm.recall_score(Y, PRED)),
    ("f1", skm.f1_score(Y, PRED)),
    ("roc_auc", skm.roc_auc_score(Y, SCORE)),
    ("log_loss", skm.log_loss(Y, SCORE)),
])
def test_binary_metrics_match_sklearn(metric: str, expected: float) -> None:
    assert performance_metric(metric, Y, PRED, score=SCORE) == pytest.approx(expected, rel=1e-9)


def test_multiclass_metrics_match_sklearn() -> None:
    assert performance_metric("accuracy", Y_MULTI, PRED_MULTI) == pytest.approx(
        skm.accuracy_score(Y_MULTI, PRED_MULTI), rel=1e-12)
    macro = skm.f1_score(Y_MULTI, PRED_MULTI, average="macro")
    assert performance_metric("f1", Y_MULTI, PRED_MULTI) == pytest.approx(macro, rel=1e-12)
    assert performance_metric("f1_macro", Y, PRED) == pytest.approx(
        skm.f1_score(Y, PRED, average="macro"), rel=1e-12)
    assert performance_metric("log_loss", Y_MULTI, None, scores=PROBS) == pytest.approx(
        skm.log_loss(Y_MULTI, PROBS), rel=1e-9)


@pytest.mark.parametrize(("metric", "expected"), [
    ("mae", skm.mean_absolute_error(Y_REG, PRED_REG)),
    ("rmse", np.sqrt(skm.mean_squared_error(Y_REG, PRED_REG))),
    ("mape", skm.mean_absolute_percentage_error(Y_REG, PRED_REG)),
])
def test_regression_metrics_match_sklearn(metric: str, expected: float) -> None:
    assert performance_metric(metric, Y_REG, PRED_REG) == pytest.approx(expected, rel=1e-12)


def test_roc_auc_with_one_class_is_inconclusive() -> None:
    ones = np.ones(500, dtype=int)
    result = evaluate_performance("roc_auc", ones, ones, np.full(500, 0.9), 0.8, 0.02)
    assert result.status == "inconclusive" and result.value is None and not result.degraded


def test_degradation_direction_follows_the_metric() -> None:
    worse = evaluate_performance("accuracy", Y, 1 - PRED, None, baseline_value=0.8,
                                 max_drop=0.05)
    assert worse.degraded and worse.status == "degraded" and worse.labeled_rows == 2000
    ok = evaluate_performance("accuracy", Y, PRED, None, baseline_value=float(
        np.mean(Y == PRED)) + 0.04, max_drop=0.05)
    assert ok.status == "ok"
    mae = float(np.mean(np.abs(Y_REG - PRED_REG)))
    higher_error = evaluate_performance("mae", Y_REG, PRED_REG, None, mae / 2, max_drop=0.1)
    lower_error = evaluate_performance("mae", Y_REG, PRED_REG, None, mae * 2, max_drop=0.1)
    assert higher_error.degraded and not lower_error.degraded
    loss = float(skm.log_loss(Y, SCORE))
    # lower is better for log_loss too: a rise beyond max_drop degrades, within it does not
    assert evaluate_performance("log_loss", Y, PRED, SCORE, loss - 0.06, max_drop=0.05).degraded
    assert not evaluate_performance("log_loss", Y, PRED, SCORE, loss - 0.04,
                                    max_drop=0.05).degraded
    assert not evaluate_performance("accuracy", Y, PRED, None, float(np.mean(Y == PRED)) + 0.04,
                                    max_drop=0.05).degraded
    assert evaluate_performance("accuracy", Y, PRED, None, float(np.mean(Y == PRED)) + 0.06,
                                max_drop=0.05).degraded


def test_few_labels_are_inconclusive_never_ok() -> None:
    result = evaluate_performance("accuracy", Y[:50], 1 - PRED[:50], None, 0.99, 0.01)
    assert result.status == "inconclusive" and not result.degraded and result.value is not None


def test_auto_max_drop_is_three_binomial_standard_errors_with_a_floor() -> None:
    accuracy = float(np.mean(Y == PRED))
    drop = calibrate_max_drop("accuracy", Y, PRED, window_rows=500, resamples=200, seed=0)
    expected = 3 * np.sqrt(accuracy * (1 - accuracy) / 500)
    assert drop == pytest.approx(expected, rel=0.15)
    assert calibrate_max_drop("accuracy", Y, PRED, window_rows=10**6, resamples=5) == 0.01
    again = calibrate_max_drop("accuracy", Y, PRED, window_rows=500, resamples=200,
                               seed=np.random.default_rng(0))
    assert again == drop


def test_unknown_metric_and_bad_labels_are_named() -> None:
    with pytest.raises(ValueError, match="performance metric: got 'kappa'"):
        performance_metric("kappa", Y, PRED)
    with pytest.raises(ValueError, match="precision y_true: got labels"):
        performance_metric("precision", Y_MULTI, PRED_MULTI)
