"""Response shapes of the HTTP API, for its OpenAPI document.

Window results are the dicts of design 6.1; ``WindowResult`` documents their
fields and allows more, so a field added by the evaluation later passes through.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from monitor.store import CanaryState, TriggerState

__all__ = [
    "CanaryView",
    "DecisionView",
    "DependencyView",
    "ErrorResponse",
    "EstimatedPerformanceView",
    "FeatureDrift",
    "HealthResponse",
    "ModelDetail",
    "ModelSummary",
    "ModelsResponse",
    "PerformanceView",
    "QualityView",
    "ReadyResponse",
    "RetrainRunView",
    "TriggerView",
    "WindowResult",
    "WindowSummary",
    "WindowsPage",
    "canary_view",
    "iso_ms",
    "trigger_view",
    "window_summary",
]


class ErrorResponse(BaseModel):
    detail: str


class HealthResponse(BaseModel):
    status: str


class DependencyView(BaseModel):
    ready: bool
    reason: str


class ReadyResponse(BaseModel):
    ready: bool
    detail: str
    dependencies: dict[str, DependencyView]


class _Documented(BaseModel):
    # attribute docstrings describe each key in the OpenAPI document and
    # docs/reference/window-result.md
    model_config = ConfigDict(use_attribute_docstrings=True)


class FeatureDrift(_Documented):
    """One column's drift in a window (a feature, the prediction or the score)."""

    method: str
    """Drift method: wasserstein, ks, psi, jensenshannon, chisquare, linf or z."""
    score: float | None
    """The number compared with the threshold: a distance, or a p-value for ks, chisquare
    and z; null when the window is empty."""
    threshold: float | None
    """The threshold actually used (calibrated for the window's size when auto)."""
    drift: bool | None
    """Whether the column drifted."""
    status: str = "ok"
    """drift, ok, or inconclusive (fewer rows than drift.min_rows)."""
    direction: str = "above"
    """above: drift when score >= threshold (distances); below: drift when score < threshold
    (p-values)."""
    n: int = 0
    """Values of the column in the window."""


class QualityView(_Documented):
    """Data-quality findings of a window."""

    missing: dict[str, float] = {}
    """Features whose missing share rose by more than quality.max_missing_increase: the
    window's missing share."""
    unseen_categories: dict[str, list[str]] = {}
    """Categories the baseline never saw, per feature."""
    out_of_range: dict[str, float] = {}
    """Share of values outside the reference range, per numeric feature over the limit."""
    type_violations: dict[str, int] = {}
    """Cells of the wrong type, per feature."""
    missing_columns: list[str] = []
    """Features no event of the window carried."""
    extra_columns: list[str] = []
    """Columns events carried that the baseline does not know (in streams at most 100 names
    per window)."""
    extra_columns_not_kept: int = 0
    """Streams: unknown column names seen past the 100 kept, counted once per buffered chunk
    they appeared in."""
    violations: list[str] = []
    """Every finding as a sentence."""
    status: str = "ok"
    """ok, violation, or inconclusive (an empty window)."""


class PerformanceView(_Documented):
    """Realized performance on predictions joined with their labels."""

    metric: str
    """The metric (performance.metric, or the task's first when it does not apply)."""
    value: float | None
    """Its value on the joined rows; null when undefined (e.g. roc_auc with one class)."""
    baseline: float | None
    """Its value on the reference."""
    degraded: bool | None
    """Whether it is worse than the baseline by more than max_drop."""
    labeled_rows: int
    """Joined (prediction, label) pairs."""
    max_drop: float | None = None
    """The allowed drop actually used (calibrated for labeled_rows when auto)."""
    status: str = "ok"
    """ok, degraded, or inconclusive (fewer than drift.min_rows labels, or undefined)."""
    window: int | None = None
    """Streams: the number of the performance window (performance.window_rows joined
    pairs each) of this model version."""


class EstimatedPerformanceView(_Documented):
    """Performance estimated without labels from the model's scores (CBPE: the scores
    calibrated on the reference, the expected confusion matrix of the window's rows)."""

    metric: str
    """The estimated metric: performance.metric where it can be estimated (binary:
    accuracy, precision, recall, f1, roc_auc; multiclass: accuracy), else accuracy."""
    value: float | None
    """The estimate; null when the metric is undefined on the window's rows (e.g. precision
    with no predicted positive)."""
    lower: float | None
    """Lower end of the band the realized value should fall in (the estimate less 3 standard
    deviations of the realized metric around it); null when inconclusive."""
    upper: float | None
    """Upper end of that band; null when inconclusive."""
    baseline: float
    """The estimate on the whole reference."""
    threshold: float
    """Degraded below this: with performance.max_drop auto, the lower of mean - 3 sd of the
    estimate over reference windows of n rows and baseline - 0.01; else baseline - max_drop."""
    degraded: bool
    """Whether the estimate is below the threshold."""
    status: str = "ok"
    """ok, degraded, or inconclusive (fewer than drift.min_rows rows with a score, or the
    metric is undefined on them)."""
    n: int = 0
    """Rows of the window with a score (the rows estimated)."""


class WindowResult(_Documented):
    """One window result (design 6.1): what ``driftloop evaluate`` prints per window and
    ``GET /api/v1/models/{model}/windows`` returns."""

    model: str
    """The model's name."""
    version: str
    """The model version the window's events came from."""
    window: int
    """The window's number in its stream (count windows) or start / duration (event time)."""
    first_offset: int | None = None
    """Kafka offset of the window's first event; null for files."""
    start: str | None
    """First event time (count windows) or the window's start (event time), RFC 3339."""
    end: str | None
    """Last event time (count windows) or the window's end (event time), RFC 3339."""
    rows: int
    """Events in the window."""
    dataset_drift: bool | None
    """Whether at least drift_share_threshold of the conclusive features drifted."""
    drift_share: float | None
    """Share of the conclusive features that drifted."""
    drift_share_threshold: float | None = None
    """models.<name>.drift.share."""
    features: dict[str, FeatureDrift]
    """Drift of every feature of the baseline."""
    prediction_drift: FeatureDrift | None
    """Drift of the prediction column; null when the baseline has none."""
    score_drift: FeatureDrift | None = None
    """Drift of the score column; null when the baseline has none."""
    quality: QualityView | None
    """Data-quality findings."""
    performance: PerformanceView | None
    """Realized performance; null when no labels joined. In the stream, the latest
    performance window known when this window closed (labels come later)."""
    estimated_performance: EstimatedPerformanceView | None = None
    """Performance estimated from the window's scores without labels (CBPE); null for a
    baseline without a CBPE reference (regression, no scores, or built before
    driftloop/baseline/v2). Shown beside the realized performance once labels join."""
    partition: int | None = None
    """Streams: the Kafka partition the window's events came from; null for a window merged
    from every partition's partial summaries (kafka.partials, event-time windows);
    1000000 + q for KServe pairs joined on partition q of the kserve topic
    (kafka.kserve_split)."""
    baseline: str | None = None
    """Streams: the key of the baseline the window was binned with (runs:/<id> for
    baselines that follow an MLflow alias)."""


class WindowsPage(BaseModel):
    model: str
    count: int
    windows: list[WindowResult]


class WindowSummary(BaseModel):
    """The headline of the newest window."""

    version: str | None
    window: int | None
    start: str | None
    end: str | None
    rows: int | None
    dataset_drift: bool | None
    drift_share: float | None
    prediction_drift: bool | None
    performance_metric: str | None
    performance: float | None
    performance_degraded: bool | None


class DecisionView(BaseModel):
    at: str
    kind: str
    sentence: str


class CanaryView(BaseModel):
    phase: str
    champion: str | None
    challenger: str | None
    passed: int
    failed_checks: int
    evidence: dict[str, Any]
    updated_at: str


class TriggerView(BaseModel):
    consecutive: dict[str, int]
    last_trigger: str | None
    cooldown_until: str | None
    running_run_id: str | None


class RetrainRunView(BaseModel):
    id: str
    reason: str
    launcher: str
    status: str
    started_at: str
    finished_at: str | None
    external_id: str | None


class ModelSummary(BaseModel):
    name: str
    champion: str | None
    challenger: str | None
    last_window: WindowSummary | None
    decisions: list[DecisionView]


class ModelsResponse(BaseModel):
    models: list[ModelSummary]


class ModelDetail(BaseModel):
    name: str
    champion: str | None
    challenger: str | None
    last_window: WindowResult | None
    decisions: list[DecisionView]
    canary: CanaryView | None
    trigger: TriggerView | None
    retrain_runs: list[RetrainRunView]


# -- builders: store records -> the dicts above ----------------------------------
def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def window_summary(result: dict[str, Any]) -> dict[str, Any]:
    prediction = result.get("prediction_drift") or {}
    performance = result.get("performance") or {}
    return {
        "version": result.get("version"),
        "window": result.get("window"),
        "start": result.get("start"),
        "end": result.get("end"),
        "rows": result.get("rows"),
        "dataset_drift": result.get("dataset_drift"),
        "drift_share": result.get("drift_share"),
        "prediction_drift": prediction.get("drift"),
        "performance_metric": performance.get("metric"),
        "performance": performance.get("value"),
        "performance_degraded": performance.get("degraded"),
    }


def canary_view(state: CanaryState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "phase": state.phase,
        "champion": state.champion,
        "challenger": state.challenger,
        "passed": state.passed,
        "failed_checks": state.failed_checks,
        "evidence": dict(state.evidence),
        "updated_at": iso_ms(state.updated_at_ms),
    }


def trigger_view(state: TriggerState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "consecutive": dict(state.consecutive),
        "last_trigger": iso_ms(state.last_trigger_ms),
        "cooldown_until": iso_ms(state.cooldown_until_ms),
        "running_run_id": state.running_run_id,
    }
