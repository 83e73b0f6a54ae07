"""Evidently HTML drift reports of drifted windows, agreeing with the window they explain.

The report is for people reading a drifted window; the verdicts of record are
driftloop's (the window result). So that the report does not contradict them,
Evidently is told what driftloop used, column by column: each feature's method
and the threshold it was compared with (after calibration and multiple-testing
correction), the dataset-drift share, and the prediction and score columns as
separate ``ValueDrift`` metrics (driftloop's share counts features only).

Method names map one to one (``METHODS``); Evidently has no L-infinity distance,
so driftloop registers one (``driftloop-linf``, the largest change of a
category's share, as driftloop computes it) before a report that needs it. What
can still differ: Evidently computes each statistic on rows, the window's (or a
sample of them) against the baseline's reference sample, where driftloop reads
the window's summary against the profile of every training row; and it bins
numeric PSI and Jensen-Shannon in equal-width Sturges bins, driftloop in ten
reference quantile bins. The report's header lists both verdicts for every
column and names any column where they differ.

Evidently takes seconds to import, so it is imported only when a report is built.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import detectors
from monitor.baseline import Baseline
from monitor.errors import InputError
from monitor.evaluate.report_header import RowsCovered, header_html
from monitor.evaluate.report_plan import (
    LINF,
    ColumnVerdict,
    ReportPlan,
    report_plan,
    role_columns,
)
from monitor.tables import categorical_array

__all__ = [
    "DriftReport",
    "build_drift_report",
    "evidently_verdicts",
    "report_frames",
    "write_drift_report",
]

@dataclass(frozen=True)
class DriftReport:
    html: str
    plan: ReportPlan
    verdicts: dict[str, ColumnVerdict]
    dataset_drift: bool | None  # Evidently's
    drift_share: float | None  # Evidently's share of drifted features
    disagreements: tuple[str, ...]  # columns where Evidently and the window differ
    reference_rows: int
    current_rows: int
    snapshot: Any  # Evidently's result object (its metrics and tests)


def report_frames(baseline: Baseline, reference: pd.DataFrame,
                  current: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The baseline's features (and prediction and score) of both frames, with
    categoricals as the same canonical strings the detectors see, so Evidently
    compares like with like. A column the current rows lack is left out of both."""
    columns = [*baseline.feature_order, *role_columns(baseline).values()]
    missing = [c for c in baseline.feature_order if c not in reference.columns]
    if missing:
        raise InputError(f"reference rows for the report: columns {missing} not found")
    columns = [c for c in columns if c in reference.columns and c in current.columns]
    profiles = baseline.summary_profiles()
    frames = []
    for frame in (reference, current):
        part = {}
        for name in columns:
            profile = profiles[name]
            if profile.kind == "numeric":
                part[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
            elif frame is reference and isinstance(profile, detectors.CategoricalProfile):
                part[name] = pd.Series(_profile_shares(profile, len(frame)), index=frame.index,
                                       dtype=object)
            else:
                categories = set(getattr(profile, "categories", []))
                booleans = bool(categories) and categories <= {"true", "false"}
                part[name] = pd.Series(categorical_array(frame[name], booleans=booleans),
                                       index=frame.index, dtype=object)
        frames.append(pd.DataFrame(part).reset_index(drop=True))
    return frames[0], frames[1]


def _profile_shares(profile: detectors.CategoricalProfile, n: int) -> np.ndarray:
    """``n`` reference values whose shares are the baseline's (to 1/n), not the sample's.

    The window was judged against the whole reference; a sample of a few thousand rows
    shifts a category's share by a point or two, enough to flip a verdict near its
    threshold. Categorical tests read counts only, so the column can be rebuilt from the
    profile (in a seeded order: rows of other columns are not tied to these values).
    """
    labels: list[str | None] = [*profile.categories, None]
    counts = np.asarray([*profile.counts, profile.missing], dtype=np.float64)
    wanted = counts / counts.sum() * n if counts.sum() else np.zeros(len(labels))
    whole = np.floor(wanted).astype(np.int64)
    # largest remainders take the rows left over
    for i in np.argsort(-(wanted - whole), kind="stable")[: n - int(whole.sum())]:
        whole[i] += 1
    values = np.empty(n, dtype=object)
    values[:] = [label for label, k in zip(labels, whole, strict=True) for _ in range(k)]
    np.random.default_rng(0).shuffle(values)
    return values


def _register_linf() -> None:
    """Add driftloop's L-infinity distance to Evidently's stattest registry (once)."""
    from evidently.legacy.calculations.stattests import StatTest, register_stattest
    from evidently.legacy.calculations.stattests.registry import (
        StatTestNotFoundError,
        get_registered_stattest,
    )
    from evidently.legacy.core import ColumnType

    try:
        get_registered_stattest(LINF, ColumnType.Categorical)
        return
    except StatTestNotFoundError:
        pass

    def linf(reference: pd.Series, current: pd.Series, _kind: Any,
             threshold: float) -> tuple[float, bool]:
        ref, cur = reference.dropna().value_counts(), current.dropna().value_counts()
        keys = ref.index.union(cur.index)
        shares = [counts.reindex(keys, fill_value=0).to_numpy(dtype=np.float64)
                  for counts in (ref, cur)]
        shares = [s / s.sum() if s.sum() else s for s in shares]
        value = float(np.max(np.abs(shares[0] - shares[1]), initial=0.0))
        return value, value >= threshold

    register_stattest(StatTest(name=LINF, display_name="L-infinity distance (driftloop)",
                               allowed_feature_types=[ColumnType.Categorical],
                               default_threshold=0.1), default_impl=linf)


def evidently_verdicts(snapshot: Any) -> tuple[dict[str, ColumnVerdict], bool | None,
                                              float | None]:
    """Per-column verdicts, dataset drift and drifted share from Evidently's result object
    (the snapshot's metrics and tests, not its HTML): a failed ``ValueDrift`` test is
    Evidently's "drift detected"; a failed drifted-columns test is dataset drift."""
    data = snapshot.dict()
    scores: dict[str, float | None] = {}
    share = None
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            value = metric["value"]
            scores[config["column"]] = None if value is None else float(value)
        elif config["type"].endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    verdicts: dict[str, ColumnVerdict] = {}
    dataset_drift = None
    for test in data["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith(":ValueDrift"):
            column = params["column"]
            verdicts[column] = ColumnVerdict(str(params["method"]), float(params["threshold"]),
                                             scores.get(column), test["status"] == "FAIL")
        elif params["type"].endswith(":DriftedColumnsCount"):
            dataset_drift = test["status"] == "FAIL"
    return verdicts, dataset_drift, share


def _run(plan: ReportPlan, reference: pd.DataFrame, current: pd.DataFrame,
         numeric: list[str], categorical: list[str], metadata: dict[str, str]) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    if LINF in plan.methods.values():
        _register_linf()
    features = list(plan.features)
    items: list[Any] = []
    if features:
        items.append(DataDriftPreset(
            columns=features, drift_share=plan.share,
            per_column_method={c: plan.methods[c] for c in features},
            per_column_threshold={c: plan.thresholds[c] for c in features}))
    items += [ValueDrift(column=c, method=plan.methods[c], threshold=plan.thresholds[c])
              for c in plan.roles]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    return Report(items, metadata=metadata, include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition))


def build_drift_report(baseline: Baseline, reference: pd.DataFrame, current: pd.DataFrame,
                       result: Mapping[str, Any], *, covered: RowsCovered | None = None,
                       title: str | None = None) -> DriftReport:
    """Evidently's report of ``current`` (the window's rows, or a sample of them) against
    ``reference`` with the window ``result``'s methods and thresholds, with a header that
    sets Evidently's verdicts beside the window's."""
    ref, cur = report_frames(baseline, reference, current)
    plan = report_plan(baseline, result, list(cur.columns))
    used = [*plan.features, *plan.roles]
    profiles = baseline.summary_profiles()
    numeric = [c for c in used if profiles[c].kind == "numeric"]
    categorical = [c for c in used if profiles[c].kind == "categorical"]
    metadata = {"model": str(result.get("model", baseline.model)),
                "version": str(result.get("version", "")), "window": title or ""}
    with warnings.catch_warnings():
        # scipy's chi-square divides by zero for a category the reference never had:
        # the p-value (0) is right, the warning is noise in the service's log
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = _run(plan, ref[used], cur[used], numeric, categorical, metadata)
    verdicts, dataset_drift, share = evidently_verdicts(snapshot)
    ours = {**(result.get("features") or {})}
    for key, column in role_columns(baseline).items():
        if result.get(key):
            ours[column] = result[key]
    disagreements = tuple(c for c, v in verdicts.items() if bool(ours[c]["drift"]) != v.drift)
    if dataset_drift is not None and dataset_drift != bool(result.get("dataset_drift")):
        disagreements += ("dataset drift",)
    header = header_html(
        result, plan=plan, ours=ours, verdicts=verdicts, disagreements=disagreements,
        evidently_share=share, covered=covered or RowsCovered(len(cur), len(cur)),
        reference_rows=len(ref), baseline_rows=baseline.n_rows, title=title)
    html = snapshot.get_html_str(as_iframe=False)
    # Evidently's page has one <head> and one <body> tag; the header goes first in the body
    heading = escape(f"driftloop: {metadata['model']} {title or ''}".strip())
    html = html.replace("<head>", f"<head><title>{heading}</title>", 1)
    html = html.replace("<body>", "<body>" + header, 1) if "<body>" in html else header + html
    return DriftReport(html, plan, verdicts, dataset_drift, share, disagreements,
                       len(ref), len(cur), snapshot)


def write_drift_report(baseline: Baseline, reference: pd.DataFrame, current: pd.DataFrame,
                       result: Mapping[str, Any], path: str | Path, *,
                       covered: RowsCovered | None = None, title: str | None = None) -> Path:
    """:func:`build_drift_report`, saved as HTML at ``path``."""
    report = build_drift_report(baseline, reference, current, result, covered=covered,
                                title=title)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.html, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"report {path}: cannot be written ({exc.strerror or exc})") from None
    return path
