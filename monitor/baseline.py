"""The training baseline: a versioned JSON document (design section 4).

Built once from the training or validation frame, it holds everything a window
is compared with, so evaluation never needs the raw training data: the task,
the column roles, a profile per feature, the prediction and score profiles,
reference performance and thresholds calibrated on the reference.

``build_baseline`` works on a pandas frame (build time only); reading it back
(``Baseline.from_dict``, ``load_baseline``) needs no pandas. MLflow logging and
``runs:/`` / ``models:/`` loading live in :mod:`monitor.baseline_io`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

import detectors
from monitor.baseline_perf import (
    PerformanceReference,
    classification_labels,
    infer_task,
    reference_performance,
)
from monitor.errors import BaselineError, InputError
from monitor.tables import FeatureKind, categorical_array, columns_for, infer_kinds, numeric_array

__all__ = [
    "PERFORMANCE_WINDOW_SIZES",
    "SCHEMA",
    "Baseline",
    "ColumnRoles",
    "Task",
    "build_baseline",
    "load_baseline",
    "log_baseline",
    "reference_sample",
]

SCHEMA = "driftloop/baseline/v1"
Task = Literal["binary", "multiclass", "regression"]
# window sizes the performance spread (max_drop: auto) is measured at
PERFORMANCE_WINDOW_SIZES = (100, 300, 1_000, 3_000, 10_000, 30_000, 100_000)


@dataclass(frozen=True)
class ColumnRoles:
    """Which columns of the frame play which role; ``features`` keep the file order."""

    features: tuple[str, ...]
    target: str | None = None
    prediction: str | None = None
    score: str | None = None
    id: str | None = None
    timestamp: str | None = None
    excluded: tuple[str, ...] = ()  # --exclude: in the files, deliberately not features

    @property
    def not_features(self) -> set[str]:
        """Columns a window may hold that are expected and not features."""
        roles = (self.target, self.prediction, self.score, self.id, self.timestamp)
        return {c for c in roles if c is not None} | set(self.excluded)

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "target": self.target,
                "prediction": self.prediction, "score": self.score, "id": self.id,
                "timestamp": self.timestamp, "excluded": list(self.excluded)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnRoles:
        return cls(features=tuple(str(f) for f in data["features"]), target=data.get("target"),
                   prediction=data.get("prediction"), score=data.get("score"),
                   id=data.get("id"), timestamp=data.get("timestamp"),
                   excluded=tuple(str(c) for c in data.get("excluded") or ()))


@dataclass(frozen=True, eq=False)
class Baseline:
    """A model's reference, as written to ``baseline.json``.

    Two baselines are equal when their JSON documents are equal (profiles hold
    numpy arrays, which do not compare as values).
    """

    model: str
    task: Task | None
    columns: ColumnRoles
    features: dict[str, detectors.FeatureProfile]
    prediction: detectors.FeatureProfile | None = None
    score: detectors.FeatureProfile | None = None
    performance: PerformanceReference | None = None
    calibration: detectors.Calibration | None = None
    n_rows: int = 0
    created_at: str = ""
    schema: str = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_order(self) -> tuple[str, ...]:
        return self.columns.features

    def summary_profiles(self) -> dict[str, detectors.FeatureProfile]:
        """Profiles a window summary tracks: the features, then the prediction and score
        columns under their own names (roles never share a name with a feature)."""
        profiles = dict(self.features)
        if self.prediction is not None and self.columns.prediction:
            profiles[self.columns.prediction] = self.prediction
        if self.score is not None and self.columns.score:
            profiles[self.columns.score] = self.score
        return profiles

    def empty_summary(self) -> detectors.WindowSummary:
        return detectors.WindowSummary.empty(self.summary_profiles())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "model": self.model,
            "task": self.task,
            "created_at": self.created_at,
            "n_rows": self.n_rows,
            "columns": self.columns.to_dict(),
            "features": {name: p.to_dict() for name, p in self.features.items()},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "score": None if self.score is None else self.score.to_dict(),
            "performance": None if self.performance is None else self.performance.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "baseline") -> Baseline:
        """Raises BaselineError naming ``source`` for anything that is not a v1 baseline."""
        if not isinstance(data, Mapping):
            raise BaselineError(
                f"{source}: got a JSON {type(data).__name__}, expected a baseline object")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise BaselineError(f"{source}: schema {schema!r} is not {SCHEMA!r}; "
                                "rebuild it with `driftloop baseline build`")
        try:
            columns = ColumnRoles.from_dict(data["columns"])
            features = {str(k): detectors.profile_from_dict(v)
                        for k, v in data["features"].items()}
            missing = [f for f in columns.features if f not in features]
            if missing:
                raise ValueError(f"features {missing} have no profile")
            return cls(
                model=str(data["model"]),
                task=data.get("task"),
                columns=columns,
                features=features,
                prediction=_profile_or_none(data.get("prediction")),
                score=_profile_or_none(data.get("score")),
                performance=None if data.get("performance") is None
                else PerformanceReference.from_dict(data["performance"]),
                calibration=None if data.get("calibration") is None
                else detectors.Calibration.from_dict(data["calibration"]),
                n_rows=int(data.get("n_rows", 0)),
                created_at=str(data.get("created_at", "")),
                extra=dict(data.get("extra") or {}),
            )
        except BaselineError:
            raise
        except KeyError as exc:
            raise BaselineError(f"{source}: malformed baseline, key {exc} is missing") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise BaselineError(f"{source}: malformed baseline ({exc})") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        """Write the JSON document; raises InputError naming ``path`` when it cannot."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.to_json() + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"baseline {path}: cannot be written "
                             f"({exc.strerror or exc})") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> Baseline:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BaselineError(f"baseline {path}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BaselineError(f"baseline {path}: cannot be read ({exc})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BaselineError(f"baseline {path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=f"baseline {path}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Baseline):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.to_json())


def _profile_or_none(data: Any) -> detectors.FeatureProfile | None:
    return None if data is None else detectors.profile_from_dict(data)


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
    performance_window_sizes: Sequence[int] = PERFORMANCE_WINDOW_SIZES,
    seed: int = 0,
    source: str = "data",
) -> Baseline:
    """Profile ``frame``: features are every column that is not a role or excluded.

    Raises InputError naming ``source`` for a missing column or unusable values.
    """
    roles = {"target": target, "prediction": prediction, "score": score,
             "id": id_column, "timestamp": timestamp}
    for role, column in roles.items():
        if column is not None and column not in frame.columns:
            raise InputError(f"{source}: {role} column {column!r} not found; "
                             f"the file has columns: {', '.join(map(str, frame.columns[:12]))}")
    if len(frame) == 0:
        raise InputError(f"{source}: no rows, expected at least one")
    not_features = [c for c in roles.values() if c is not None] + list(exclude)
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
                            excluded=tuple(exclude)),
        features=features,
        prediction=prediction_profile,
        score=score_profile,
        performance=performance,
        calibration=calibration,
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


def load_baseline(uri: str | Path, model: str | None = None,
                  tracking_uri: str | None = None) -> Baseline:
    """See :func:`monitor.baseline_io.load_baseline` (paths, ``runs:/``, ``models:/``)."""
    from monitor.baseline_io import load_baseline as load

    return load(uri, model, tracking_uri)


def log_baseline(baseline: Baseline, run_id: str, sample: pd.DataFrame | None = None,
                 tracking_uri: str | None = None) -> str:
    """See :func:`monitor.baseline_io.log_baseline`; returns the artifact's ``runs:/`` URI."""
    from monitor.baseline_io import log_baseline as log

    return log(baseline, run_id, sample, tracking_uri)
