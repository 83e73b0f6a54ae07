"""The metrics of design section 8 on a fresh registry, read back with get_sample_value."""

from __future__ import annotations

import math
import shutil
import subprocess
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.metrics import METRICS, Metrics

# design section 8, copied here on purpose: dashboards and alert rules depend on it
DESIGN_METRICS = {
    "driftloop_events_total": ("counter", {"model", "version", "kind"}),
    "driftloop_events_invalid_total": ("counter", {"reason"}),
    "driftloop_windows_total": ("counter", {"model", "version"}),
    "driftloop_feature_drift_score": ("gauge", {"model", "version", "feature", "method"}),
    "driftloop_feature_drift_detected": ("gauge", {"model", "version", "feature"}),
    "driftloop_dataset_drift_share": ("gauge", {"model", "version"}),
    "driftloop_dataset_drift_detected": ("gauge", {"model", "version"}),
    "driftloop_prediction_drift_score": ("gauge", {"model", "version", "method"}),
    "driftloop_performance": ("gauge", {"model", "version", "metric"}),
    "driftloop_performance_degraded": ("gauge", {"model", "version"}),
    "driftloop_retrain_triggers_total": ("counter", {"model", "reason"}),
    "driftloop_canary_status": ("gauge", {"model"}),
    "driftloop_canary_decisions_total": ("counter", {"model", "decision"}),
    "driftloop_consumer_lag": ("gauge", {"topic", "partition"}),
    "driftloop_window_evaluation_seconds": ("histogram", {"model"}),
}

WINDOW = {
    "model": "carloan",
    "version": "3",
    "window": 7,
    "first_offset": None,
    "start": "2019-05-01T00:00:00Z",
    "end": "2019-05-31T08:00:00Z",
    "rows": 5000,
    "dataset_drift": True,
    "drift_share": 0.57,
    "drift_share_threshold": 0.5,
    "features": {
        "car_value": {"method": "wasserstein", "score": 0.41, "threshold": 0.1, "drift": True},
        "salary_range": {
            "method": "jensenshannon",
            "score": 0.02,
            "threshold": 0.1,
            "drift": False,
        },
    },
    "prediction_drift": {"method": "jensenshannon", "score": 0.22, "threshold": 0.1, "drift": True},
    "quality": {
        "missing": {"salary_range": 0.22},
        "unseen_categories": {},
        "violations": ["a", "b"],
    },
    "performance": {
        "metric": "accuracy",
        "value": 0.915,
        "baseline": 0.944,
        "degraded": True,
        "labeled_rows": 5000,
        "max_drop": 0.02,
    },
    "estimated_performance": {
        "metric": "accuracy", "value": 0.902, "lower": 0.89, "upper": 0.914,
        "baseline": 0.944, "threshold": 0.931, "degraded": True, "status": "degraded",
        "n": 5000,
    },
}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, build_version="0.1.0")


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def _fill(metrics: Metrics) -> None:
    """One call of every helper, so every metric has a series."""
    metrics.observe_window("carloan", "3", WINDOW)
    metrics.observe_evaluation("carloan", 0.02)
    metrics.count_events("carloan", "3", "prediction", 10)
    metrics.count_invalid("malformed_json", 2)
    metrics.count_dead_letters(2)
    metrics.count_late("carloan", 1)
    metrics.set_lag("predictions", 0, 12)
    metrics.set_offsets({("predictions", 0): 4242})
    metrics.set_join_pending("carloan", 5, 1)
    metrics.count_joined("carloan", 4)
    metrics.count_expired("carloan", 1, 2)
    metrics.count_retrain_trigger("carloan", "dataset_drift")
    metrics.count_retrain_launch("carloan", "command", "started")
    metrics.set_canary_status("carloan", "running")
    metrics.count_canary_decision("carloan", "promote")
    metrics.count_job_error("retrain")
    metrics.count_drift_report("carloan", "written")
    metrics.observe_drift_report("carloan", 0.5)


def test_design_metrics_have_their_names_types_and_labels(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    _fill(metrics)
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, labels) in DESIGN_METRICS.items():
        family_name = name.removesuffix("_total") if kind == "counter" else name
        family = families[family_name]
        assert family.type == kind, name
        sample_names = {s.name for s in family.samples}
        assert name in sample_names or f"{name}_bucket" in sample_names, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)


def test_metrics_table_agrees_with_what_is_registered(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    _fill(metrics)
    text = generate_latest(registry).decode()
    exposed = {
        s.name
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if not s.name.endswith(("_created", "_bucket", "_count", "_sum"))
    }
    histograms = {spec.name for spec in METRICS if spec.type == "histogram"}
    assert {spec.name for spec in METRICS} <= exposed | histograms


def test_exposition_passes_promtool_lint(registry: CollectorRegistry, metrics: Metrics) -> None:
    _fill(metrics)
    promtool = shutil.which("promtool")
    assert promtool, "promtool not installed (Debian package prometheus)"
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_observe_window_sets_gauges_from_a_window_result(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.observe_window("carloan", "3", WINDOW)
    mv = {"model": "carloan", "version": "3"}
    assert _value(registry, "driftloop_windows_total", **mv) == 1
    assert _value(registry, "driftloop_window_rows", **mv) == 5000
    assert _value(registry, "driftloop_dataset_drift_share", **mv) == pytest.approx(0.57)
    assert _value(registry, "driftloop_dataset_drift_detected", **mv) == 1
    assert (
        _value(
            registry,
            "driftloop_feature_drift_score",
            **mv,
            feature="car_value",
            method="wasserstein",
        )
        == 0.41
    )
    assert _value(registry, "driftloop_feature_drift_detected", **mv, feature="car_value") == 1
    assert _value(registry, "driftloop_feature_drift_detected", **mv, feature="salary_range") == 0
    assert (
        _value(registry, "driftloop_prediction_drift_score", **mv, method="jensenshannon") == 0.22
    )
    assert _value(registry, "driftloop_prediction_drift_detected", **mv) == 1
    assert _value(registry, "driftloop_data_quality_violations", **mv) == 2
    assert _value(registry, "driftloop_performance", **mv, metric="accuracy") == 0.915
    assert _value(registry, "driftloop_performance_baseline", **mv, metric="accuracy") == 0.944
    assert _value(registry, "driftloop_performance_degraded", **mv) == 1
    assert _value(registry, "driftloop_performance_estimated", **mv, metric="accuracy") == 0.902


def test_estimated_performance_is_nan_while_undefined_and_kept_without_a_reference(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    mv = {"model": "carloan", "version": "3"}
    metrics.observe_window("carloan", "3", WINDOW)
    metrics.observe_window("carloan", "3", {**WINDOW, "estimated_performance": None})
    assert _value(registry, "driftloop_performance_estimated", **mv, metric="accuracy") == 0.902
    inconclusive = {**WINDOW["estimated_performance"], "value": None, "lower": None,
                    "upper": None, "degraded": False, "status": "inconclusive", "n": 12}
    metrics.observe_window("carloan", "3", {**WINDOW, "estimated_performance": inconclusive})
    value = _value(registry, "driftloop_performance_estimated", **mv, metric="accuracy")
    assert value is not None and math.isnan(value)


def test_window_without_labels_keeps_the_last_performance(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.observe_window("carloan", "3", WINDOW)
    calm: dict[str, Any] = {
        **WINDOW,
        "dataset_drift": False,
        "drift_share": 0.0,
        "performance": None,
    }
    metrics.observe_window("carloan", "3", calm)
    mv = {"model": "carloan", "version": "3"}
    assert _value(registry, "driftloop_windows_total", **mv) == 2
    assert _value(registry, "driftloop_dataset_drift_detected", **mv) == 0
    assert _value(registry, "driftloop_performance", **mv, metric="accuracy") == 0.915


def test_inconclusive_feature_score_is_nan_and_not_detected(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    window = {
        **WINDOW,
        "features": {"x": {"method": "ks", "score": None, "threshold": 0.05, "drift": None}},
    }
    metrics.observe_window("carloan", "3", window)
    score = _value(
        registry,
        "driftloop_feature_drift_score",
        model="carloan",
        version="3",
        feature="x",
        method="ks",
    )
    assert score is not None and math.isnan(score)
    assert (
        _value(
            registry, "driftloop_feature_drift_detected", model="carloan", version="3", feature="x"
        )
        == 0
    )


def test_batch_counters_add_up(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.count_events("carloan", "3", "prediction", 100)
    metrics.count_events("carloan", "3", "prediction", 50)
    metrics.count_events("carloan", "3", "label", 0)
    metrics.count_invalid("malformed_json", 3)
    metrics.count_invalid("malformed_json")
    assert (
        _value(registry, "driftloop_events_total", model="carloan", version="3", kind="prediction")
        == 150
    )
    assert (
        _value(registry, "driftloop_events_total", model="carloan", version="3", kind="label")
        is None
    )
    assert _value(registry, "driftloop_events_invalid_total", reason="malformed_json") == 4


def test_lag_is_set_per_partition_and_forgotten_on_revoke(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.set_lags({("predictions", 0): 120, ("predictions", 1): -3})
    assert _value(registry, "driftloop_consumer_lag", topic="predictions", partition="0") == 120
    assert _value(registry, "driftloop_consumer_lag", topic="predictions", partition="1") == 0
    metrics.forget_partitions([("predictions", 0), ("labels", 7)])
    assert _value(registry, "driftloop_consumer_lag", topic="predictions", partition="0") is None


def test_evaluation_time_histogram_counts(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.observe_evaluation("carloan", 0.004)
    metrics.observe_evaluation("carloan", 2.0)
    assert _value(registry, "driftloop_window_evaluation_seconds_count", model="carloan") == 2
    assert (
        _value(registry, "driftloop_window_evaluation_seconds_bucket", model="carloan", le="0.005")
        == 1
    )


def test_canary_status_codes_and_refusal(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.set_canary_status("carloan", "failed")
    assert _value(registry, "driftloop_canary_status", model="carloan") == 2
    with pytest.raises(ValueError, match="expected one of"):
        metrics.set_canary_status("carloan", "paused")  # type: ignore[arg-type]


def test_join_and_trigger_helpers(registry: CollectorRegistry, metrics: Metrics) -> None:
    _fill(metrics)
    assert _value(registry, "driftloop_label_join_pending", model="carloan", kind="label") == 1
    assert (
        _value(registry, "driftloop_label_join_expired_total", model="carloan", kind="label") == 2
    )
    assert (
        _value(
            registry, "driftloop_retrain_triggers_total", model="carloan", reason="dataset_drift"
        )
        == 1
    )
    assert (
        _value(
            registry,
            "driftloop_retrain_launches_total",
            model="carloan",
            launcher="command",
            outcome="started",
        )
        == 1
    )
    assert (
        _value(registry, "driftloop_canary_decisions_total", model="carloan", decision="promote")
        == 1
    )


def test_two_instances_on_fresh_registries_do_not_collide() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics(first).count_invalid("x")
    Metrics(second)
    assert first.get_sample_value("driftloop_events_invalid_total", {"reason": "x"}) == 1
    assert second.get_sample_value("driftloop_events_invalid_total", {"reason": "x"}) is None
    assert REGISTRY.get_sample_value("driftloop_events_invalid_total", {"reason": "x"}) is None


def test_build_info_is_one(registry: CollectorRegistry, metrics: Metrics) -> None:
    samples = [s for f in registry.collect() for s in f.samples if s.name == "driftloop_build_info"]
    assert len(samples) == 1 and samples[0].value == 1 and samples[0].labels["version"] == "0.1.0"


def test_thresholds_are_exported_beside_the_values_they_bound(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.observe_window("carloan", "3", WINDOW)
    labels = {"model": "carloan", "version": "3"}
    assert registry.get_sample_value("driftloop_dataset_drift_share_threshold", labels) == 0.5
    assert registry.get_sample_value(
        "driftloop_feature_drift_threshold",
        {**labels, "feature": "car_value", "method": "wasserstein"}) == 0.1
    # accuracy: higher is better, so the bound is the baseline less max_drop
    assert registry.get_sample_value(
        "driftloop_performance_threshold", {**labels, "metric": "accuracy"}
    ) == pytest.approx(0.944 - 0.02)
    metrics.observe_performance("carloan", "3", {"metric": "rmse", "value": 3.0,
                                                 "baseline": 2.0, "max_drop": 0.5})
    assert registry.get_sample_value(
        "driftloop_performance_threshold", {**labels, "metric": "rmse"}) == pytest.approx(2.5)


def test_a_retired_version_leaves_no_series_behind(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.observe_window("carloan", "3", WINDOW)
    metrics.observe_window("carloan", "4", WINDOW)
    metrics.count_events("carloan", "3", "prediction", 5)
    metrics.forget_version("carloan", "3")
    text = generate_latest(registry).decode()
    assert 'version="3"' not in text
    assert 'version="4"' in text
