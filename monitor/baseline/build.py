"""Building a baseline from the training (or validation) frame, at training time.

``build_baseline`` infers the task and the feature kinds, profiles every
feature, the prediction and the score with :mod:`detectors`, measures the
reference performance, fits the classifier's CBPE reference (the label-free
estimate) and calibrates the thresholds; ``reference_sample`` keeps a bounded
seeded sample of rows for HTML reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

import numpy as np
import pandas as pd

import detectors
from monitor.baseline.cbpe import reference_cbpe
from monitor.baseline.model import PERFORMANCE_WINDOW_SIZES, Baseline, ColumnRoles, Task
from monitor.baseline.performance import (
    classification_labels,
    infer_task,
    reference_performance,
)
from monitor.errors import InputError
from monitor.tables import FeatureKind, categorical_array, columns_for, infer_kinds, numeric_array

__all__ = ["build_baseline", "reference_sample"]


def _prediction_kind(task: str | None, series: pd.Series) -> FeatureKind:
    if task in ("binary", "multiclass"):
        return "categorical"
    return "numeric" if pd.api.types.is_numeric_dtype(series) else "categorical"


def build_baseline(
    frame: pd.DataFrame,
    model: str,
    *,
    target: str | None = None,
    prediction: str | None = None,
    score: str | None = None,
    id_column: str | None = None,
    timestamp: str | None = None,
    categorical: Sequence[str] = (),
    exclude: Sequence[str] = (),
    class_scores: Mapping[str, str] | None = None,
    performance_window_sizes: Sequence[int] = PERFORMANCE_WINDOW_SIZES,
    seed: int = 0,
    source: str = "data",
) -> Baseline:
    """Profile ``frame``: features are every column that is not a role or excluded.

    ``class_scores`` (multiclass): class -> the column of its probability, for the
    label-free performance estimate. Raises InputError naming ``source`` for a missing
    column or unusable values.
    """
    class_scores = dict(class_scores or {})
    roles = {"target": target, "prediction": prediction, "score": score,
             "id": id_column, "timestamp": timestamp}
    named = [*roles.items(), *((f"class {c!r} score", col) for c, col in class_scores.items())]
    for role, column in named:
        if column is not None and column not in frame.columns:
            raise InputError(f"{source}: {role} column {column!r} not found; "
                             f"the file has columns: {', '.join(map(str, frame.columns[:12]))}")
    if len(frame) == 0:
        raise InputError(f"{source}: no rows, expected at least one")
    not_features = ([c for c in roles.values() if c is not None] + list(exclude)
                    + list(class_scores.values()))
    kinds = infer_kinds(frame, exclude=not_features, categorical=categorical, source=source)
    if not kinds:
        raise InputError(f"{source}: no feature columns left after excluding "
                         f"{', '.join(not_features)}")
    arrays, violations = columns_for(frame, kinds, source)
    for name in violations:
        # a column with non-numbers in it is a categorical by inference, so only a
        # user-forced numeric column could land here; kinds never force numeric
        raise InputError(f"{source}: column {name!r} mixes numbers and text")
    features: dict[str, detectors.FeatureProfile] = {}
    for name, kind in kinds.items():
        try:
            features[name] = detectors.profile_column(arrays[name], kind)
        except ValueError as exc:
            raise InputError(f"{source}: column {name!r}: {exc}") from None

    task = infer_task(frame, target, prediction, source)
    prediction_profile = score_profile = None
    if prediction is not None:
        kind = _prediction_kind(task, frame[prediction])
        values = _role_array(frame[prediction], kind, source, prediction)
        prediction_profile = detectors.profile_column(values, kind)
    if score is not None:
        values = _role_array(frame[score], "numeric", source, score)
        score_profile = detectors.profile_column(values, "numeric")

    performance = None
    if task is not None and target is not None and prediction is not None:
        labels = classification_labels(task, frame[target], frame[prediction])
        performance = reference_performance(
            task, frame, target, prediction, score, labels, performance_window_sizes, seed,
            source)

    if class_scores:
        classes = performance.classes if performance is not None else ()
        if task != "multiclass" or set(classes) != set(class_scores):
            raise InputError(
                f"{source}: class score columns are for multiclass models with a target and a "
                f"prediction, one per class; got classes {sorted(class_scores)}, expected "
                f"{list(classes) if task == 'multiclass' else 'a multiclass task'}")
        class_scores = {c: class_scores[c] for c in classes}  # the reference's class order
    cbpe = reference_cbpe(performance, frame, target, prediction, score, class_scores,
                          seed=seed, source=source)

    profiles = dict(features)
    if prediction is not None and prediction_profile is not None:
        profiles[prediction] = prediction_profile
    if score is not None and score_profile is not None:
        profiles[score] = score_profile
    # every distance method a user may configure is calibrated, so changing the method
    # in the config needs no rebuild; the window size picks the interpolated bound
    calibration = detectors.calibrate(profiles, seed=seed)
    return Baseline(
        model=model,
        task=cast(Task | None, task),
        columns=ColumnRoles(features=tuple(kinds), target=target, prediction=prediction,
                            score=score, id=id_column, timestamp=timestamp,
                            excluded=tuple(exclude), class_scores=class_scores),
        features=features,
        prediction=prediction_profile,
        score=score_profile,
        performance=performance,
        calibration=calibration,
        cbpe=cbpe,
        n_rows=len(frame),
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def _role_array(series: pd.Series, kind: FeatureKind, source: str, name: str) -> np.ndarray:
    if kind == "categorical":
        return categorical_array(series)
    values, n_bad, first = numeric_array(series, source)
    if n_bad:
        raise InputError(f"{source}: column {name!r} {first} is not a number")
    return values


def reference_sample(frame: pd.DataFrame, baseline: Baseline, rows: int,
                     seed: int = 0) -> pd.DataFrame:
    """A bounded, seeded random sample of the baseline's columns (for HTML reports)."""
    roles = baseline.columns
    keep = [*roles.features] + [c for c in (roles.prediction, roles.score, roles.target)
                                 if c is not None]
    sample = frame[keep]
    if len(sample) > rows:
        sample = sample.sample(n=rows, random_state=seed)
    return sample.reset_index(drop=True)
