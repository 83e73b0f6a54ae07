"""CBPE: isotonic calibration against sklearn, estimates against realized metrics on seeded
streams with withheld labels, exact parities, and the edge cases' statuses."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression

from detectors import (
    CBPEReference,
    ConfidenceCounts,
    ScoreCalibration,
    estimate,
    estimate_performance,
    fit_cbpe,
    fit_isotonic,
    performance_metric,
)


def _stream(rng: np.random.Generator, n: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels from P(y=1 | x) = sigmoid(3x) and an under-confident score sigmoid(2x): the
    calibration has something to correct. A smaller ``spread`` puts more rows near 0.5."""
    x = rng.normal(0.0, spread, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-3.0 * x))).astype(np.int64)
    return y, 1.0 / (1.0 + np.exp(-2.0 * x))


RNG = np.random.default_rng(20)
Y_REF, S_REF = _stream(RNG, 20_000, 1.5)
REFERENCE = fit_cbpe(Y_REF, score=S_REF, seed=1)


def _window_counts(reference: CBPEReference, score: np.ndarray) -> ConfidenceCounts:
    counts = reference.empty_counts()
    reference.add(counts, score=score)
    return counts


def test_isotonic_steps_equal_sklearn_at_the_reference_scores() -> None:
    rng = np.random.default_rng(4)
    scores = np.round(rng.random(3000), 2)  # many ties
    labels = (rng.random(3000) < scores ** 2).astype(np.int64)
    ours = fit_isotonic(scores, labels)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(scores, labels)
    assert ours.probability(scores) == pytest.approx(theirs.predict(scores), abs=1e-12)
    assert np.all(np.diff(ours.values) > 0) and np.all(np.diff(ours.starts) > 0)
    assert int(ours.weights.sum()) == scores.size
    back = ScoreCalibration.from_dict(json.loads(json.dumps(ours.to_dict())))
    assert back.probability(scores) == pytest.approx(ours.probability(scores), abs=0)


def test_estimated_accuracy_falls_and_is_flagged_only_where_scores_move_to_the_middle(
) -> None:
    rng = np.random.default_rng(5)
    estimates, realized, flagged, covered = [], [], [], 0
    for w in range(40):
        # windows 20..39: the score mix moves towards 0.5, labels withheld until afterwards
        y, score = _stream(rng, 2000, 1.5 if w < 20 else 0.6)
        result = estimate_performance(REFERENCE, _window_counts(REFERENCE, score), "accuracy")
        truth = performance_metric("accuracy", y, (score >= 0.5).astype(np.int64))
        assert result.value is not None and result.lower is not None
        assert result.upper is not None
        estimates.append(result.value)
        realized.append(truth)
        flagged.append(result.degraded)
        covered += result.lower <= truth <= result.upper
    assert np.mean(estimates[20:]) < np.mean(estimates[:20]) - 0.08
    assert flagged == [False] * 20 + [True] * 20
    assert covered / 40 >= 0.9
    assert np.mean(realized[20:]) < np.mean(realized[:20]) - 0.08


@pytest.mark.parametrize("metric", ["precision", "recall", "f1", "roc_auc"])
def test_other_binary_estimates_hold_their_band_of_the_realized_metric(metric: str) -> None:
    rng = np.random.default_rng(6)
    covered = 0
    for w in range(40):
        y, score = _stream(rng, 2000, 1.5 if w < 20 else 0.6)
        result = estimate_performance(REFERENCE, _window_counts(REFERENCE, score), metric)
        truth = performance_metric(metric, y, (score >= 0.5).astype(np.int64), score=score)
        assert result.lower is not None and result.upper is not None
        covered += result.lower <= truth <= result.upper
        assert result.degraded == (w >= 20), (w, result)
    assert covered / 40 >= 0.9


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=200))
def test_identity_calibration_accuracy_is_the_mean_of_max_p_and_one_minus_p(
        p: list[float]) -> None:
    identity = ScoreCalibration.identity()
    counts = ConfidenceCounts.empty(identity)
    counts.add_binary(identity, np.array(p))
    expected = float(np.mean(np.maximum(p, 1.0 - np.array(p))))
    assert estimate(counts, "accuracy").value == pytest.approx(expected, abs=1e-9)


def test_roc_auc_from_the_step_histogram_equals_the_pairwise_expectation() -> None:
    rng = np.random.default_rng(7)
    _, score = _stream(rng, 300, 1.0)
    calibration = REFERENCE.calibrations[0]
    p, rank = calibration.probability(score), calibration.bin_index(score)
    pairs = np.outer(p, 1.0 - p)  # pairs[i, j]: i positive, j negative
    np.fill_diagonal(pairs, 0.0)
    above = rank[:, None] > rank[None, :]
    tied = rank[:, None] == rank[None, :]
    expected = (pairs[above].sum() + 0.5 * pairs[tied].sum()) / pairs.sum()
    counts = _window_counts(REFERENCE, score)
    assert estimate(counts, "roc_auc").value == pytest.approx(expected, rel=1e-12)


def test_counts_merge_like_one_window_and_round_trip_through_json() -> None:
    rng = np.random.default_rng(8)
    _, score = _stream(rng, 1000, 1.0)
    whole = _window_counts(REFERENCE, score)
    merged = _window_counts(REFERENCE, score[:400]).merge(_window_counts(REFERENCE, score[400:]))
    back = ConfidenceCounts.from_dict(json.loads(json.dumps(merged.to_dict())))
    for metric in REFERENCE.metrics:
        assert estimate(back, metric).value == pytest.approx(estimate(whole, metric).value,
                                                             rel=1e-12)
    reference = CBPEReference.from_dict(json.loads(json.dumps(REFERENCE.to_dict())))
    assert reference.lower_bound("f1", 777) == REFERENCE.lower_bound("f1", 777)
    with pytest.raises(ValueError, match="CBPE reference version: got 0, expected 1"):
        CBPEReference.from_dict({**REFERENCE.to_dict(), "version": 0})


def test_in_sample_baseline_is_the_realized_reference_accuracy() -> None:
    realized = performance_metric("accuracy", Y_REF, (S_REF >= 0.5).astype(np.int64))
    # exact up to the rows of the one step that may straddle the 0.5 threshold
    assert REFERENCE.baseline["accuracy"] == pytest.approx(realized, abs=0.01)


def test_explicit_max_drop_sets_the_threshold_below_the_baseline() -> None:
    counts = _window_counts(REFERENCE, S_REF[:5000])
    result = estimate_performance(REFERENCE, counts, "accuracy", max_drop=0.05)
    assert result.threshold == pytest.approx(REFERENCE.baseline["accuracy"] - 0.05)
    auto = estimate_performance(REFERENCE, counts, "accuracy")
    assert auto.threshold <= REFERENCE.baseline["accuracy"] - 0.01
    assert auto.status == "ok" and not auto.degraded


CONSTANT = fit_cbpe(np.array([1] * 70 + [0] * 30), score=np.full(100, 0.7),
                    window_sizes=(100, 300), resamples=5)
ONE_CLASS = fit_cbpe(np.zeros(500, np.int64), score=np.linspace(0.0, 0.4, 500),
                     window_sizes=(100, 300), resamples=5)


@pytest.mark.parametrize(("reference", "score", "metric", "status", "value"), [
    # constant scores: one step at the positive share, every row predicted positive
    (CONSTANT, np.full(200, 0.7), "accuracy", "ok", 0.7),
    (CONSTANT, np.full(200, 0.7), "precision", "ok", 0.7),
    (CONSTANT, np.full(200, 0.7), "recall", "ok", 1.0),
    (CONSTANT, np.full(200, 0.7), "roc_auc", "ok", 0.5),
    # a reference of one class: P(positive) is 0 everywhere, predictions are all right
    (ONE_CLASS, np.full(200, 0.1), "accuracy", "ok", 1.0),
    # a window where the calibration sees only negatives: ROC AUC has no pairs
    (REFERENCE, np.full(200, 0.001), "roc_auc", "inconclusive", None),
    (REFERENCE, np.full(200, 0.001), "precision", "inconclusive", None),
    # empty and small windows: too few rows is inconclusive, the estimate still shown
    (REFERENCE, np.zeros(0), "accuracy", "inconclusive", None),
    (REFERENCE, np.full(50, 0.9), "accuracy", "inconclusive",
     float(REFERENCE.calibrations[0].probability(np.array([0.9]))[0])),
])
def test_edge_cases(reference: CBPEReference, score: np.ndarray, metric: str, status: str,
                    value: float | None) -> None:
    result = estimate_performance(reference, _window_counts(reference, score), metric)
    assert result.status == status
    if value is None:
        assert result.value is None
    else:
        assert result.value == pytest.approx(value, abs=1e-9)
    if status == "inconclusive":
        assert result.lower is None and result.upper is None and not result.degraded
    assert json.loads(json.dumps(result.to_dict()))["metric"] == metric


def test_metrics_undefined_on_the_reference_are_left_out_and_refused() -> None:
    assert ONE_CLASS.metrics == ("accuracy",)
    counts = _window_counts(ONE_CLASS, np.full(200, 0.1))
    with pytest.raises(ValueError, match="estimated metric: got 'recall', expected one of "
                                         "accuracy"):
        estimate_performance(ONE_CLASS, counts, "recall")


def test_multiclass_accuracy_tracks_the_realized_one_and_falls_with_confusion() -> None:
    rng = np.random.default_rng(9)

    def draw(n: int, sharpness: float) -> tuple[np.ndarray, np.ndarray]:
        logits = rng.normal(0.0, sharpness, size=(n, 3))
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = np.array([rng.choice(3, p=row) for row in probs])
        return y, probs ** 0.7  # miscalibrated, unnormalized per-class scores

    y_ref, s_ref = draw(6000, 2.0)
    reference = fit_cbpe(y_ref, scores=s_ref, seed=2, window_sizes=(100, 1000))
    assert reference.task == "multiclass" and reference.metrics == ("accuracy",)
    values, covered = [], 0
    for sharpness in (2.0, 2.0, 0.7, 0.7):
        y, scores = draw(2000, sharpness)
        counts = reference.empty_counts()
        reference.add(counts, scores=scores)
        result = estimate_performance(reference, counts, "accuracy")
        truth = float(np.mean(np.argmax(scores, axis=1) == y))
        assert result.value is not None and result.lower is not None
        assert result.upper is not None
        covered += result.lower <= truth <= result.upper
        values.append(result.value)
    assert covered >= 3
    assert max(values[2:]) < min(values[:2]) - 0.1
    assert math.isclose(CBPEReference.from_dict(reference.to_dict()).baseline["accuracy"],
                        reference.baseline["accuracy"])


def test_inputs_that_do_not_fit_the_reference_are_refused_with_what_was_expected() -> None:
    counts = ConfidenceCounts.empty(ScoreCalibration.identity())
    with pytest.raises(ValueError, match=r"got a calibration of \d+ bins, expected the 1000"):
        counts.add_binary(REFERENCE.calibrations[0], S_REF[:10])
    with pytest.raises(ValueError, match="got 3 predictions for 10 scores"):
        REFERENCE.add(REFERENCE.empty_counts(), score=S_REF[:10], predicted=np.ones(3))
    identity3 = [ScoreCalibration.identity()] * 3
    with pytest.raises(ValueError, match=r"got predicted classes \[0, 5\], expected 0..2"):
        ConfidenceCounts.empty().add_multiclass(identity3, np.full((2, 3), 0.3),
                                                predicted=np.array([0, 5]))
    with pytest.raises(ValueError, match="got neither score nor scores"):
        fit_cbpe(Y_REF)
