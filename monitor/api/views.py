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
    "FeatureDrift",
    "HealthResponse",
    "ModelDetail",
    "ModelSummary",
    "ModelsResponse",
    "PerformanceView",
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


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


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


class FeatureDrift(_Open):
    method: str
    score: float | None
    threshold: float | None
    drift: bool | None


class PerformanceView(_Open):
    metric: str
    value: float | None
    baseline: float | None
    degraded: bool | None
    labeled_rows: int


class WindowResult(_Open):
    """One window result, design 6.1."""

    model: str
    version: str
    window: int
    first_offset: int | None = None
    start: str | None
    end: str | None
    rows: int
    dataset_drift: bool | None
    drift_share: float | None
    features: dict[str, FeatureDrift]
    prediction_drift: FeatureDrift | None
    quality: dict[str, Any] | None
    performance: PerformanceView | None


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
