"""The model detail dashboard: one model's drift, quality, performance and actions.

Variables: ``model`` (one), ``version`` and ``feature`` (several, or All); each
is a ``label_values`` query over driftloop's own series, so the lists follow
what the service exports. ``version`` and ``feature`` are matched with ``=~``
so that All (``.*``) and several values (``(1|2)``) both work.

Retrains and canary decisions are dashboard annotations
(:mod:`dashboards.annotations`): a marker on every time series where driftloop
started a retrain or promoted or rolled back a challenger.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models.dashboard import (
    DataTransformerConfig,
    DynamicConfigValue,
    VariableRefresh,
    VariableSort,
)

from dashboards.common import (
    DATASOURCE,
    MODEL_UID,
    PanelBuilder,
    dashboard_links,
    dashed,
    doc_link,
    mappings,
    query,
    runbook,
    sort_desc,
    thresholds,
)
from dashboards.panels import stat_panel, state_timeline, status_history, table_panel, time_series

__all__ = ["model_detail"]

_DOC = "model-detail"
_SEL = 'model="$model", version=~"$version"'
_FEATURES = f'{_SEL}, feature=~"$feature"'
_FLAG = {"0": ("no", "green"), "1": ("yes", "red")}
_CANARY_STATUS = {"0": ("running", "blue"), "1": ("succeeded", "green"), "2": ("failed", "red")}


def _variables() -> list[dashboard.QueryVariable]:
    def variable(name: str, label: str, expr: str, description: str) -> dashboard.QueryVariable:
        return (
            dashboard.QueryVariable(name).label(label).description(description)
            .query(expr).datasource(DATASOURCE)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
        )

    return [
        variable("model", "Model", "label_values(driftloop_events_total, model)",
                 "A model driftloop monitors (models.<name> in driftloop.yaml)."),
        variable("version", "Version", 'label_values(driftloop_events_total{model="$model"}, '
                 "version)", "Model versions seen in the prediction events.")
        .multi(True).include_all(True).all_value(".*"),
        variable("feature", "Feature", "label_values(driftloop_feature_drift_score"
                 f"{{{_SEL}}}, feature)", "Features of the model's baseline.")
        .multi(True).include_all(True).all_value(".*"),
    ]


def _summary() -> list[PanelBuilder]:
    def flag(title: str, description: str, metric: str, alert: str | None) -> PanelBuilder:
        return stat_panel(
            title, description, [query(f"max by (version) ({metric}{{{_SEL}}})", "v{{version}}")],
            links=[runbook(alert) if alert else doc_link(_DOC)],
        ).mappings(mappings(_FLAG))

    return [
        flag("Dataset drift", "Whether the last window shows dataset drift: at least "
             "models.<name>.drift.share of the features drifted.",
             "driftloop_dataset_drift_detected", "DriftloopDatasetDrift"),
        stat_panel(
            "Drifting features", "How many features drifted in the last window.",
            [query(f"sum by (version) (driftloop_feature_drift_detected{{{_SEL}}})",
                   "v{{version}}")],
            links=[runbook("DriftloopDatasetDrift")],
        ).thresholds(thresholds((None, "green"), (1, "orange"))),
        flag("Prediction drift", "Whether the distribution of the model's predictions in the "
             "last window drifted from training.", "driftloop_prediction_drift_detected", None),
        flag("Performance degraded", "Whether the last labelled performance window dropped "
             "below the baseline by more than performance.max_drop.",
             "driftloop_performance_degraded", "DriftloopPerformanceDegraded"),
        stat_panel(
            "Rows in the last window", "Rows (prediction events) in the last evaluated window.",
            [query(f"max by (version) (driftloop_window_rows{{{_SEL}}})", "v{{version}}")],
            unit="short", links=[doc_link(_DOC)],
        ),
        stat_panel(
            "Windows evaluated", "Windows evaluated since the service started.",
            [query(f"sum by (version) (driftloop_windows_total{{{_SEL}}})", "v{{version}}")],
            unit="short", links=[doc_link(_DOC)],
        ),
    ]


def _drift() -> list[PanelBuilder]:
    organize = DataTransformerConfig(id_val="organize", options={
        "excludeByName": {"Time": True},
        "indexByName": {"feature": 0, "Value #B": 1, "method": 2, "Value #A": 3, "Value #C": 4},
        "renameByName": {"feature": "Feature", "method": "Method", "Value #A": "Score",
                         "Value #B": "Drift", "Value #C": "Threshold"},
    })
    drift_cells = [
        DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
        DynamicConfigValue(id_val="mappings", value=mappings({"0": ("ok", "green"),
                                                              "1": ("drift", "red")})),
    ]
    return [
        time_series(
            "Dataset drift share",
            "Share of features that drifted in each window (solid) and the share at which "
            "dataset drift is declared, models.<name>.drift.share (dashed).",
            [query(f"max by (version) (driftloop_dataset_drift_share{{{_SEL}}})",
                   "share v{{version}}"),
             query(f"max by (version) (driftloop_dataset_drift_share_threshold{{{_SEL}}})",
                   "threshold v{{version}}", ref_id="B")],
            unit="percentunit", links=[runbook("DriftloopDatasetDrift")],
        ).min(0).max(1).override_by_regexp("^threshold .*", dashed("red")),
        status_history(
            "Feature drift over time",
            "One row per feature, one cell per scrape: red while the feature's last window "
            "drifted. Features that drift stand out as red bands.",
            [query(f"max by (feature) (driftloop_feature_drift_detected{{{_FEATURES}}})",
                   "{{feature}}")],
            links=[runbook("DriftloopDatasetDrift")],
        ).mappings(mappings({"0": ("ok", "green"), "1": ("drift", "red")})),
        table_panel(
            "Feature drift scores (last window)",
            "Each feature's drift method, score and the threshold it was compared with; "
            "drifting features first. Distances (wasserstein, jensenshannon, psi, linf) "
            "drift at or above the threshold; p-value tests (ks, chisquare, z) below it.",
            [query(f"max by (feature, method) (driftloop_feature_drift_score{{{_FEATURES}}})",
                   instant=True, table=True),
             query(f"max by (feature) (driftloop_feature_drift_detected{{{_FEATURES}}})",
                   ref_id="B", instant=True, table=True),
             query(f"max by (feature, method) (driftloop_feature_drift_threshold{{{_FEATURES}}})",
                   ref_id="C", instant=True, table=True)],
            links=[runbook("DriftloopDatasetDrift")],
        ).with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(organize)
        .sort_by([sort_desc("Drift")]).decimals(3).override_by_name("Drift", drift_cells),
        time_series(
            "Feature drift scores over time",
            "Each feature's drift statistic per window, labelled with its method. Methods "
            "have different scales: compare a score with its own threshold (table).",
            [query(f"max by (feature, method) (driftloop_feature_drift_score{{{_FEATURES}}})",
                   "{{feature}} ({{method}})")],
            unit="none", links=[doc_link(_DOC)],
        ).decimals(3),
        time_series(
            "Prediction drift score",
            "Drift of the model's predictions against their training distribution, per "
            "window (the method is in the legend).",
            [query(f"max by (version, method) (driftloop_prediction_drift_score{{{_SEL}}})",
                   "v{{version}} {{method}}")],
            unit="none", links=[doc_link(_DOC)],
        ).decimals(3),
        time_series(
            "Data-quality violations",
            "Violations in each window: missing values above the baseline's rate, unseen "
            "categories, values out of the training range, wrong types, missing columns.",
            [query(f"max by (version) (driftloop_data_quality_violations{{{_SEL}}})",
                   "v{{version}}")],
            unit="short", bars=True, links=[doc_link(_DOC)],
        ).thresholds(thresholds((None, "green"), (1, "orange"))),
    ]


def _performance() -> list[PanelBuilder]:
    selectors = f"{{{_SEL}}}"
    return [
        time_series(
            "Realized and estimated performance",
            "Performance over joined (prediction, label) pairs per performance window "
            "(solid), the training baseline (grey dashes), the value below which the window "
            "counts as degraded (red dashes) and the label-free estimate (dotted).",
            [query(f"max by (version, metric) (driftloop_performance{selectors})",
                   "{{metric}} v{{version}}"),
             query(f"max by (version, metric) (driftloop_performance_baseline{selectors})",
                   "baseline {{metric}} v{{version}}", ref_id="B"),
             query(f"max by (version, metric) (driftloop_performance_threshold{selectors})",
                   "threshold {{metric}} v{{version}}", ref_id="C"),
             query(f"max by (version, metric) (driftloop_performance_estimated{selectors})",
                   "estimated {{metric}} v{{version}}", ref_id="D")],
            unit="none", span=12, links=[runbook("DriftloopPerformanceDegraded")],
        ).decimals(3).override_by_regexp("^baseline .*", dashed("text"))
        .override_by_regexp("^threshold .*", dashed("red"))
        .override_by_regexp("^estimated .*", [DynamicConfigValue(
            id_val="custom.lineStyle", value={"fill": "dot", "dash": [0, 10]})]),
        time_series(
            "Rows waiting to be joined",
            "Predictions waiting for their label and labels waiting for their prediction; "
            "both are dropped after performance.label_ttl.",
            [query('sum by (kind) (driftloop_label_join_pending{model="$model"})', "{{kind}}")],
            unit="short", span=6, links=[doc_link(_DOC)],
        ),
        time_series(
            "Late events",
            "Events that arrived after their event-time window closed (windows with "
            "duration and allowed_lateness), counted since the service started.",
            [query('sum(driftloop_events_late_total{model="$model"})', "late events")],
            unit="short", span=6, stepped=True, links=[doc_link(_DOC)],
        ),
    ]


def _actions() -> list[PanelBuilder]:
    return [
        state_timeline(
            "Canary status",
            "The canary analysis of a challenger version: running, succeeded (promoted) or "
            "failed (rolled back). Empty while no canary has run for this model.",
            [query('max(driftloop_canary_status{model="$model"})', "canary")],
            height=8, links=[runbook("DriftloopCanaryFailed")],
        ).mappings(mappings(_CANARY_STATUS)),
        time_series(
            "Canary decisions",
            "Promotions and rollbacks, counted since the service started.",
            [query('sum by (decision) (driftloop_canary_decisions_total{model="$model"})',
                   "{{decision}}")],
            unit="short", span=6, stepped=True, calcs=("lastNotNull",),
            links=[runbook("DriftloopCanaryFailed")],
        ),
        time_series(
            "Retrains started",
            "Retrains the policy started, by reason, counted since the service started.",
            [query('sum by (reason) (driftloop_retrain_triggers_total{model="$model"})',
                   "{{reason}}")],
            unit="short", span=6, stepped=True, calcs=("lastNotNull",),
            links=[doc_link(_DOC)],
        ),
    ]


def _traffic() -> list[PanelBuilder]:
    return [
        time_series(
            "Events per second",
            "Prediction and label events of this model consumed per second, per version.",
            [query(f"sum by (version, kind) (rate(driftloop_events_total{{{_SEL}}}"
                   "[$__rate_interval]))", "{{kind}} v{{version}}")],
            unit="cps", links=[runbook("DriftloopNoTraffic")],
        ),
        time_series(
            "Window evaluation time (p95)",
            "95th percentile of the time to evaluate one of this model's closed windows.",
            [query("histogram_quantile(0.95, sum by (le) (rate("
                   'driftloop_window_evaluation_seconds_bucket{model="$model"}'
                   "[$__rate_interval])))", "p95")],
            unit="s", links=[doc_link(_DOC)],
        ),
    ]


def model_detail() -> dashboard.Dashboard:
    builder = (
        dashboard.Dashboard("driftloop: model detail")
        .uid(MODEL_UID)
        .description("One model: drift per feature, data quality, performance, canary and "
                     "retrains.")
        .tags(["driftloop"])
        .time("now-6h", "now")
        .refresh("30s")
        .link(dashboard_links())
    )
    for variable in _variables():
        builder = builder.with_variable(variable)
    sections = (
        ("Last window", _summary()),
        ("Drift", _drift()),
        ("Labels and performance", _performance()),
        ("Canary and retraining", _actions()),
        ("Traffic", _traffic()),
    )
    for title, panels in sections:
        builder = builder.with_row(dashboard.Row(title))
        for panel in panels:
            builder = builder.with_panel(panel)
    return builder
