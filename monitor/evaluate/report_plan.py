"""What an Evidently drift report is asked, taken from the window result it explains.

driftloop's method names map one to one to Evidently's stattests (``METHODS``);
Evidently has no L-infinity distance, so driftloop registers its own under the
name ``LINF`` (see :mod:`monitor.evaluate.report`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.baseline import Baseline

__all__ = [
    "LINF",
    "METHODS",
    "ColumnVerdict",
    "ReportPlan",
    "drifted",
    "report_plan",
    "role_columns",
]

LINF = "driftloop-linf"
# driftloop method -> Evidently stattest name
METHODS: Mapping[str, str] = {
    "wasserstein": "wasserstein", "ks": "ks", "psi": "psi", "jensenshannon": "jensenshannon",
    "chisquare": "chisquare", "z": "z", "linf": LINF,
}


def drifted(result: Mapping[str, Any]) -> bool:
    """A window gets a report when any feature drifted (dataset drift or not)."""
    return bool(result.get("dataset_drift")) or any(
        f.get("drift") for f in (result.get("features") or {}).values())


@dataclass(frozen=True)
class ColumnVerdict:
    """One column as Evidently judged it."""

    method: str
    threshold: float
    score: float | None
    drift: bool


@dataclass(frozen=True)
class ReportPlan:
    """What Evidently is asked, taken from the window result.

    ``features`` are tested as the dataset (their share decides dataset drift);
    ``roles`` (prediction, score) are tested on their own; ``untested`` says why a
    column of the window is left out (driftloop found it inconclusive, or the rows
    lack it); ``numeric`` are the tested columns the baseline profiles as numbers.
    """

    features: tuple[str, ...]
    roles: tuple[str, ...]
    methods: dict[str, str]
    thresholds: dict[str, float]
    share: float
    untested: dict[str, str]
    numeric: tuple[str, ...] = ()


def role_columns(baseline: Baseline) -> dict[str, str]:
    """result key -> column name of the prediction and score roles the baseline profiles."""
    roles = {}
    if baseline.columns.prediction and baseline.prediction is not None:
        roles["prediction_drift"] = baseline.columns.prediction
    if baseline.columns.score and baseline.score is not None:
        roles["score_drift"] = baseline.columns.score
    return roles


def report_plan(baseline: Baseline, result: Mapping[str, Any],
                columns: list[str]) -> ReportPlan:
    """Per-column methods and thresholds of the window ``result``, for the ``columns``
    both frames hold."""
    methods: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    untested: dict[str, str] = {}
    features: list[str] = []
    available = set(columns)

    def plan(column: str, score: Mapping[str, Any]) -> bool:
        if score.get("status") == "inconclusive" or score.get("threshold") is None:
            untested[column] = "inconclusive in the window (too few values)"
            return False
        if column not in available:
            untested[column] = "not in the window's rows"
            return False
        methods[column] = METHODS[str(score["method"])]
        thresholds[column] = float(score["threshold"])
        return True

    for name, score in (result.get("features") or {}).items():
        if plan(name, score):
            features.append(name)
    roles = [column for key, column in role_columns(baseline).items()
             if result.get(key) and plan(column, result[key])]
    share = result.get("drift_share_threshold")
    profiles = baseline.summary_profiles()
    numeric = tuple(c for c in methods if profiles[c].kind == "numeric")
    return ReportPlan(tuple(features), tuple(roles), methods, thresholds,
                      0.5 if share is None else float(share), untested, numeric)


