"""Panel factories with driftloop's defaults: the fixed datasource, a description,
a unit, a size, and a link to the runbook or panel documentation.

Each factory returns the SDK builder, so a dashboard module chains whatever
else a panel needs (thresholds, mappings, overrides).
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import (
    dashboard,
    prometheus,
    stat,
    statetimeline,
    statushistory,
    table,
    timeseries,
)
from grafana_foundation_sdk.models import common

from dashboards.common import DATASOURCE, legend

__all__ = ["stat_panel", "state_timeline", "status_history", "table_panel", "time_series"]


def _sized(
    panel: timeseries.Panel
    | stat.Panel
    | table.Panel
    | statushistory.Panel
    | statetimeline.Panel,
    span: int,
    height: int,
    links: Sequence[dashboard.DashboardLink],
) -> None:
    panel.datasource(DATASOURCE).span(span).height(height)
    if links:
        panel.links(list(links))


def time_series(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    unit: str,
    span: int = 12,
    height: int = 8,
    links: Sequence[dashboard.DashboardLink] = (),
    stepped: bool = False,
    bars: bool = False,
    calcs: Sequence[str] = ("lastNotNull", "max"),
) -> timeseries.Panel:
    """A time series with a table legend (last and max by default).

    ``stepped``: counters that only move on an event (retrains, canary
    decisions) read best as steps. ``bars``: one bar per point.
    """
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .targets(list(targets))
        .unit(unit)
        .legend(legend(table=True, calcs=calcs))
        .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                 .sort(common.SortOrder.DESCENDING))
        .fill_opacity(10)
        .line_width(2)
        .show_points(common.VisibilityMode.NEVER)
    )
    if stepped:
        panel = panel.line_interpolation(common.LineInterpolation.STEP_AFTER)
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    _sized(panel, span, height, links)
    return panel


def stat_panel(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    unit: str = "none",
    span: int = 4,
    height: int = 5,
    links: Sequence[dashboard.DashboardLink] = (),
) -> stat.Panel:
    """The last value of each series, coloured by the panel's thresholds or mappings."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .targets(list(targets))
        .unit(unit)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.AUTO)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    _sized(panel, span, height, links)
    return panel


def table_panel(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    span: int = 12,
    height: int = 8,
    links: Sequence[dashboard.DashboardLink] = (),
) -> table.Panel:
    panel = table.Panel().title(title).description(description).targets(list(targets))
    _sized(panel, span, height, links)
    return panel


def status_history(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    span: int = 12,
    height: int = 8,
    links: Sequence[dashboard.DashboardLink] = (),
) -> statushistory.Panel:
    """A grid: one row per series, one cell per point, coloured by value (a heatmap of flags)."""
    panel = (
        statushistory.Panel()
        .title(title)
        .description(description)
        .targets(list(targets))
        .show_value(common.VisibilityMode.NEVER)
        .legend(legend())
    )
    _sized(panel, span, height, links)
    return panel


def state_timeline(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    span: int = 12,
    height: int = 6,
    links: Sequence[dashboard.DashboardLink] = (),
) -> statetimeline.Panel:
    """One band per series whose colour and text follow the panel's value mappings."""
    panel = (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .targets(list(targets))
        .show_value(common.VisibilityMode.AUTO)
        .merge_values(True)
        .legend(legend())
    )
    _sized(panel, span, height, links)
    return panel
