"""``models.<name>``: what one monitored model is compared with and how driftloop reacts.

Windows, drift, data quality, realized performance, retraining and canary
settings of one model; the launcher sections are :mod:`monitor.config.launchers`.
"""

from __future__ import annotations

from typing import Literal, cast

from pydantic import Field, model_validator

from detectors.materiality import MIN_EFFECT
from monitor.config.base import Section
from monitor.config.launchers import LauncherConfig
from monitor.config.values import (
    Alpha,
    AutoOrNonNegative,
    AutoOrPositive,
    Confidence,
    Duration,
    NonNegative,
    PositiveDuration,
    PositiveInt,
    Share,
)

__all__ = [
    "CanaryConfig",
    "CategoricalMethod",
    "DistanceMethod",
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
    """``models.<name>.window``: count windows (``rows``) or event-time windows (``duration``)."""

    rows: PositiveInt | None = None
    """Tumbling count windows of this many events (the default, 5000, when duration is not set)."""
    duration: PositiveDuration | None = None
    """Tumbling event-time windows of this length, aligned to the epoch (instead of rows)."""
    allowed_lateness: Duration = 0.0
    """Event-time windows close this long after the watermark passes their end; later events are
    counted as late."""
    buffer_rows: PositiveInt = 2048
    """Raw rows buffered per open window before they are folded into its bounded summary."""
    idle_timeout: PositiveDuration | None = None
    """Event-time windows of a stream without events this long (processing time) close as if
    event time had moved on with the clock; null: duration plus allowed_lateness."""
    retire_after: PositiveDuration = 86400.0
    """A stream (model, version, partition) without events this long closes its open window,
    which is evaluated as it stands, and is forgotten (its checkpoint deleted)."""

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
# the methods with a materiality bound (detectors.materiality.MIN_EFFECT)
DistanceMethod = Literal["wasserstein", "jensenshannon", "psi", "linf"]


class FeatureDriftConfig(Section):
    """``models.<name>.drift.features.<feature>``: one feature's method and threshold."""

    method: str | None = None
    """Drift method of this feature (overrides numeric_method / categorical_method)."""
    threshold: AutoOrPositive | None = None
    """Threshold of this feature: auto or a number in the method's units."""
    min_effect: NonNegative | None = None
    """Materiality bound of this feature with threshold auto, in its method's units (overrides
    drift.min_effect); null: the method's."""


class DriftConfig(Section):
    """``models.<name>.drift``: how features, predictions and scores meet the baseline."""

    share: Share = 0.5
    """Dataset drift when at least this share of the features drift."""
    numeric_method: NumericMethod = "wasserstein"
    """Drift method of numeric features: wasserstein (normalized by the reference std), ks, psi,
    jensenshannon."""
    categorical_method: CategoricalMethod = "jensenshannon"
    """Drift method of categorical features: jensenshannon, chisquare, linf, psi."""
    prediction_method: Literal["jensenshannon", "psi", "wasserstein", "ks", "linf"] = (
        "jensenshannon")
    """Drift method of the prediction (and score) column."""
    threshold: AutoOrPositive = "auto"
    """Distance threshold: auto (calibrated on the reference at the window's size, with a
    materiality floor) or a number."""
    correction: Literal["none", "bonferroni", "fdr"] = "bonferroni"
    """Multiple-testing correction of p-value methods (ks, chisquare, z): none, bonferroni, fdr."""
    alpha: Alpha = 0.05
    """Significance level of p-value methods."""
    min_rows: PositiveInt = 100
    """Windows with fewer rows are inconclusive, never no drift."""
    min_effect: dict[DistanceMethod, NonNegative] = Field(
        default_factory=lambda: {cast(DistanceMethod, k): v for k, v in MIN_EFFECT.items()})
    """Materiality bound per distance method (wasserstein, jensenshannon, psi, linf): with
    threshold auto a distance drifts only at or above it, whatever the window's size (see
    docs/detection.md). A method left out keeps its default."""
    features: dict[str, FeatureDriftConfig] = Field(default_factory=dict)
    """Per-feature overrides of method, threshold and min_effect."""


class QualityConfig(Section):
    """``models.<name>.quality``: what counts as a data-quality violation."""

    max_missing_increase: NonNegative = 0.1
    """A feature whose missing share rises by more than this is a violation."""
    max_out_of_range: NonNegative = 0.05
    """A numeric feature with more than this share of values outside the reference range is a
    violation."""
    max_type_violations: NonNegative = 0.0
    """Share of cells of the wrong type allowed per feature."""


class PerformanceConfig(Section):
    """``models.<name>.performance``: realized performance on predictions joined with labels."""

    metric: Literal[
        "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "mape"
    ] = "accuracy"
    """Realized performance metric: accuracy, precision, recall, f1, roc_auc, log_loss, mae,
    rmse, mape."""
    max_drop: AutoOrNonNegative = "auto"
    """Degraded when the metric is worse than the baseline by more than this; auto: 3 standard
    deviations over reference windows of window_rows."""
    window_rows: PositiveInt = 5000
    """Joined (prediction, label) pairs per performance window."""
    max_pending_labels: PositiveInt = 1_000_000
    """Rows waiting for their partner (predictions and labels each) kept per model; the oldest
    beyond it are dropped and counted as expired."""
    label_ttl: Duration = 30 * 86400.0
    """How long (in event time) a prediction waits for its label, and a label for its
    prediction."""
    use_estimate: bool = True
    """The performance_drop retrain signal reads the label-free estimate (CBPE,
    estimated_performance) of a version until its first realized performance window;
    false: realized performance only."""


RetrainReason = Literal[
    "dataset_drift", "performance_drop", "estimated_performance_drop", "quality", "alert", "manual"
]


class RetrainConfig(Section):
    """``models.<name>.retrain``: when a retrain starts and how it is launched."""

    on: list[RetrainReason] = Field(
        default_factory=lambda: ["dataset_drift", "performance_drop", "alert", "manual"]  # type: ignore[arg-type]
    )
    """Signals that start a retrain: dataset_drift, performance_drop,
    estimated_performance_drop, quality, alert, manual."""
    consecutive_windows: PositiveInt = 2
    """Window signals must hold this many windows in a row."""
    cooldown: Duration = 3600.0
    """No second retrain (except manual) this long after one started."""
    launcher: LauncherConfig | None = None
    """How to start the retrain (command, webhook, kfp, argo, github, airflow); null records the
    decision only."""
    max_attempts: PositiveInt = 5
    """Attempts of one launch call before the launcher gives up on a retryable error."""
    keep_runs: PositiveInt = 200
    """Finished retrain runs kept in the state store, newest first; older ones are deleted by
    the retrain-run-prune job (runs in flight are always kept)."""


class CanaryConfig(Section):
    """``models.<name>.canary``: a challenger version judged against the champion, live.

    Each interval compares the two versions on the traffic of that same interval
    (prediction events by their ``version``, labels joined to them); the judge is
    ``detectors.canary.judge``, the state machine ``triggers.canary``.
    """

    champion_alias: str = "champion"
    """MLflow registry alias of the version serving most traffic."""
    challenger_alias: str = "challenger"
    """MLflow registry alias of the version under test; pointing it at a version starts a
    canary of that version."""
    previous_champion_alias: str = "previous_champion"
    """Alias a promotion moves the replaced champion to (an operator rollback of the promotion
    moves the champion back to it)."""
    min_events: PositiveInt = 2000
    """Events per arm and interval before a check counts; fewer is inconclusive."""
    min_labels: PositiveInt = 100
    """Labeled (joined) events per arm and interval before performance is compared; fewer
    leaves performance inconclusive."""
    iterations: PositiveInt = 3
    """Passing checks in a row to promote the challenger."""
    threshold: PositiveInt = 2
    """Failed checks to roll the challenger back (never reset, as Flagger's failedChecks)."""
    max_inconclusive: PositiveInt = 10
    """Inconclusive checks in a row (too little traffic or labels, a marginal score) that roll
    the challenger back."""
    max_performance_drop: NonNegative = 0.0
    """Non-inferiority margin, in the judged metric's units (accuracy points, mae units...):
    how much worse than the champion the challenger may perform. At 0 a challenger merely as
    good as the champion never passes (a tie is inconclusive): give a small margin (e.g. 0.01)
    to promote equals."""
    confidence: Confidence = 0.95
    """One-sided confidence of every comparison (performance, invalid rate, latency)."""
    max_divergence: NonNegative = 0.1
    """Largest Jensen-Shannon distance between the two versions' prediction distributions."""
    max_invalid_increase: NonNegative = 0.01
    """How much the challenger's share of invalid events (dead letters naming it) may exceed
    the champion's."""
    max_latency_increase: NonNegative = 0.2
    """How much the challenger's mean latency (latency_ms) may exceed the champion's, relative
    to the champion's."""
    interval: PositiveDuration = 300.0
    """Length of one canary check interval (rounded up to the canary job's ticks,
    jobs.canary_interval)."""
    hook: LauncherConfig | None = None
    """Deploy hook called when a canary starts, promotes, rolls back, is aborted or reverted
    (command, webhook, kfp, argo, github, airflow; placeholders {model}, {version} = the
    challenger, {reason} = the decision, {idempotency_key} = the decision id); null: none."""

    def policy_section(self) -> dict[str, object]:
        """The keys ``triggers.canary_policy.CanaryPolicy.from_config`` reads."""
        return self.model_dump(exclude={"hook"})


class ModelConfig(Section):
    """``models.<name>``: one monitored model."""

    baseline: str
    """The training baseline: a file, runs:/<id>/..., models:/<name>@<alias>, or mlflow:<alias>
    (follows the alias)."""
    window: WindowConfig = Field(default_factory=WindowConfig)
    """How events are cut into windows."""
    drift: DriftConfig = Field(default_factory=DriftConfig)
    """Drift methods and thresholds."""
    quality: QualityConfig = Field(default_factory=QualityConfig)
    """Data-quality limits."""
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    """Realized performance on joined labels."""
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    """When and how to retrain."""
    canary: CanaryConfig | None = None
    """Judging a challenger version against the champion; null: no canary."""
    max_versions: PositiveInt = 20
    """Versions of this model monitored at once; events of a further version are dead
    letters (too_many_versions) until one retires (window.retire_after)."""


