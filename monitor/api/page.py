"""``GET /``: a page for people, for teams without Grafana and for the demo.

Server-rendered from the API's own data (stored window results, decisions, canary
state, retrain runs, the reports on disk) with a Jinja2 template
(``monitor/api/templates/page.html``, autoescaped: model, feature and category
names and decision sentences come from events and alerts). Readable without
network access and without JavaScript: inline CSS, inline SVG (tooltips are SVG
``<title>`` elements), no script at all, and a Content-Security-Policy that
allows none. Per model: champion and challenger, the features x windows drift
heatmap, dataset drift share and performance against the baseline over the
recent windows, the last decisions and retrain runs, and links to the report of
each drifted window.

Reads only: the router takes ``dependencies`` so the app can guard it like the
other read routes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.params import Depends as DependsParam
from fastapi.responses import Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from detectors import HIGHER_IS_BETTER
from monitor.api.page_charts import (
    Heatmap,
    LineChart,
    drift_heatmap,
    line_chart,
    window_label,
)
from monitor.api.reports import report_url
from monitor.api.views import iso_ms
from monitor.evaluate import ReportFiles
from monitor.store import CanaryState, Store

__all__ = [
    "PAGE_CSP",
    "DriftedWindow",
    "LastWindow",
    "ModelPage",
    "create_page_router",
    "model_page",
    "render_page",
]

DECISIONS_SCANNED = 500
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class DriftedWindow:
    label: str
    start: str | None
    end: str | None
    share: float | None
    features: tuple[str, ...]
    report_url: str | None


@dataclass(frozen=True)
class LastWindow:
    label: str
    start: str | None
    end: str | None
    rows: int | None
    dataset_drift: bool
    share: float | None
    share_threshold: float | None


@dataclass(frozen=True)
class ModelPage:
    name: str
    champion: str | None
    challenger: str | None
    canary: CanaryState | None
    last: LastWindow | None
    heatmap: Heatmap
    share_chart: LineChart
    performance_chart: LineChart
    performance_metric: str | None
    drifted: tuple[DriftedWindow, ...]
    decisions: tuple[tuple[str, str, str], ...]  # (at, kind, sentence)
    runs: tuple[tuple[str, str, str, str], ...]  # (started, reason, launcher, status)
    reports_on: bool
    policy_note: tuple[str, str] | None = None  # the latest "no retrain" sentence and time


def _performance(windows: Sequence[Mapping[str, Any]]) -> tuple[str | None, dict[str, Any]]:
    """The metric and its value, baseline and threshold lines (one point per window)."""
    values: list[float | None] = []
    baselines: list[float | None] = []
    thresholds: list[float | None] = []
    metric = None
    for result in windows:
        perf = result.get("performance") or {}
        baseline, drop = perf.get("baseline"), perf.get("max_drop")
        values.append(perf.get("value"))
        baselines.append(baseline)
        if baseline is None or drop is None:
            thresholds.append(None)
        elif perf.get("metric") in HIGHER_IS_BETTER:  # else a loss or an error: rises are bad
            thresholds.append(baseline - drop)
        else:
            thresholds.append(baseline + drop)
        metric = perf.get("metric") or metric  # the newest window's
    lines = {str(metric or "performance"): ("value", values), "baseline": ("baseline", baselines),
             "degraded beyond": ("threshold", thresholds)}
    return metric, lines


def model_page(name: str, windows: Sequence[Mapping[str, Any]], *,
               champion: str | None, challenger: str | None, canary: CanaryState | None,
               decisions: Sequence[tuple[str, str, str]],
               runs: Sequence[tuple[str, str, str, str]],
               reports: Mapping[str, str] | None,
               decisions_shown: int = 10) -> ModelPage:
    """One model's section from its window results (oldest first) and decisions (newest
    first); ``reports`` maps a window label (``v1 p0:7``) to its report's URL, None when
    reports are off. Decisions of kind ``hold`` (the policy saying why it does not
    retrain, once per window) are left out of the list, which is for what was done
    (retrains, launches, promotions, rollbacks); the newest is shown on its own."""
    urls = reports or {}
    labels = [window_label(w) for w in windows]
    share_chart = line_chart(labels, {
        "drift share": ("value", [w.get("drift_share") for w in windows]),
        "dataset drift at": ("threshold", [w.get("drift_share_threshold") for w in windows]),
    }, bounds=(0.0, 1.0), empty="no window closed yet")
    metric, lines = _performance(windows)
    performance_chart = line_chart(
        labels, lines, empty="no realized performance yet: it needs labels joined to "
                             "predictions, which arrive later")
    drifted = tuple(
        DriftedWindow(label, w.get("start"), w.get("end"), w.get("drift_share"),
                      tuple(f for f, s in (w.get("features") or {}).items() if s.get("drift")),
                      urls.get(label))
        for label, w in reversed(list(zip(labels, windows, strict=True)))
        if w.get("dataset_drift") or any(s.get("drift") for s in (w.get("features") or {})
                                         .values()))
    last = None
    if windows:
        newest = windows[-1]
        last = LastWindow(labels[-1], newest.get("start"), newest.get("end"), newest.get("rows"),
                          bool(newest.get("dataset_drift")), newest.get("drift_share"),
                          newest.get("drift_share_threshold"))
    acted = tuple(d for d in decisions if d[1] != "hold")[:decisions_shown]
    hold = next(((at, sentence) for at, kind, sentence in decisions if kind == "hold"), None)
    return ModelPage(name, champion, challenger, canary, last,
                     drift_heatmap(windows, urls), share_chart, performance_chart, metric,
                     drifted, acted, tuple(runs), reports is not None, hold)


@functools.cache
def _environment() -> Environment:
    return Environment(loader=PackageLoader("monitor.api", "templates"),
                       autoescape=select_autoescape(["html"], default=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{float(value):.{digits}f}"


def render_page(models: Sequence[ModelPage], generated_at: str) -> str:
    template = _environment().get_template("page.html")
    return template.render(models=models, generated_at=generated_at, fmt=_fmt)


def create_page_router(
    store: Store,
    *,
    models: Sequence[str],
    versions: Callable[[str], tuple[str | None, str | None]],
    reports: ReportFiles | None,
    decisions_limit: int = 10,
    dependencies: Sequence[DependsParam] = (),
) -> APIRouter:
    """``GET /`` for the configured ``models``; ``versions(model)`` gives (champion,
    challenger)."""
    router = APIRouter(tags=["page"], dependencies=list(dependencies))

    @router.get("/", response_class=Response,
                responses={200: {"content": {"text/html": {}},
                                 "description": "the page (HTML)"}})
    def page(windows: Annotated[int, Query(ge=1, le=200,
                                           description="windows per model")] = 24) -> Response:
        """Models, drift heatmap, drift share, performance, decisions and report links."""
        sections = []
        for name in models:
            champion, challenger = versions(name)
            kept = None if reports is None else {
                f"v{r.version} {r.key}": report_url(name, r.key, r.version)
                for r in reports.newest_first(name)}
            sections.append(model_page(
                name, list(reversed(store.windows(name, limit=windows))),
                champion=champion, challenger=challenger, canary=store.get_canary(name),
                # holds come once per window: read past them to the decisions that acted
                decisions=[(iso_ms(d.at_ms) or "", d.kind, d.sentence)
                           for d in store.decisions(name, limit=DECISIONS_SCANNED)],
                runs=[(iso_ms(r.started_at_ms) or "", r.reason, r.launcher, r.status)
                      for r in store.runs(name, limit=5)],
                reports=kept, decisions_shown=decisions_limit))
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return Response(render_page(sections, now), 200, {
            "Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache"}, media_type="text/html; charset=utf-8")

    return router
