"""Classifier metrics estimated without labels from calibrated probabilities (CBPE).

Given each row's calibrated probability p of the positive class and the model's
predicted label, the expected confusion matrix is E[TP] = sum of p over predicted
positives, E[FN] = sum of p over predicted negatives, E[FP] and E[TN] likewise
with 1 - p (NannyML's confidence-based performance estimation). A window keeps
only sums (``ConfidenceCounts``), so it never stores rows and windows from
several replicas merge by addition:

- accuracy = (E[TP] + E[TN]) / n; multiclass: the mean calibrated probability of
  the predicted class;
- precision = E[TP] / predicted positives; recall = E[TP] / E[positives];
  f1 = 2 E[TP] / (predicted positives + E[positives]) (ratios of expectations);
- ROC AUC: rows are ranked by calibrated probability, which is constant on each
  step of the calibration, so a histogram over the steps (sum of p, of 1 - p and
  of p (1 - p) per step) gives the expected number of correctly ordered
  (positive, negative) pairs exactly, pairs within a step counting one half (the
  calibration says the score orders nothing inside a step). Under the identity
  calibration the steps are 1000 equal-width bins of p, an approximation whose
  error is at most half the share of pairs that share a bin.

Each estimate carries the standard deviation of the realized metric around it,
from two sources. The window's labels are drawn with the calibrated
probabilities: the Poisson-binomial variance for accuracy and precision, the
delta method for recall and f1, Hanley and McNeil's formula for ROC AUC. And
each step's probability was learnt from ``weights[k]`` reference rows, so it is
off by about sqrt(p (1 - p) / weights[k]), the same way for every row of the step:
for the binary accuracy, precision, recall and f1 this error is propagated too
(measured on seeded streams it moved estimates by up to 0.8 of the window's
std, and left 95% bands covering 87% of realized values without it). ROC AUC
and the multiclass accuracy carry the window's sampling error only.

>>> from detectors.isotonic import ScoreCalibration
>>> counts = ConfidenceCounts.empty(ScoreCalibration.identity())
>>> counts.add_binary(ScoreCalibration.identity(), np.array([0.9, 0.2, 0.6, 0.5]))
>>> round(estimate(counts, "accuracy").value, 12)  # mean of max(p, 1 - p)
0.7
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.isotonic import ScoreCalibration

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "ConfidenceCounts",
    "Estimate",
    "estimate",
]

BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
MULTICLASS_METRICS = ("accuracy",)


@dataclass(frozen=True)
class Estimate:
    """An estimated metric and the std of the realized metric around it (NaN: undefined)."""

    value: float
    std: float


@dataclass
class ConfidenceCounts:
    """Sums over a window's rows; binary fields stay zero for a multiclass model.

    Per calibration bin (binary only): ``bin_n`` rows, ``bin_predicted`` predicted
    positives, ``bin_p`` and ``bin_var`` the sums of p and p (1 - p).
    """

    n: int = 0
    sum_correct: float = 0.0  # sum of P(prediction is right)
    var_correct: float = 0.0  # sum of P(right) (1 - P(right))
    predicted_positive: int = 0
    sum_p: float = 0.0  # expected positives
    sum_p_predicted: float = 0.0  # expected true positives
    var_all: float = 0.0  # sum of p (1 - p)
    var_predicted: float = 0.0  # sum of p (1 - p) over predicted positives
    bin_n: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bin_predicted: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bin_p: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bin_var: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def empty(cls, calibration: ScoreCalibration | None = None) -> ConfidenceCounts:
        """Counts for a binary model's ``calibration``, or a multiclass model's (None)."""
        bins = 0 if calibration is None else calibration.n_bins
        return cls(bin_n=np.zeros(bins, np.int64), bin_predicted=np.zeros(bins, np.int64),
                   bin_p=np.zeros(bins), bin_var=np.zeros(bins))

    def add_binary(self, calibration: ScoreCalibration, score: np.ndarray,
                   predicted: np.ndarray | None = None, threshold: float = 0.5) -> None:
        """Rows of a binary model: ``score`` as the model emits it, ``predicted`` its 0/1
        labels (None: score >= ``threshold``). Rows without a score are left out."""
        score = np.asarray(score, np.float64)
        kept = ~np.isnan(score)
        pred = (score >= threshold) if predicted is None else np.asarray(predicted) == 1
        if pred.shape != score.shape:
            raise ValueError(f"binary estimate: got {pred.size} predictions for "
                             f"{score.size} scores, expected one per score")
        size = self.bin_n.size
        if calibration.n_bins != size:
            raise ValueError(f"binary estimate: got a calibration of {calibration.n_bins} "
                             f"bins, expected the {size} these counts were made for")
        if not np.all(kept):
            score, pred = score[kept], pred[kept]
        bins = calibration.bin_index(score)
        rows = np.bincount(bins, minlength=size)
        positives = np.bincount(bins[pred], minlength=size)
        sum_p: np.ndarray
        sum_var: np.ndarray
        predicted_p: np.ndarray
        predicted_var: np.ndarray
        if calibration.kind == "isotonic":
            # p is constant on a step: per-step counts give every sum, no per-row products
            p = calibration.values
            var = p * (1.0 - p)
            sum_p, sum_var = rows * p, rows * var
            predicted_p, predicted_var = positives * p, positives * var
        else:
            p_row = calibration.probability(score)
            var_row = p_row * (1.0 - p_row)
            sum_p = np.bincount(bins, weights=p_row, minlength=size)
            sum_var = np.bincount(bins, weights=var_row, minlength=size)
            predicted_p = np.bincount(bins[pred], weights=p_row[pred], minlength=size)
            predicted_var = np.bincount(bins[pred], weights=var_row[pred], minlength=size)
        n_predicted = int(positives.sum())
        expected_tp = float(predicted_p.sum())
        self.n += int(score.size)
        self.predicted_positive += n_predicted
        self.sum_p += float(sum_p.sum())
        self.sum_p_predicted += expected_tp
        self.var_all += float(sum_var.sum())
        self.var_predicted += float(predicted_var.sum())
        # right when predicted 1 and positive, or predicted 0 and negative
        expected_tn = (score.size - n_predicted) - (float(sum_p.sum()) - expected_tp)
        self.sum_correct += expected_tp + expected_tn
        self.var_correct += float(sum_var.sum())
        self.bin_n += rows
        self.bin_predicted += positives
        self.bin_p += sum_p
        self.bin_var += sum_var

    def add_multiclass(self, calibrations: Sequence[ScoreCalibration], scores: np.ndarray,
                       predicted: np.ndarray | None = None) -> None:
        """Rows of a multiclass model: ``scores`` rows x classes (class k calibrated by
        ``calibrations[k]``, one-vs-rest), ``predicted`` the class indices (None: the
        highest score). Calibrated rows are renormalized to sum to 1."""
        scores = np.asarray(scores, np.float64)
        if scores.ndim != 2 or scores.shape[1] != len(calibrations):
            raise ValueError(f"multiclass estimate: got scores of shape {scores.shape}, "
                             f"expected rows x {len(calibrations)} classes")
        kept = ~np.isnan(scores).any(axis=1)
        pred = (np.argmax(np.where(np.isnan(scores), -np.inf, scores), axis=1)
                if predicted is None else np.asarray(predicted, np.int64))
        scores, pred = scores[kept], pred[kept]
        if pred.size and (pred.min() < 0 or pred.max() >= len(calibrations)):
            raise ValueError(f"multiclass estimate: got predicted classes "
                             f"{np.unique(pred)[:5].tolist()}, expected 0..{len(calibrations) - 1}")
        probs = np.column_stack([c.probability(scores[:, k])
                                 for k, c in enumerate(calibrations)])
        totals = probs.sum(axis=1, keepdims=True)
        # a row every calibration calls impossible carries no information: uniform
        probs = np.where(totals > 0, probs / np.where(totals > 0, totals, 1.0),
                         1.0 / len(calibrations))
        q = probs[np.arange(pred.size), pred]
        self.n += int(q.size)
        self.sum_correct += float(q.sum())
        self.var_correct += float((q * (1.0 - q)).sum())

    def merge(self, other: ConfidenceCounts) -> ConfidenceCounts:
        if other.bin_p.size != self.bin_p.size:
            raise ValueError(f"confidence counts merge: got {other.bin_p.size} bins, "
                             f"expected {self.bin_p.size}")
        return ConfidenceCounts(
            n=self.n + other.n, sum_correct=self.sum_correct + other.sum_correct,
            var_correct=self.var_correct + other.var_correct,
            predicted_positive=self.predicted_positive + other.predicted_positive,
            sum_p=self.sum_p + other.sum_p,
            sum_p_predicted=self.sum_p_predicted + other.sum_p_predicted,
            var_all=self.var_all + other.var_all,
            var_predicted=self.var_predicted + other.var_predicted,
            bin_n=self.bin_n + other.bin_n,
            bin_predicted=self.bin_predicted + other.bin_predicted,
            bin_p=self.bin_p + other.bin_p, bin_var=self.bin_var + other.bin_var)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "sum_correct": self.sum_correct, "var_correct": self.var_correct,
                "predicted_positive": self.predicted_positive, "sum_p": self.sum_p,
                "sum_p_predicted": self.sum_p_predicted, "var_all": self.var_all,
                "var_predicted": self.var_predicted, "bin_n": self.bin_n.tolist(),
                "bin_predicted": self.bin_predicted.tolist(), "bin_p": self.bin_p.tolist(),
                "bin_var": self.bin_var.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfidenceCounts:
        return cls(n=int(data["n"]), sum_correct=float(data["sum_correct"]),
                   var_correct=float(data["var_correct"]),
                   predicted_positive=int(data["predicted_positive"]),
                   sum_p=float(data["sum_p"]), sum_p_predicted=float(data["sum_p_predicted"]),
                   var_all=float(data["var_all"]), var_predicted=float(data["var_predicted"]),
                   bin_n=np.asarray(data["bin_n"], np.int64),
                   bin_predicted=np.asarray(data["bin_predicted"], np.int64),
                   bin_p=np.asarray(data["bin_p"], np.float64),
                   bin_var=np.asarray(data["bin_var"], np.float64))


_UNDEFINED = Estimate(math.nan, math.nan)


def _ratio(numerator: float, denominator: float, variance: float) -> Estimate:
    if denominator <= 0.0:
        return _UNDEFINED
    return Estimate(numerator / denominator, math.sqrt(max(variance, 0.0)) / denominator)


def _roc_auc(c: ConfidenceCounts) -> Estimate:
    positives, negatives = c.sum_p, c.n - c.sum_p
    # E[P * N] over distinct rows: P * N less each row's pairing with itself
    pairs = positives * negatives - c.var_all
    if pairs <= 1e-12 or c.bin_p.size == 0:
        return _UNDEFINED
    bin_q = c.bin_n - c.bin_p
    negatives_below = np.concatenate([[0.0], np.cumsum(bin_q)[:-1]])
    ordered = float(np.dot(c.bin_p, negatives_below))
    ties = float(np.sum(c.bin_p * bin_q - c.bin_var))
    auc = min(max((ordered + 0.5 * ties) / pairs, 0.0), 1.0)
    # Hanley and McNeil (1982) with the expected class sizes
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    variance = (auc * (1.0 - auc) + (positives - 1.0) * (q1 - auc * auc)
                + (negatives - 1.0) * (q2 - auc * auc)) / (positives * negatives)
    return Estimate(auc, math.sqrt(max(variance, 0.0)))


def _step_variance(calibration: ScoreCalibration | None, counts: ConfidenceCounts) -> np.ndarray:
    """Variance of each bin's calibrated probability (zero for the identity)."""
    if (calibration is None or calibration.kind != "isotonic"
            or calibration.n_bins != counts.bin_n.size):
        return np.zeros(counts.bin_n.size)
    p = calibration.values
    return p * (1.0 - p) / np.maximum(calibration.weights, 1)


def estimate(counts: ConfidenceCounts, metric: str,
             calibration: ScoreCalibration | None = None) -> Estimate:
    """The estimated ``metric`` of the window (NaN where undefined: no rows, no predicted
    positives for precision, no expected positives for recall, one class for roc_auc).
    ``calibration``, the one the counts were made with, adds its own error to the std."""
    c = counts
    if c.n == 0:
        return _UNDEFINED
    v = _step_variance(calibration, c)
    # each metric's derivative with respect to a step's probability, times the step's rows
    predicted, others = c.bin_predicted, c.bin_n - c.bin_predicted
    if metric == "accuracy":
        learnt = float(np.sum((predicted - others) ** 2 * v))
        return _ratio(c.sum_correct, c.n, c.var_correct + learnt)
    if metric == "precision":
        learnt = float(np.sum(predicted ** 2 * v))
        return _ratio(c.sum_p_predicted, c.predicted_positive, c.var_predicted + learnt)
    if metric == "recall":
        recall = c.sum_p_predicted / c.sum_p if c.sum_p > 0 else 0.0
        learnt = float(np.sum((predicted - recall * c.bin_n) ** 2 * v))
        return _ratio(c.sum_p_predicted, c.sum_p,
                      (1.0 - 2.0 * recall) * c.var_predicted + recall * recall * c.var_all
                      + learnt)
    if metric == "f1":
        denominator = c.predicted_positive + c.sum_p
        f1 = 2.0 * c.sum_p_predicted / denominator if denominator > 0 else 0.0
        learnt = float(np.sum((2.0 * predicted - f1 * c.bin_n) ** 2 * v))
        return _ratio(2.0 * c.sum_p_predicted, denominator,
                      (4.0 - 4.0 * f1) * c.var_predicted + f1 * f1 * c.var_all + learnt)
    if metric == "roc_auc":
        return _roc_auc(c)
    raise ValueError(f"estimated metric: got {metric!r}, expected one of "
                     f"{', '.join(BINARY_METRICS)}")
