"""The fleet overview: every model and the service itself on one screen.

Rows, top to bottom: traffic and input quality, the models' drift and
performance, the actions driftloop took (retrains, canary decisions), and the
service's health (scrape status, build, consumer lag, evaluation time).

Counters that move only on an event (retrains, canary decisions) are drawn as
their cumulative value in steps, not as ``increase()``: a labelled counter is
born at 1 on its first event, and ``increase()`` never sees that first step.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards.common import (
    FLEET_UID,
    MODEL_UID,
    PanelBuilder,
    dashboard_links,
    dashed,
    doc_link,
    hide_columns,
    mappings,
    query,
    runbook,
    threshold_line,
    thresholds,
)
from dashboards.panels import stat_panel, state_timeline, table_panel, time_series

__all__ = ["fleet_overview"]

_DOC = "fleet-overview"
_OPEN_MODEL = (
    dashboard.DashboardLink("Open the model detail")
    .url(f"/d/{MODEL_UID}?var-model=${{__field.labels.model}}&${{__url_time_range}}")
)
_INVALID = "(sum(rate(driftloop_events_invalid_total[$__rate_interval])) or vector(0))"
_CANARY_STATUS = {"0": ("running", "blue"), "1": ("succeeded", "green"), "2": ("failed", "red")}


def _traffic() -> list[PanelBuilder]:
    return [
        time_series(
            "Predictions per second by model",
            "Prediction events driftloop consumed per second, per model. A model that stops "
            "receiving predictions it used to receive fires DriftloopNoTraffic.",
            [query('sum by (model) (rate(driftloop_events_total{kind="prediction"}'
                   '[$__rate_interval]))', "{{model}}")],
            unit="reqps", links=[runbook("DriftloopNoTraffic")],
        ).data_links([_OPEN_MODEL]),
        time_series(
            "Labels per second by model",
            "Ground-truth label events consumed per second, per model. Labels are joined "
            "with their predictions to measure realized performance.",
            [query('sum by (model) (rate(driftloop_events_total{kind="label"}'
                   '[$__rate_interval]))', "{{model}}")],
            unit="cps", span=6, links=[doc_link(_DOC)],
        ).data_links([_OPEN_MODEL]),
        stat_panel(
            "Invalid record share",
            "Share of consumed records that could not be decoded or validated and went to "
            "the dead-letter topic. Invalid records carry no trusted model name, so this is "
            "for all models together. The alert DriftloopInvalidRecordRateHigh fires above 5%.",
            [query(f"{_INVALID} / (sum(rate(driftloop_events_total[$__rate_interval])) "
                   f"+ {_INVALID})")],
            unit="percentunit", span=6, height=8, links=[runbook("DriftloopInvalidRecordRateHigh")],
        ).thresholds(thresholds((None, "green"), (0.01, "orange"), (0.05, "red"))),
        time_series(
            "Invalid records per second by reason",
            "Records sent to the dead-letter topic per second, by the reason slug in their "
            "driftloop_error header (malformed_json, missing_field, unknown_model, ...).",
            [query("sum by (reason) (rate(driftloop_events_invalid_total[$__rate_interval]))",
                   "{{reason}}")],
            unit="cps", links=[runbook("DriftloopInvalidRecordRateHigh")], bars=True,
        ),
        time_series(
            "Dead letters produced per second",
            "Records driftloop wrote to the dead-letter topic per second. It follows the "
            "invalid records; a gap between the two means producing dead letters failed.",
            [query("sum(rate(driftloop_dead_letters_total[$__rate_interval]))", "dead letters")],
            unit="cps", span=6, links=[runbook("DriftloopInvalidRecordRateHigh")],
        ),
        time_series(
            "Rows waiting to be joined",
            "Predictions waiting for their label, and labels waiting for their prediction, "
            "per model. They are dropped after performance.label_ttl.",
            [query("sum by (model, kind) (driftloop_label_join_pending)", "{{model}} {{kind}}")],
            unit="short", span=6, links=[doc_link(_DOC)],
        ),
    ]


def _models() -> list[PanelBuilder]:
    return [
        stat_panel(
            "Models in dataset drift",
            "Model versions whose last window shows dataset drift: at least "
            "models.<name>.drift.share of their features drifted from the training baseline.",
            [query("count(driftloop_dataset_drift_detected == 1) or vector(0)")],
            span=4, height=8, links=[runbook("DriftloopDatasetDrift")],
        ).thresholds(thresholds((None, "green"), (1, "red"))),
        stat_panel(
            "Models with degraded performance",
            "Model versions whose last labelled performance window dropped below the "
            "baseline by more than performance.max_drop.",
            [query("count(driftloop_performance_degraded == 1) or vector(0)")],
            span=4, height=8, links=[runbook("DriftloopPerformanceDegraded")],
        ).thresholds(thresholds((None, "green"), (1, "red"))),
        time_series(
            "Dataset drift share by model",
            "Share of features that drifted in each model version's last window (0 to "
            "100%). Dataset drift is declared at models.<name>.drift.share (50% unless "
            "configured); the model detail dashboard draws each model's own threshold.",
            [query("max by (model, version) (driftloop_dataset_drift_share)",
                   "{{model}} v{{version}}")],
            unit="percentunit", span=16, height=8, links=[runbook("DriftloopDatasetDrift")],
        ).min(0).max(1).data_links([_OPEN_MODEL]),
        time_series(
            "Realized performance against baseline",
            "Performance over joined (prediction, label) pairs of each model's last "
            "performance window (solid) and the reference value from training (dashed).",
            [query("max by (model, version, metric) (driftloop_performance)",
                   "{{model}} v{{version}} {{metric}}"),
             query("max by (model, version, metric) (driftloop_performance_baseline)",
                   "baseline {{model}} v{{version}} {{metric}}", ref_id="B")],
            unit="none", links=[runbook("DriftloopPerformanceDegraded")],
        ).decimals(3).override_by_regexp("^baseline .*", dashed("text")).data_links([_OPEN_MODEL]),
        time_series(
            "Performance minus baseline",
            "Realized performance minus the baseline value. For accuracy, f1, precision, "
            "recall and roc_auc below zero is worse; for log_loss, mae, rmse and mape "
            "(errors) above zero is worse.",
            [query("max by (model, version, metric) (driftloop_performance) - "
                   "max by (model, version, metric) (driftloop_performance_baseline)",
                   "{{model}} v{{version}} {{metric}}")],
            unit="none", links=[runbook("DriftloopPerformanceDegraded")],
        ).decimals(3).data_links([_OPEN_MODEL]),
    ]


def _actions() -> list[PanelBuilder]:
    return [
        time_series(
            "Retrains started",
            "Retrains driftloop's policy decided to start, per model and reason, counted "
            "since the service started (a step is one retrain).",
            [query("sum by (model, reason) (driftloop_retrain_triggers_total)",
                   "{{model}} {{reason}}")],
            unit="short", span=8, stepped=True, calcs=("lastNotNull",),
            links=[doc_link(_DOC)],
        ),
        time_series(
            "Retrain launches by outcome",
            "Launch attempts per model, launcher and outcome (started, failed, duplicate), "
            "counted since the service started. Failed launches are retried with backoff.",
            [query("sum by (model, launcher, outcome) (driftloop_retrain_launches_total)",
                   "{{model}} {{launcher}} {{outcome}}")],
            unit="short", span=8, stepped=True, calcs=("lastNotNull",),
            links=[doc_link(_DOC)],
        ),
        time_series(
            "Canary decisions",
            "Challenger versions promoted or rolled back, per model, counted since the "
            "service started.",
            [query("sum by (model, decision) (driftloop_canary_decisions_total)",
                   "{{model}} {{decision}}")],
            unit="short", span=8, stepped=True, calcs=("lastNotNull",),
            links=[runbook("DriftloopCanaryFailed")],
        ),
        state_timeline(
            "Canary status by model",
            "The canary analysis of each model: running, succeeded (promoted) or failed "
            "(rolled back). Empty while no canary has run.",
            [query("max by (model) (driftloop_canary_status)", "{{model}}")],
            span=24, links=[runbook("DriftloopCanaryFailed")],
        ).mappings(mappings(_CANARY_STATUS)),
    ]


def _service() -> list[PanelBuilder]:
    return [
        stat_panel(
            "driftloop up",
            "Whether Prometheus could scrape each driftloop instance (the up series of the "
            "driftloop job). DriftloopDown fires after 2 minutes down.",
            [query('up{job="driftloop"}', "{{instance}}")],
            span=6, height=6, links=[runbook("DriftloopDown")],
        ).mappings(mappings({"0": ("down", "red"), "1": ("up", "green")})),
        table_panel(
            "Build",
            "The driftloop version and Python version each instance runs.",
            [query("max by (instance, version, python) (driftloop_build_info)",
                   instant=True, table=True)],
            span=6, height=6, links=[doc_link(_DOC)],
        ).with_transformation(hide_columns("Time", "Value")),
        time_series(
            "Consumer lag by topic",
            "Records behind the end of the topics driftloop consumes, summed over "
            "partitions. DriftloopConsumerLagGrowing fires when it is above 1000 and growing "
            "for 15 minutes.",
            [query("sum by (topic) (driftloop_consumer_lag)", "{{topic}}")],
            unit="short", links=[runbook("DriftloopConsumerLagGrowing")],
        ).thresholds(thresholds((None, "green"), (1000, "red"))).thresholds_style(threshold_line()),
        time_series(
            "Window evaluation time (p95)",
            "95th percentile of the time to evaluate a closed window (drift, quality and "
            "performance), per model.",
            [query("histogram_quantile(0.95, sum by (le, model) "
                   "(rate(driftloop_window_evaluation_seconds_bucket[$__rate_interval])))",
                   "{{model}}")],
            unit="s", span=8, links=[doc_link(_DOC)],
        ),
        time_series(
            "Windows evaluated per minute",
            "Closed windows evaluated per minute, per model: how fast results arrive.",
            [query("sum by (model) (rate(driftloop_windows_total[$__rate_interval])) * 60",
                   "{{model}}")],
            unit="short", span=8, links=[doc_link(_DOC)],
        ),
        time_series(
            "Background job errors",
            "Errors of driftloop's scheduled jobs (retrain status polling, registry "
            "watch, label-join expiry, ...) counted since the service started, by job. "
            "A failing job runs again at its next time.",
            [query("sum by (job_name) (driftloop_job_errors_total)", "{{job_name}}")],
            unit="short", span=8, stepped=True, calcs=("lastNotNull",),
            links=[doc_link(_DOC)],
        ),
    ]


def fleet_overview() -> dashboard.Dashboard:
    builder = (
        dashboard.Dashboard("driftloop: fleet overview")
        .uid(FLEET_UID)
        .description("Every model driftloop monitors and the service itself.")
        .tags(["driftloop"])
        .time("now-6h", "now")
        .refresh("30s")
        .link(dashboard_links())
    )
    sections = (
        ("Traffic and input quality", _traffic()),
        ("Models: drift and performance", _models()),
        ("Actions: retrains and canaries", _actions()),
        ("Service health", _service()),
    )
    for title, panels in sections:
        builder = builder.with_row(dashboard.Row(title))
        for panel in panels:
            builder = builder.with_panel(panel)
    return builder
