"""The CBPE reference of a classifier, fitted at baseline build (the label-free estimate).

A window's performance is estimated from the model's scores alone
(``detectors.cbpe``), so the reference must hold the scores' calibration on
labeled rows: binary models need the target, the prediction and the score (the
probability of the positive class); multiclass models the target, the
prediction and one probability column per reference class
(``ColumnRoles.class_scores``). Rows without a label, a prediction or a score are
left out. Labels and predictions are encoded as the realized metrics encode them
(``encode_labels``: 1 = the positive class; class codes in the reference's order),
so the estimate and the realized value of a window are the same metric.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

import detectors
from monitor.baseline.performance import PerformanceReference, encode_labels
from monitor.errors import InputError
from monitor.tables import categorical_array, numeric_array

__all__ = ["reference_cbpe"]


def _scores(frame: pd.DataFrame, columns: list[str], source: str) -> np.ndarray:
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for i, column in enumerate(columns):
        values, bad, first = numeric_array(frame[column], source)
        if bad:
            raise InputError(f"{source}: score column {column!r} {first} is not a number")
        out[:, i] = values
    return out


def reference_cbpe(performance: PerformanceReference | None, frame: pd.DataFrame,
                   target: str | None, prediction: str | None, score: str | None,
                   class_scores: Mapping[str, str], *, seed: int,
                   source: str) -> detectors.CBPEReference | None:
    """The CBPE reference, or None for a regression, without labels, predictions or scores,
    or when no row has all of them."""
    if performance is None or target is None or prediction is None:
        return None
    if performance.task == "binary" and score is not None:
        columns = [score]
    elif performance.task == "multiclass" and class_scores:
        columns = [class_scores[c] for c in performance.classes]
    else:
        return None
    matrix = _scores(frame, columns, source)
    y_true, y_pred = categorical_array(frame[target]), categorical_array(frame[prediction])
    known = (pd.notna(y_true) & pd.notna(y_pred) & ~np.isnan(matrix).any(axis=1))
    if not known.any():
        return None
    true_codes, pred_codes = encode_labels(performance, y_true[known], y_pred[known])
    if performance.task == "binary":
        return detectors.fit_cbpe(true_codes, score=matrix[known, 0], predicted=pred_codes,
                                  seed=seed)
    return detectors.fit_cbpe(true_codes, scores=matrix[known], predicted=pred_codes, seed=seed)
