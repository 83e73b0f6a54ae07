"""The training baseline: a versioned JSON document (design section 4).

Built once from the training or validation frame, it holds everything a window
is compared with, so evaluation never needs the raw training data: the task,
the column roles, a profile per feature, the prediction and score profiles,
reference performance and thresholds calibrated on the reference.

Building it from a pandas frame is :mod:`monitor.baseline.build` (build time
only); reading it back (``Baseline.from_dict``) needs no pandas. MLflow logging
and ``runs:/`` / ``models:/`` loading live in :mod:`monitor.baseline.loader`.

Versions: ``driftloop/baseline/v2`` added ``cbpe`` (the classifier's CBPE
reference, for the label-free performance estimate) and ``columns.class_scores``.
A ``v1`` document is still read, as a v2 baseline without them: it has no
estimate. Baselines are written as v2.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import detectors
from monitor.baseline.performance import (
    PerformanceReference,
)
from monitor.errors import BaselineError, InputError

__all__ = [
    "PERFORMANCE_WINDOW_SIZES",
    "SCHEMA",
    "SCHEMA_V1",
    "Baseline",
    "ColumnRoles",
    "Task",
]

SCHEMA = "driftloop/baseline/v2"
SCHEMA_V1 = "driftloop/baseline/v1"  # read, never written: no cbpe, no class_scores
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
    # multiclass: class -> the column of its probability (--scores-prefix), in the
    # reference's class order
    class_scores: dict[str, str] = field(default_factory=dict)

    @property
    def not_features(self) -> set[str]:
        """Columns a window may hold that are expected and not features."""
        roles = (self.target, self.prediction, self.score, self.id, self.timestamp)
        return ({c for c in roles if c is not None} | set(self.excluded)
                | set(self.class_scores.values()))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "target": self.target,
                "prediction": self.prediction, "score": self.score, "id": self.id,
                "timestamp": self.timestamp, "excluded": list(self.excluded),
                "class_scores": dict(self.class_scores)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnRoles:
        return cls(features=tuple(str(f) for f in data["features"]), target=data.get("target"),
                   prediction=data.get("prediction"), score=data.get("score"),
                   id=data.get("id"), timestamp=data.get("timestamp"),
                   excluded=tuple(str(c) for c in data.get("excluded") or ()),
                   class_scores={str(k): str(v)
                                 for k, v in (data.get("class_scores") or {}).items()})


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
    # the label-free performance estimate's reference (classifiers with scores)
    cbpe: detectors.CBPEReference | None = None
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
            "cbpe": None if self.cbpe is None else self.cbpe.to_dict(),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "baseline") -> Baseline:
        """Raises BaselineError naming ``source`` for anything that is not a v2 (or v1)
        baseline; a v1 document becomes a v2 baseline without a CBPE reference."""
        if not isinstance(data, Mapping):
            raise BaselineError(
                f"{source}: got a JSON {type(data).__name__}, expected a baseline object")
        schema = data.get("schema")
        if schema not in (SCHEMA, SCHEMA_V1):
            raise BaselineError(f"{source}: schema {schema!r} is not {SCHEMA!r} (nor the "
                                f"older {SCHEMA_V1!r}); rebuild it with "
                                "`driftloop baseline build`")
        cbpe = data.get("cbpe") if schema == SCHEMA else None
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
                cbpe=None if cbpe is None else detectors.CBPEReference.from_dict(cbpe),
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
