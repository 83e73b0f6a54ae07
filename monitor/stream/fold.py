"""Folding a window's buffered rows into its summary: columns, counts over the
baseline's bins, type violations, extra keys and the CBPE sums, a chunk at a time.

Apart from :mod:`monitor.stream.windows` because it changes with the columnar work
(:mod:`monitor.stream.columns`, the detectors' summaries, CBPE) and reads nothing of a
stream but its settings; the stream decides when a window folds, this what folding does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import detectors
from monitor.evaluate import WindowEstimator
from monitor.ingest.batch import PredictionBatch
from monitor.stream.columns import ColumnChunk, batch_columns, to_columns
from monitor.stream.window_state import OpenWindow

__all__ = ["fold"]

ProfilesOf = Callable[[str], Mapping[str, detectors.FeatureProfile]]
EstimatorFor = Callable[[str], WindowEstimator | None]


def fold(window: OpenWindow, profiles_of: ProfilesOf, estimator_for: EstimatorFor, *,
         prediction_column: str | None, score_column: str | None) -> None:
    """The window's buffered rows (events or batch slices) into its summary, then none
    buffered; the first and last event times widen to theirs."""
    if window.batches:
        _fold_batch(window, profiles_of, estimator_for,
                    prediction_column=prediction_column, score_column=score_column)
        return
    rows = window.rows
    if not rows:
        return
    stamps = [e.timestamp_ms for e in rows]
    _widen(window, min(stamps), max(stamps))
    extra: dict[str, list[Any]] = {}
    if prediction_column:
        extra[prediction_column] = [e.prediction for e in rows]
    if score_column:
        extra[score_column] = [e.score for e in rows]
    chunk = to_columns(profiles_of(window.baseline), [e.features for e in rows], extra)
    _add_chunk(window, chunk)
    estimator = None if window.confidence is None else estimator_for(window.baseline)
    if estimator is not None and window.confidence is not None:  # CBPE
        estimator.fold_rows(window.confidence, chunk.arrays, rows)
    window.rows = []


def _fold_batch(window: OpenWindow, profiles_of: ProfilesOf, estimator_for: EstimatorFor, *,
                prediction_column: str | None, score_column: str | None) -> None:
    batch = PredictionBatch.concat(window.batches)
    window.batches, window.batched = [], 0
    stamps = batch.timestamps_ms
    _widen(window, int(stamps.min()), int(stamps.max()))
    extra: dict[str, list[Any]] = {}
    if prediction_column:
        extra[prediction_column] = batch.predictions
    if score_column:
        extra[score_column] = batch.scores
    profiles = profiles_of(window.baseline)
    chunk: ColumnChunk | None = batch_columns(profiles, batch, extra)
    if chunk is None:  # not the features of the window's baseline: by rows
        chunk = to_columns(profiles, [e.features for e in batch.events()], extra)
    _add_chunk(window, chunk)
    estimator = None if window.confidence is None else estimator_for(window.baseline)
    if estimator is not None and window.confidence is not None:  # CBPE
        estimator.fold_class_scores(window.confidence, chunk.arrays, batch.class_scores)


def _widen(window: OpenWindow, first: int, last: int) -> None:
    """The window's event-time span takes in ``first`` .. ``last``."""
    if window.start_ms is None or first < window.start_ms:
        window.start_ms = first
    if window.end_ms is None or last > window.end_ms:
        window.end_ms = last


def _add_chunk(window: OpenWindow, chunk: ColumnChunk) -> None:
    window.summary.add(chunk.arrays, chunk.n_rows)
    for name, count in chunk.type_violations.items():
        window.summary.add_type_violations(name, count)
    window.add_extra_keys(chunk.extra_keys)
