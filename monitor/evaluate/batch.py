"""Evaluate a file against a baseline in tumbling row windows (``driftloop evaluate``).

The file is cut into windows of ``window_rows`` rows (the last one may be
shorter); each window fills a :class:`detectors.WindowSummary` (and, for a
classifier with scores, the confidence counts of the label-free estimate) and goes
through :func:`monitor.evaluation.evaluate_window`, the call the streaming service makes.
Labels come from the data file's target column or from a second file joined on
an id column.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

import detectors
from monitor.baseline import Baseline
from monitor.config import ModelConfig
from monitor.errors import InputError
from monitor.evaluate.estimate import WindowEstimator
from monitor.evaluate.window import LabeledRows, WindowMeta, evaluate_window
from monitor.tables import categorical_array, numeric_array, read_table, require_columns

__all__ = [
    "BadValues",
    "WindowOutcome",
    "evaluate_frame",
    "read_labels",
    "window_columns",
]

BadValues = Literal["error", "count"]
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class WindowOutcome:
    result: dict[str, Any]
    rows: pd.DataFrame  # the window's slice of the file (for HTML reports)


def read_labels(path: str | Path, baseline: Baseline, id_column: str) -> pd.Series:
    """id (canonical str) -> label, from a file with the id column and the baseline's
    target column (or ``label``); the last label of a repeated id wins."""
    frame = read_table(path, "labels")
    target = baseline.columns.target
    label_column = target if target is not None and target in frame.columns else "label"
    require_columns(frame, [id_column], f"labels file {path}", "id column")
    if label_column not in frame.columns:
        expected = f"{baseline.columns.target!r} or 'label'" if baseline.columns.target \
            else "'label'"
        raise InputError(f"labels file {path}: no label column; expected {expected}")
    ids = categorical_array(frame[id_column])
    values = _label_values(baseline, frame[label_column], f"labels file {path}", label_column)
    labels = pd.Series(values, index=ids)
    labels = labels[pd.notna(labels.index) & pd.notna(labels.to_numpy())]
    return labels[~labels.index.duplicated(keep="last")]


def _label_values(baseline: Baseline, series: pd.Series, source: str, column: str) -> np.ndarray:
    if baseline.task == "regression":
        values, bad, first = numeric_array(series, source)
        if bad:
            raise InputError(f"{source}: column {column!r} {first} is not a number")
        return values
    return categorical_array(series)


def window_columns(
    baseline: Baseline, rows: pd.DataFrame, source: str, first_row: int = 0,
    on_bad_value: BadValues = "error",
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Detector arrays for every profiled column present in ``rows`` and the count of
    non-numeric cells per numeric column (an InputError on the first with "error")."""
    arrays: dict[str, np.ndarray] = {}
    violations: dict[str, int] = {}
    for name, profile in baseline.summary_profiles().items():
        if name not in rows.columns:
            continue
        if profile.kind == "numeric":
            values, n_bad, first = numeric_array(rows[name], source)
            if n_bad and on_bad_value == "error":
                position, _, shown = (first or "row 1: ?").partition(": ")
                row = first_row + int(position.split()[1])
                raise InputError(
                    f"{source}: column {name!r} row {row}: {shown} is not a number "
                    "(the baseline profiles it as numeric)")
            if n_bad:
                violations[name] = n_bad
            arrays[name] = values
        else:
            booleans = set(profile.categories) <= {"true", "false"} and profile.categories != []
            arrays[name] = categorical_array(rows[name], booleans=booleans)
    return arrays, violations


def _time_range(baseline: Baseline, rows: pd.DataFrame) -> tuple[str | None, str | None]:
    column = baseline.columns.timestamp
    if column is None or column not in rows.columns:
        return None, None
    raw = rows[column]
    if pd.api.types.is_numeric_dtype(raw):
        times = pd.to_datetime(raw, unit="ms", utc=True, errors="coerce")
    else:
        times = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    times = times.dropna()
    if times.empty:
        return None, None
    return times.min().strftime(_TIME_FORMAT), times.max().strftime(_TIME_FORMAT)


def _confidence(estimator: WindowEstimator | None, rows: pd.DataFrame,
                arrays: dict[str, np.ndarray], source: str) -> detectors.ConfidenceCounts | None:
    """The window's CBPE counts; a multiclass file needs every class score column."""
    if estimator is None:
        return None
    counts = estimator.empty()
    scores = None
    columns = estimator.class_columns
    if estimator.multiclass and columns and all(c in rows.columns for c in columns):
        scores = np.column_stack([numeric_array(rows[c], source)[0] for c in columns])
    estimator.fold(counts, arrays, scores)
    return counts


def _labeled_rows(baseline: Baseline, rows: pd.DataFrame, labels: pd.Series | None,
                  id_column: str | None, source: str) -> LabeledRows | None:
    roles = baseline.columns
    if roles.prediction is None or roles.prediction not in rows.columns:
        return None
    if labels is not None and id_column is not None:
        ids = categorical_array(rows[id_column])
        y_true = labels.reindex(ids).to_numpy()
    elif roles.target is not None and roles.target in rows.columns:
        y_true = _label_values(baseline, rows[roles.target], source, roles.target)
    else:
        return None
    y_pred = _label_values(baseline, rows[roles.prediction], source, roles.prediction)
    known = pd.notna(y_true) & pd.notna(y_pred)
    score = None
    if roles.score is not None and roles.score in rows.columns:
        values, _, _ = numeric_array(rows[roles.score], source)
        known &= ~np.isnan(values)
        score = values[known]
    if not known.any():
        return None
    true_values = y_true[known]
    if baseline.task == "regression":
        true_values = true_values.astype(np.float64)
    return LabeledRows(y_true=true_values, y_pred=y_pred[known], score=score)


def evaluate_frame(
    baseline: Baseline,
    frame: pd.DataFrame,
    model_config: ModelConfig,
    *,
    window_rows: int,
    source: str = "data",
    version: str = "1",
    labels: pd.Series | None = None,
    id_column: str | None = None,
    on_bad_value: BadValues = "error",
) -> Iterator[WindowOutcome]:
    """Yield one outcome per window of ``window_rows`` rows, windows numbered from 1."""
    if window_rows <= 0:
        raise InputError(f"--window-rows: got {window_rows}, expected a positive integer")
    require_columns(frame, baseline.feature_order, source, "feature column")
    if labels is not None:
        if id_column is None:
            raise InputError(f"{source}: labels need an id column (--id, or build the "
                             "baseline with --id)")
        require_columns(frame, [id_column], source, "id column")
        prediction = baseline.columns.prediction
        if prediction is None:
            raise InputError(f"{source}: labels need predictions, and the baseline has no "
                             "prediction column (build it with --prediction)")
        require_columns(frame, [prediction], source, "prediction column")
    # a file without the prediction (or score) column is evaluated on its features only:
    # the role's drift is then null rather than a "missing column" quality violation
    profiles = {name: profile for name, profile in baseline.summary_profiles().items()
                if name in baseline.features or name in frame.columns}
    expected = set(baseline.summary_profiles()) | baseline.columns.not_features
    if id_column is not None:
        expected.add(id_column)
    extra_columns = [c for c in frame.columns if c not in expected]
    estimator = WindowEstimator.of(baseline)
    for window, start in enumerate(range(0, len(frame), window_rows), start=1):
        rows = frame.iloc[start:start + window_rows]
        summary = detectors.WindowSummary.empty(profiles)
        arrays, violations = window_columns(baseline, rows, source, start, on_bad_value)
        summary.add(arrays, len(rows))
        for name, count in violations.items():
            summary.add_type_violations(name, count)
        summary.add_extra_columns(extra_columns, len(rows))
        first, last = _time_range(baseline, rows)
        meta = WindowMeta(model=baseline.model, version=version, window=window,
                          first_offset=start, start=first, end=last)
        labeled = _labeled_rows(baseline, rows, labels, id_column, source)
        confidence = _confidence(estimator, rows, arrays, source)
        yield WindowOutcome(evaluate_window(baseline, summary, model_config, meta, labeled,
                                            confidence=confidence), rows)
