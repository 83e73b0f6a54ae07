"""The names, types, labels and help of every driftloop metric (design section 8).

Held apart from :class:`monitor.metrics.instruments.Metrics` because they are a
contract rather than code that runs: the dashboards, the alert rules and
``docs/reference/metrics.md`` are built from ``METRICS``, and the names are fixed,
while the objects that carry the values change with what the service measures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["CANARY_STATUS", "DESIGN_METRICS", "METRICS", "MetricSpec"]

MetricType = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str


def _spec(name: str, type_: MetricType, labels: str, help_: str) -> MetricSpec:
    return MetricSpec(name, type_, tuple(labels.split()), help_)


# fmt: off
METRICS: tuple[MetricSpec, ...] = (
    # design section 8 (fixed)
    _spec("driftloop_events_total", "counter", "model version kind",
          "Events consumed (kind: prediction, label)."),
    _spec("driftloop_events_invalid_total", "counter", "reason",
          "Records sent to the dead-letter topic, by reason."),
    _spec("driftloop_windows_total", "counter", "model version",
          "Windows evaluated."),
    _spec("driftloop_feature_drift_score", "gauge", "model version feature method",
          "Drift statistic of a feature in the last window."),
    _spec("driftloop_feature_drift_detected", "gauge", "model version feature",
          "1 when the feature drifted in the last window."),
    _spec("driftloop_dataset_drift_share", "gauge", "model version",
          "Share of features drifting in the last window (0..1)."),
    _spec("driftloop_dataset_drift_detected", "gauge", "model version",
          "1 when the last window shows dataset drift."),
    _spec("driftloop_prediction_drift_score", "gauge", "model version method",
          "Drift statistic of the predictions in the last window."),
    _spec("driftloop_performance", "gauge", "model version metric",
          "Realized performance of the last labeled window."),
    _spec("driftloop_performance_degraded", "gauge", "model version",
          "1 when performance dropped more than allowed."),
    _spec("driftloop_retrain_triggers_total", "counter", "model reason",
          "Retrains the policy decided to start."),
    _spec("driftloop_canary_status", "gauge", "model",
          "Canary status: 0 running, 1 succeeded, 2 failed."),
    _spec("driftloop_canary_decisions_total", "counter", "model decision",
          "Canary decisions (promote, rollback)."),
    _spec("driftloop_consumer_lag", "gauge", "topic partition",
          "Records behind the end of the partition."),
    _spec("driftloop_consumer_offset", "gauge", "topic partition",
          "Next offset to handle per partition (what the service has read; with the lag, "
          "where it stands)."),
    _spec("driftloop_window_evaluation_seconds", "histogram", "model",
          "Time to evaluate a closed window."),
    # additions
    _spec("driftloop_prediction_drift_detected", "gauge", "model version",
          "1 when the predictions drifted in the last window."),
    _spec("driftloop_performance_baseline", "gauge", "model version metric",
          "Reference performance the last window was compared with."),
    _spec("driftloop_window_rows", "gauge", "model version",
          "Rows in the last evaluated window."),
    _spec("driftloop_data_quality_violations", "gauge", "model version",
          "Data-quality violations in the last window."),
    _spec("driftloop_feature_drift_threshold", "gauge", "model version feature method",
          "Threshold the feature's drift score was compared with in the last window."),
    _spec("driftloop_dataset_drift_share_threshold", "gauge", "model version",
          "Share of drifting features at which a window counts as dataset drift."),
    _spec("driftloop_performance_threshold", "gauge", "model version metric",
          "Performance at which a window counts as degraded (baseline less max_drop; "
          "for losses and errors, plus max_drop)."),
    _spec("driftloop_performance_estimated", "gauge", "model version metric",
          "Performance of the last window estimated from its scores without labels (CBPE)."),
    _spec("driftloop_events_late_total", "counter", "model",
          "Events too late for their event-time window."),
    _spec("driftloop_dead_letters_total", "counter", "",
          "Records produced to the dead-letter topic."),
    _spec("driftloop_label_join_pending", "gauge", "model kind",
          "Rows waiting to be joined (kind: prediction, label)."),
    _spec("driftloop_label_joins_total", "counter", "model",
          "Predictions joined with their label."),
    _spec("driftloop_label_join_expired_total", "counter", "model kind",
          "Pending rows dropped after the label TTL."),
    _spec("driftloop_retrain_launches_total", "counter", "model launcher outcome",
          "Retrain launches by outcome (started, failed, duplicate)."),
    # not "job": Prometheus sets that label on every scraped series (it would be renamed)
    _spec("driftloop_job_errors_total", "counter", "job_name",
          "Scheduled jobs that raised, by job (each runs again at its next time)."),
    _spec("driftloop_build_info", "gauge", "version python",
          "Always 1; labels carry the build."),
    _spec("driftloop_drift_reports_total", "counter", "model outcome",
          "Drifted windows by what became of their HTML report (written, queue_full, "
          "no_reference, no_rows, failed)."),
    _spec("driftloop_drift_report_seconds", "histogram", "model",
          "Time to build and store the HTML report of a drifted window."),
    _spec("driftloop_labels_paused", "gauge", "",
          "Labels partitions paused because their records are ahead of the predictions "
          "(both topics in backlog: labels are read in step with their predictions)."),
    _spec("driftloop_checkpoint_bytes", "histogram", "",
          "Bytes of checkpoint state written per persist (open windows of the streams that "
          "changed, performance windows, processed marks)."),
)
# fmt: on

# the names of design.md section 8; every other metric is an addition
DESIGN_METRICS = frozenset({
    "driftloop_events_total", "driftloop_events_invalid_total", "driftloop_windows_total",
    "driftloop_feature_drift_score", "driftloop_feature_drift_detected",
    "driftloop_dataset_drift_share", "driftloop_dataset_drift_detected",
    "driftloop_prediction_drift_score", "driftloop_performance",
    "driftloop_performance_degraded", "driftloop_retrain_triggers_total",
    "driftloop_canary_status", "driftloop_canary_decisions_total", "driftloop_consumer_lag",
    "driftloop_window_evaluation_seconds",
})

CANARY_STATUS: Mapping[str, int] = {"running": 0, "succeeded": 1, "failed": 2}
