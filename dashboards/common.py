"""Building blocks shared by the driftloop dashboards.

Every panel and query names the one Prometheus datasource by its fixed uid
(:data:`DATASOURCE_UID`), the uid that ``grafana/provisioning/datasources``
gives it, so the dashboards work on any Grafana provisioned from ``grafana/``
without picking a datasource by hand.

Panels link to the runbook section of the alert that watches the same signal
(``docs/runbooks.md#<alert name in lower case>``) or, when no alert watches it,
to the panel table in ``docs/dashboards.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Panel,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMapping,
    ValueMappingResult,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

__all__ = [
    "DASHBOARD_DOCS",
    "DATASOURCE",
    "DATASOURCE_UID",
    "DOCS_URL",
    "FLEET_UID",
    "MODEL_UID",
    "RUNBOOKS",
    "PanelBuilder",
    "dashboard_links",
    "dashed",
    "doc_link",
    "hide_columns",
    "legend",
    "mappings",
    "query",
    "runbook",
    "sort_desc",
    "threshold_line",
    "thresholds",
]

PanelBuilder = Builder[Panel]

DATASOURCE_UID = "driftloop-prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)

FLEET_UID = "driftloop-fleet"
MODEL_UID = "driftloop-model"

# the same base as the runbook_url annotations of prometheus/rules/driftloop.rules.yml
DOCS_URL = "https://github.com/driftloop/driftloop/blob/main/docs"
RUNBOOKS = f"{DOCS_URL}/runbooks.md"
DASHBOARD_DOCS = f"{DOCS_URL}/dashboards.md"


def query(
    expr: str,
    legend_format: str | None = None,
    *,
    ref_id: str = "A",
    instant: bool = False,
    table: bool = False,
) -> prometheus.Dataquery:
    """A Prometheus query on the fixed datasource.

    ``ref_id`` is set explicitly: the SDK leaves it empty otherwise and Grafana
    then cannot tell the queries of a panel apart. ``table`` asks for one row
    per series (instant queries for tables).
    """
    built = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
    if legend_format is not None:
        built = built.legend_format(legend_format)
    built = built.instant() if instant else built.range()
    if table:
        built = built.format(PromQueryFormat.TABLE)
    return built


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=value, color=color) for value, color in steps]
    )


def threshold_line() -> common_builders.GraphThresholdsStyleConfig:
    """Draw a time series' thresholds as a dashed line (the alert's threshold)."""
    return common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)


def hide_columns(*names: str) -> DataTransformerConfig:
    """A transformation hiding table columns (Prometheus' Time and Value of info metrics)."""
    return DataTransformerConfig(
        id_val="organize", options={"excludeByName": dict.fromkeys(names, True)})


def mappings(values: Mapping[str, tuple[str, str]]) -> list[ValueMapping]:
    """Value -> (text, colour) for gauges that hold a code (0/1 flags, canary status)."""
    return [
        ValueMap(
            options={
                value: ValueMappingResult(text=text, color=color, index=index)
                for index, (value, (text, color)) in enumerate(values.items())
            }
        )
    ]


def legend(*, table: bool = False, calcs: Sequence[str] = ()) -> common_builders.VizLegendOptions:
    """A legend at the bottom (a table with ``calcs`` such as "lastNotNull", "max")."""
    mode = common.LegendDisplayMode.TABLE if table else common.LegendDisplayMode.LIST
    return (
        common_builders.VizLegendOptions()
        .display_mode(mode)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(list(calcs))
    )


def dashed(color: str) -> list[DynamicConfigValue]:
    """Override properties drawing a reference series (baseline, threshold) as a dashed line."""
    return [
        DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
        DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color}),
        DynamicConfigValue(id_val="custom.fillOpacity", value=0),
    ]


def runbook(alert: str) -> dashboard.DashboardLink:
    """A panel link to the runbook section of ``alert`` (anchors are lower-case names)."""
    return (
        dashboard.DashboardLink(f"Runbook: {alert}")
        .url(f"{RUNBOOKS}#{alert.lower()}")
        .target_blank(True)
    )


def doc_link(anchor: str, title: str = "What this panel shows") -> dashboard.DashboardLink:
    """A panel link to a section of ``docs/dashboards.md`` (its GitHub heading anchor)."""
    return dashboard.DashboardLink(title).url(f"{DASHBOARD_DOCS}#{anchor}").target_blank(True)


def dashboard_links() -> dashboard.DashboardLink:
    """A drop-down of every dashboard tagged driftloop, keeping the time range and variables."""
    return (
        dashboard.DashboardLink("driftloop dashboards")
        .type(DashboardLinkType.DASHBOARDS)
        .tags(["driftloop"])
        .as_dropdown(True)
        .keep_time(True)
        .include_vars(True)
    )


def sort_desc(column: str) -> common_builders.TableSortByFieldState:
    """A table sorted by ``column``, highest first."""
    return common_builders.TableSortByFieldState().display_name(column).desc(True)
