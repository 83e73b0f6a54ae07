"""Evidently HTML drift reports for drifted windows (``driftloop evaluate --report``).

The report is for people reading a drifted window; the verdicts of record are
driftloop's own (the window result). Evidently needs raw reference rows, which a
baseline does not hold: the bounded reference sample saved beside it
(``--sample-rows`` at build time) or a file given with ``--reference`` serves.
Evidently takes seconds to import, so it is imported only when a report is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from monitor.baseline import Baseline
from monitor.errors import InputError
from monitor.tables import categorical_array

__all__ = ["report_frames", "write_drift_report"]


def report_frames(baseline: Baseline, reference: pd.DataFrame,
                  current: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The baseline's features (and prediction) of both frames, with categoricals as the
    same canonical strings the detectors see, so Evidently compares like with like."""
    columns = [*baseline.feature_order]
    if baseline.columns.prediction and baseline.prediction is not None:
        columns.append(baseline.columns.prediction)
    missing = [c for c in columns if c not in reference.columns]
    if missing:
        raise InputError(f"reference rows for the report: columns {missing} not found")
    profiles = baseline.summary_profiles()
    frames = []
    for frame in (reference, current):
        part = {}
        for name in columns:
            if name not in frame.columns:
                continue
            if profiles[name].kind == "numeric":
                part[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
            else:
                part[name] = pd.Series(categorical_array(frame[name]), index=frame.index,
                                       dtype=object)
        frames.append(pd.DataFrame(part).reset_index(drop=True))
    return frames[0], frames[1]


def write_drift_report(baseline: Baseline, reference: pd.DataFrame, current: pd.DataFrame,
                       path: str | Path, title: str | None = None) -> Path:
    """Run Evidently's ``Report([DataDriftPreset()])`` and save it as HTML at ``path``."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = report_frames(baseline, reference, current)
    profiles = baseline.summary_profiles()
    numeric = [c for c in ref.columns if profiles[c].kind == "numeric"]
    categorical = [c for c in ref.columns if profiles[c].kind == "categorical"]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    metadata: dict[str, Any] = {"model": baseline.model}
    if title:
        metadata["window"] = title
    snapshot = Report([DataDriftPreset()], metadata=metadata).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(path))
    except OSError as exc:
        raise InputError(f"report {path}: cannot be written ({exc.strerror or exc})") from None
    return path
