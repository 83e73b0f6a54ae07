"""``Metrics``: every metric of :data:`monitor.metrics.specs.METRICS` on an injected registry.

Nothing registers at import time: ``Metrics(registry)`` creates every metric on
the registry it is given, so each test uses a fresh ``CollectorRegistry()`` and
the service one of its own. Apart from the specs because this is what changes
with what the service measures (buckets, helpers), while the names are fixed.

The service calls the helpers once per window or per batch, never per event.
"""

from __future__ import annotations

import contextlib
import math
import platform
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from detectors import HIGHER_IS_BETTER
from monitor.metrics.specs import CANARY_STATUS, METRICS

__all__ = ["Metrics"]

_SPECS = {spec.name: spec for spec in METRICS}

# evaluation of one window: from about a millisecond (few features) to seconds
_EVALUATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

# an Evidently report: about half a second for a few thousand rows, seconds for more
_REPORT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# checkpoint bytes per persist: 0 (nothing changed), a few marks (~100 B), about 10 kB per
# numeric feature of each open window written
_CHECKPOINT_BUCKETS = (0.0, 1e2, 1e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7)


def _number(value: Any) -> float:
    """A gauge value from a result field; None (inconclusive) becomes NaN."""
    if value is None:
        return math.nan
    return float(value)


class Metrics:
    """Every driftloop metric, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, *, build_version: str = "unknown") -> None:
        self.registry = registry
        self._by_name: dict[str, Counter | Gauge] = {}
        self.events = self._counter("driftloop_events_total")
        self.events_invalid = self._counter("driftloop_events_invalid_total")
        self.windows = self._counter("driftloop_windows_total")
        self.feature_drift_score = self._gauge("driftloop_feature_drift_score")
        self.feature_drift_detected = self._gauge("driftloop_feature_drift_detected")
        self.dataset_drift_share = self._gauge("driftloop_dataset_drift_share")
        self.dataset_drift_detected = self._gauge("driftloop_dataset_drift_detected")
        self.prediction_drift_score = self._gauge("driftloop_prediction_drift_score")
        self.performance = self._gauge("driftloop_performance")
        self.performance_degraded = self._gauge("driftloop_performance_degraded")
        self.retrain_triggers = self._counter("driftloop_retrain_triggers_total")
        self.canary_status = self._gauge("driftloop_canary_status")
        self.canary_decisions = self._counter("driftloop_canary_decisions_total")
        self.consumer_lag = self._gauge("driftloop_consumer_lag")
        self.consumer_offset = self._gauge("driftloop_consumer_offset")
        spec = _SPECS["driftloop_window_evaluation_seconds"]
        self.window_evaluation_seconds = Histogram(
            spec.name, spec.help, spec.labels, registry=registry, buckets=_EVALUATION_BUCKETS
        )
        self.prediction_drift_detected = self._gauge("driftloop_prediction_drift_detected")
        self.performance_baseline = self._gauge("driftloop_performance_baseline")
        self.window_rows = self._gauge("driftloop_window_rows")
        self.quality_violations = self._gauge("driftloop_data_quality_violations")
        self.feature_drift_threshold = self._gauge("driftloop_feature_drift_threshold")
        self.dataset_drift_share_threshold = self._gauge("driftloop_dataset_drift_share_threshold")
        self.performance_threshold = self._gauge("driftloop_performance_threshold")
        self.performance_estimated = self._gauge("driftloop_performance_estimated")
        self.events_late = self._counter("driftloop_events_late_total")
        self.dead_letters = self._counter("driftloop_dead_letters_total")
        self.join_pending = self._gauge("driftloop_label_join_pending")
        self.label_joins = self._counter("driftloop_label_joins_total")
        self.join_expired = self._counter("driftloop_label_join_expired_total")
        self.labels_paused = self._gauge("driftloop_labels_paused")
        self.retrain_launches = self._counter("driftloop_retrain_launches_total")
        self.job_errors = self._counter("driftloop_job_errors_total")
        self.drift_reports = self._counter("driftloop_drift_reports_total")
        spec = _SPECS["driftloop_drift_report_seconds"]
        self.drift_report_seconds = Histogram(
            spec.name, spec.help, spec.labels, registry=registry, buckets=_REPORT_BUCKETS
        )
        spec = _SPECS["driftloop_checkpoint_bytes"]
        self.checkpoint_bytes = Histogram(
            spec.name, spec.help, spec.labels, registry=registry, buckets=_CHECKPOINT_BUCKETS
        )
        self.build_info = self._gauge("driftloop_build_info")
        self.build_info.labels(build_version, platform.python_version()).set(1)

    def _counter(self, name: str) -> Counter:
        spec = _SPECS[name]
        metric = Counter(spec.name, spec.help, spec.labels, registry=self.registry)
        self._by_name[name] = metric
        return metric

    def _gauge(self, name: str) -> Gauge:
        spec = _SPECS[name]
        metric = Gauge(spec.name, spec.help, spec.labels, registry=self.registry)
        self._by_name[name] = metric
        return metric

    # -- per window ---------------------------------------------------------------
    def observe_window(self, model: str, version: str, result: Mapping[str, Any]) -> None:
        """Set the drift, quality and performance gauges from a window result (design 6.1).

        Parts that are absent or null (``performance`` without joined labels,
        ``prediction_drift`` without predictions, ``estimated_performance`` without a
        CBPE reference) leave their gauges as they were.
        """
        version = str(version)
        self.windows.labels(model, version).inc()
        if result.get("rows") is not None:
            self.window_rows.labels(model, version).set(_number(result["rows"]))
        if result.get("drift_share") is not None:
            self.dataset_drift_share.labels(model, version).set(_number(result["drift_share"]))
        if result.get("drift_share_threshold") is not None:
            self.dataset_drift_share_threshold.labels(model, version).set(
                _number(result["drift_share_threshold"]))
        if result.get("dataset_drift") is not None:
            self.dataset_drift_detected.labels(model, version).set(
                int(bool(result["dataset_drift"]))
            )
        for feature, drift in (result.get("features") or {}).items():
            method = str(drift.get("method"))
            self.feature_drift_score.labels(model, version, feature, method).set(
                _number(drift.get("score"))
            )
            if drift.get("threshold") is not None:
                self.feature_drift_threshold.labels(model, version, feature, method).set(
                    _number(drift["threshold"]))
            self.feature_drift_detected.labels(model, version, feature).set(
                int(bool(drift.get("drift")))
            )
        prediction = result.get("prediction_drift")
        if prediction:
            self.prediction_drift_score.labels(model, version, str(prediction.get("method"))).set(
                _number(prediction.get("score"))
            )
            self.prediction_drift_detected.labels(model, version).set(
                int(bool(prediction.get("drift")))
            )
        quality = result.get("quality")
        if quality is not None:
            self.quality_violations.labels(model, version).set(len(quality.get("violations") or ()))
        self.observe_performance(model, version, result.get("performance"))
        estimated = result.get("estimated_performance")
        if estimated:
            # NaN while undefined: a gap in the graph, not a stale estimate
            self.performance_estimated.labels(model, version, str(estimated.get("metric"))).set(
                _number(estimated.get("value")))

    def observe_performance(
        self, model: str, version: str, performance: Mapping[str, Any] | None
    ) -> None:
        """Set the performance gauges from the ``performance`` part of a window result."""
        if not performance:
            return
        metric = str(performance.get("metric"))
        self.performance.labels(model, str(version), metric).set(_number(performance.get("value")))
        if performance.get("baseline") is not None:
            self.performance_baseline.labels(model, str(version), metric).set(
                _number(performance["baseline"])
            )
        max_drop = performance.get("max_drop")
        if performance.get("baseline") is not None and max_drop is not None:
            sign = -1.0 if metric in HIGHER_IS_BETTER else 1.0
            self.performance_threshold.labels(model, str(version), metric).set(
                _number(performance["baseline"]) + sign * _number(max_drop))
        self.performance_degraded.labels(model, str(version)).set(
            int(bool(performance.get("degraded")))
        )

    def observe_checkpoint(self, n_bytes: int) -> None:
        """The checkpoint state one persist wrote (0 when nothing had changed)."""
        self.checkpoint_bytes.observe(n_bytes)

    def observe_evaluation(self, model: str, seconds: float) -> None:
        self.window_evaluation_seconds.labels(model).observe(seconds)

    # -- per batch ----------------------------------------------------------------
    def count_events(
        self, model: str, version: str, kind: Literal["prediction", "label"], n: int
    ) -> None:
        if n:
            self.events.labels(model, str(version), kind).inc(n)

    def count_invalid(self, reason: str, n: int = 1) -> None:
        if n:
            self.events_invalid.labels(reason).inc(n)

    def count_dead_letters(self, n: int = 1) -> None:
        if n:
            self.dead_letters.inc(n)

    def count_late(self, model: str, n: int = 1) -> None:
        if n:
            self.events_late.labels(model).inc(n)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.labels(topic, str(partition)).set(max(0, lag))

    def set_lags(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Lag per (topic, partition); call with the partitions currently assigned."""
        for (topic, partition), lag in lags.items():
            self.set_lag(topic, partition, lag)

    def set_offsets(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """The next offset to handle per (topic, partition) this process consumes."""
        for (topic, partition), offset in offsets.items():
            self.consumer_offset.labels(topic, str(partition)).set(offset)

    def forget_partitions(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop the lag series of partitions revoked in a rebalance (another replica owns them)."""
        for topic, partition in partitions:
            for gauge in (self.consumer_lag, self.consumer_offset):
                with contextlib.suppress(KeyError):
                    gauge.remove(topic, str(partition))

    def forget_version(self, model: str, version: str) -> None:
        """Drop every series of a version that retired: series stay bounded however many
        versions a model goes through."""
        for spec in METRICS:
            if not {"model", "version"} <= set(spec.labels) or spec.type == "histogram":
                continue
            metric = self._by_name[spec.name]
            for family in metric.collect():
                for sample in family.samples:
                    labels = sample.labels
                    if labels.get("model") == model and labels.get("version") == version:
                        with contextlib.suppress(KeyError):
                            metric.remove(*(labels[name] for name in spec.labels))

    def set_join_pending(self, model: str, predictions: int, labels: int) -> None:
        self.join_pending.labels(model, "prediction").set(predictions)
        self.join_pending.labels(model, "label").set(labels)

    def set_labels_paused(self, n: int) -> None:
        self.labels_paused.set(n)

    def count_joined(self, model: str, n: int) -> None:
        if n:
            self.label_joins.labels(model).inc(n)

    def count_expired(self, model: str, predictions: int, labels: int) -> None:
        if predictions:
            self.join_expired.labels(model, "prediction").inc(predictions)
        if labels:
            self.join_expired.labels(model, "label").inc(labels)

    def count_job_error(self, job: str) -> None:
        self.job_errors.labels(job).inc()

    def count_drift_report(self, model: str, outcome: str) -> None:
        self.drift_reports.labels(model, outcome).inc()

    def observe_drift_report(self, model: str, seconds: float) -> None:
        self.drift_report_seconds.labels(model).observe(seconds)

    # -- triggers and canary ------------------------------------------------------
    def count_retrain_trigger(self, model: str, reason: str) -> None:
        self.retrain_triggers.labels(model, reason).inc()

    def count_retrain_launch(self, model: str, launcher: str, outcome: str) -> None:
        self.retrain_launches.labels(model, launcher, outcome).inc()

    def set_canary_status(
        self, model: str, status: Literal["running", "succeeded", "failed"]
    ) -> None:
        if status not in CANARY_STATUS:
            raise ValueError(
                f"canary status of {model}: got {status!r}, expected one of {list(CANARY_STATUS)}"
            )
        self.canary_status.labels(model).set(CANARY_STATUS[status])

    def count_canary_decision(self, model: str, decision: Literal["promote", "rollback"]) -> None:
        self.canary_decisions.labels(model, decision).inc()
