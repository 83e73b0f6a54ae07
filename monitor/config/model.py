"""``models.<name>``: what one monitored model is compared with and how driftloop reacts.

Windows, drift, data quality, realized performance, retraining and canary
settings of one model; the launcher sections are :mod:`monitor.config.launchers`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from monitor.config.base import Section
from monitor.config.launchers import LauncherConfig
from monitor.config.values import (
    Alpha,
    AutoOrNonNegative,
    AutoOrPositive,
    Duration,
    NonNegative,
    PositiveDuration,
    PositiveInt,
    Share,
)

__all__ = [
    "CanaryConfig",
    "CategoricalMethod",
    "DriftConfig",
    "FeatureDriftConfig",
    "ModelConfig",
    "NumericMethod",
    "PerformanceConfig",
    "QualityConfig",
    "RetrainConfig",
    "RetrainReason",
    "WindowConfig",
]


class WindowConfig(Section):
    rows: PositiveInt | None = None
    duration: PositiveDuration | None = None
    allowed_lateness: Duration = 0.0
    # cap on raw rows buffered before they are folded into the window summary
    buffer_rows: PositiveInt = 2048

    @model_validator(mode="after")
    def _one_kind(self) -> WindowConfig:
        if self.rows is not None and self.duration is not None:
            raise ValueError(
                "expected either rows (a count window) or duration (an event-time window), "
                "not both")
        if self.rows is None and self.duration is None:
            object.__setattr__(self, "rows", 5000)
        return self


NumericMethod = Literal["wasserstein", "ks", "psi", "jensenshannon"]
CategoricalMethod = Literal["jensenshannon", "chisquare", "linf", "psi"]


class FeatureDriftConfig(Section):
    method: str | None = None
    threshold: AutoOrPositive | None = None


class DriftConfig(Section):
    share: Share = 0.5
    numeric_method: NumericMethod = "wasserstein"
    categorical_method: CategoricalMethod = "jensenshannon"
    prediction_method: Literal["jensenshannon", "psi", "wasserstein", "ks", "linf"] = (
        "jensenshannon")
    threshold: AutoOrPositive = "auto"
    # p-value methods (ks, chisquare, z) are corrected for the number of features
    correction: Literal["none", "bonferroni", "fdr"] = "bonferroni"
    alpha: Alpha = 0.05
    min_rows: PositiveInt = 100
    features: dict[str, FeatureDriftConfig] = Field(default_factory=dict)


class QualityConfig(Section):
    max_missing_increase: NonNegative = 0.1
    max_out_of_range: NonNegative = 0.05
    max_type_violations: NonNegative = 0.0


class PerformanceConfig(Section):
    metric: Literal[
        "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "mape"
    ] = "accuracy"
    max_drop: AutoOrNonNegative = "auto"
    window_rows: PositiveInt = 5000
    label_ttl: Duration = 30 * 86400.0


RetrainReason = Literal[
    "dataset_drift", "performance_drop", "estimated_performance_drop", "quality", "alert", "manual"
]


class RetrainConfig(Section):
    on: list[RetrainReason] = Field(
        default_factory=lambda: ["dataset_drift", "performance_drop", "alert", "manual"]  # type: ignore[arg-type]
    )
    consecutive_windows: PositiveInt = 2
    cooldown: Duration = 3600.0
    launcher: LauncherConfig | None = None
    max_attempts: PositiveInt = 5


class CanaryConfig(Section):
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    min_events: PositiveInt = 2000
    iterations: PositiveInt = 3
    threshold: PositiveInt = 2
    max_performance_drop: NonNegative = 0.0
    interval: Duration = 300.0


class ModelConfig(Section):
    baseline: str
    window: WindowConfig = Field(default_factory=WindowConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    canary: CanaryConfig | None = None


