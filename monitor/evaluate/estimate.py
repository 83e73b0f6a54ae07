"""A window's label-free performance estimate (CBPE): its counts, and its part of the result.

A classifier's baseline built with scores holds a ``detectors.CBPEReference``.
While a window fills, its rows are folded into ``detectors.ConfidenceCounts``
(sums per calibration step, never rows; see ``detectors.estimation``) by
:class:`WindowEstimator`, from the same canonical column arrays the drift
summary takes, so ``driftloop evaluate`` and the stream agree on the same rows.
When it closes, :func:`evaluate_estimate` gives the ``estimated_performance``
part of the window result.

Rows without a score are left out (``n`` counts the rows estimated). Binary:
the prediction is "the positive class or not", as the realized metrics read it;
a window without the prediction column predicts ``score >= 0.5``. Multiclass:
per-class probabilities come from the events' ``scores`` (class -> probability)
or the baseline's class score columns; a row missing one of them, or whose
prediction is not a reference class, is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

import detectors
from monitor.baseline import Baseline
from monitor.config import ModelConfig

__all__ = ["ScoredRow", "WindowEstimator", "evaluate_estimate"]


class ScoredRow(Protocol):
    """What the stream's events give a multiclass estimate: class -> probability."""

    @property
    def scores(self) -> Mapping[str, float] | None: ...


@dataclass(frozen=True)
class WindowEstimator:
    """How one baseline's windows fold their rows into confidence counts."""

    reference: detectors.CBPEReference
    score_column: str | None  # binary: P(positive class)
    prediction_column: str | None
    positive_class: str | None  # binary
    classes: tuple[str, ...] = ()  # multiclass, in the reference's order
    class_columns: tuple[str, ...] = ()  # multiclass files: a probability column per class

    @classmethod
    def of(cls, baseline: Baseline) -> WindowEstimator | None:
        """The estimator of ``baseline``; None without a CBPE reference (regression, no
        scores, or a v1 baseline)."""
        reference, performance, roles = baseline.cbpe, baseline.performance, baseline.columns
        if reference is None or performance is None:
            return None
        classes = performance.classes if reference.task == "multiclass" else ()
        return cls(reference, roles.score, roles.prediction, performance.positive_class,
                   classes, tuple(roles.class_scores[c] for c in classes
                                  if c in roles.class_scores))

    @property
    def multiclass(self) -> bool:
        return self.reference.task == "multiclass"

    def empty(self) -> detectors.ConfidenceCounts:
        return self.reference.empty_counts()

    def fold(self, counts: detectors.ConfidenceCounts, arrays: Mapping[str, np.ndarray],
             scores: np.ndarray | None = None) -> None:
        """Fold a chunk: ``arrays`` are the window's column arrays (the prediction and, for
        a binary model, the score); ``scores`` the multiclass rows x classes matrix."""
        predicted = arrays.get(self.prediction_column) if self.prediction_column else None
        if not self.multiclass:
            score = arrays.get(self.score_column) if self.score_column else None
            if score is not None:
                positive = None if predicted is None else \
                    (predicted == self.positive_class).astype(np.int64)
                self.reference.add(counts, score=score, predicted=positive)
            return
        if scores is None or predicted is None:
            return
        index = {c: i for i, c in enumerate(self.classes)}
        codes = np.fromiter((index.get(v, -1) for v in predicted), np.int64, len(predicted))
        known = codes >= 0
        self.reference.add(counts, scores=scores[known], predicted=codes[known])

    def fold_rows(self, counts: detectors.ConfidenceCounts, arrays: Mapping[str, np.ndarray],
                  rows: Sequence[ScoredRow]) -> None:
        """``fold`` for a chunk of stream events: their ``scores`` make the multiclass
        matrix (a class an event leaves out is missing: the row is left out)."""
        self.fold_class_scores(counts, arrays, [r.scores for r in rows] if self.multiclass
                               else [])

    def fold_class_scores(self, counts: detectors.ConfidenceCounts,
                          arrays: Mapping[str, np.ndarray],
                          class_scores: Sequence[Mapping[str, float] | None]) -> None:
        """``fold_rows`` given the rows' ``scores`` only (a column of a batch)."""
        scores = None
        if self.multiclass:
            scores = np.array([[np.nan if s is None else s.get(c, np.nan)
                                for c in self.classes] for s in class_scores],
                              dtype=np.float64)
            scores = scores.reshape(len(class_scores), len(self.classes))
        self.fold(counts, arrays, scores)


def evaluate_estimate(baseline: Baseline, model_config: ModelConfig,
                      counts: detectors.ConfidenceCounts | None) -> dict[str, Any] | None:
    """The ``estimated_performance`` part of a window result; None without a CBPE
    reference or counts. The metric is performance.metric where it can be estimated,
    else accuracy; performance.max_drop and drift.min_rows apply as to realized values."""
    reference = baseline.cbpe
    if reference is None or counts is None or not reference.metrics:
        return None
    metric: str = model_config.performance.metric
    if metric not in reference.baseline:
        metric = "accuracy" if "accuracy" in reference.baseline else reference.metrics[0]
    result = detectors.estimate_performance(
        reference, counts, metric, max_drop=model_config.performance.max_drop,
        min_rows=model_config.drift.min_rows)
    return {"metric": result.metric, "value": result.value, "lower": result.lower,
            "upper": result.upper, "baseline": result.baseline,
            "threshold": result.threshold, "degraded": result.degraded,
            "status": result.status, "n": result.n}
