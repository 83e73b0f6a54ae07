"""One window against its baseline -> the window result of design section 6.1.

``driftloop evaluate`` and the streaming service both call :func:`evaluate_window`,
so they give identical results on the same rows. Nothing here reads files or
Kafka: the caller fills a :class:`detectors.WindowSummary` (see
``Baseline.empty_summary``) and, for the label-free estimate, the window's
``detectors.ConfidenceCounts`` (:mod:`monitor.evaluate.estimate`), and joins labels
into :class:`LabeledRows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import detectors
from monitor.baseline import Baseline
from monitor.baseline.performance import detector_metric, encode_labels
from monitor.config import DriftConfig, ModelConfig, QualityConfig
from monitor.evaluate.estimate import evaluate_estimate

__all__ = [
    "LabeledRows",
    "WindowMeta",
    "drift_settings",
    "evaluate_performance_window",
    "evaluate_window",
    "quality_settings",
]

@dataclass(frozen=True)
class WindowMeta:
    model: str
    version: str
    window: int
    first_offset: int | None = None
    start: str | None = None  # RFC 3339, or None when the rows carry no time
    end: str | None = None


@dataclass(frozen=True)
class LabeledRows:
    """Joined (label, prediction) pairs of a window, as canonical values: str classes
    for classification, floats for regression; ``score`` is the positive-class
    probability of binary models."""

    y_true: np.ndarray
    y_pred: np.ndarray
    score: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.y_true) != len(self.y_pred):
            raise ValueError(f"labeled rows: got {len(self.y_true)} labels and "
                             f"{len(self.y_pred)} predictions, expected as many of each")
        if self.score is not None and len(self.score) != len(self.y_true):
            raise ValueError(f"labeled rows: got {len(self.score)} scores, "
                             f"expected {len(self.y_true)}")

    @property
    def n_rows(self) -> int:
        return len(self.y_true)


def drift_settings(config: DriftConfig) -> detectors.DriftSettings:
    overrides = {name: detectors.FeatureOverride(feature.method, feature.threshold,
                                                 feature.min_effect)
                 for name, feature in config.features.items()}
    return detectors.DriftSettings(
        numeric_method=config.numeric_method,
        categorical_method=config.categorical_method,
        threshold=config.threshold,
        alpha=config.alpha,
        correction=config.correction,
        share=config.share,
        min_rows=config.min_rows,
        overrides=overrides,
        min_effect={str(k): v for k, v in config.min_effect.items()},
    )


def quality_settings(config: QualityConfig) -> detectors.QualitySettings:
    return detectors.QualitySettings(
        max_missing_increase=config.max_missing_increase,
        max_out_of_range=config.max_out_of_range,
        max_type_violations=config.max_type_violations,
    )


def _score_dict(result: detectors.DriftResult) -> dict[str, Any]:
    # direction says how to read score against threshold: a p-value drifts below it
    return {"method": result.method, "score": _finite(result.score),
            "threshold": result.threshold, "drift": result.drift, "status": result.status,
            "direction": result.direction, "n": result.n_current}


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _role_drift(baseline: Baseline, summary: detectors.WindowSummary, column: str | None,
                profile: detectors.FeatureProfile | None, method: str,
                config: DriftConfig) -> dict[str, Any] | None:
    """Drift of the prediction or score column; a method that does not apply to the
    column's kind falls back to Jensen-Shannon, which applies to both."""
    if column is None or profile is None:
        return None
    counts = summary.numeric if profile.kind == "numeric" else summary.categorical
    if column not in counts:
        return None
    applicable = (detectors.NUMERIC_METHODS if profile.kind == "numeric"
                  else detectors.CATEGORICAL_METHODS)
    chosen = method if method in applicable else "jensenshannon"
    settings = detectors.DriftSettings(
        numeric_method=chosen if profile.kind == "numeric" else "wasserstein",
        categorical_method=chosen if profile.kind == "categorical" else "jensenshannon",
        threshold=config.threshold, alpha=config.alpha, correction="none",
        min_rows=config.min_rows, min_effect={str(k): v for k, v in config.min_effect.items()})
    result = detectors.evaluate_drift({column: profile}, summary, settings, baseline.calibration)
    return _score_dict(result.features[column])


def evaluate_performance_window(baseline: Baseline, model_config: ModelConfig,
                                labels: LabeledRows | None) -> dict[str, Any] | None:
    """The ``performance`` part of a window result; None without labels or a reference."""
    reference = baseline.performance
    if labels is None or labels.n_rows == 0 or reference is None:
        return None
    metric: str = model_config.performance.metric
    if metric not in reference.metrics:
        # the configured metric does not apply to this task (or needs scores the
        # reference lacked): use the task's first metric rather than fail the window
        metric = next(iter(reference.metrics))
    configured = model_config.performance.max_drop
    max_drop = (reference.auto_max_drop(metric, labels.n_rows) if configured == "auto"
                else float(configured))
    y_true, y_pred = encode_labels(reference, labels.y_true, labels.y_pred)
    result = detectors.evaluate_performance(
        detector_metric(reference.task, metric), y_true, y_pred,
        labels.score if metric in ("roc_auc", "log_loss") else None,
        reference.metrics[metric], max_drop, min_rows=model_config.drift.min_rows)
    return {"metric": metric, "value": _finite(result.value),
            "baseline": result.baseline, "max_drop": result.max_drop,
            "degraded": result.degraded, "labeled_rows": result.labeled_rows,
            "status": result.status}


def evaluate_window(
    baseline: Baseline,
    summary: detectors.WindowSummary,
    model_config: ModelConfig,
    meta: WindowMeta,
    labels: LabeledRows | None = None,
    *,
    confidence: detectors.ConfidenceCounts | None = None,
) -> dict[str, Any]:
    """The window result (design section 6.1). ``performance`` is None without labels;
    ``estimated_performance`` is None without ``confidence`` (the window's CBPE counts)
    or a baseline without a CBPE reference."""
    drift = detectors.evaluate_drift(
        baseline.features, summary, drift_settings(model_config.drift), baseline.calibration)
    quality = detectors.evaluate_quality(
        baseline.features, summary, quality_settings(model_config.quality))
    columns = baseline.columns
    prediction_method = model_config.drift.prediction_method
    return {
        "model": meta.model,
        "version": meta.version,
        "window": meta.window,
        "first_offset": meta.first_offset,
        "start": meta.start,
        "end": meta.end,
        "rows": summary.n_rows,
        "dataset_drift": drift.dataset_drift,
        "drift_share": drift.drift_share,
        "drift_share_threshold": drift.share_threshold,
        "features": {name: _score_dict(result) for name, result in drift.features.items()},
        "prediction_drift": _role_drift(baseline, summary, columns.prediction,
                                        baseline.prediction, prediction_method,
                                        model_config.drift),
        "score_drift": _role_drift(baseline, summary, columns.score, baseline.score,
                                   prediction_method, model_config.drift),
        "quality": {
            "missing": quality.missing,
            "unseen_categories": quality.unseen_categories,
            "out_of_range": quality.out_of_range,
            "type_violations": quality.type_violations,
            "missing_columns": quality.missing_columns,
            "extra_columns": quality.extra_columns,
            "violations": quality.violations,
            "status": quality.status,
        },
        "performance": evaluate_performance_window(baseline, model_config, labels),
        "estimated_performance": evaluate_estimate(baseline, model_config, confidence),
    }
