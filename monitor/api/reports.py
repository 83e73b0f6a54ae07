"""``GET /api/v1/models/{model}/reports/latest`` and ``.../reports/{window_key}``: the
Evidently HTML report written when a drifted window closed.

Reports are stored compressed (``monitor.evaluate.report_files``) and sent as they
are to clients that accept gzip. An Evidently page runs its own scripts over data
that came from events (feature and category names), so it is served sandboxed:
``Content-Security-Policy: sandbox allow-scripts`` makes it an opaque origin that
can run its scripts but cannot read this API or its cookies, and it may fetch
nothing. A window key is ``p<partition>:<index>`` (``p0:7``, sent as ``p0%3A7`` or
as is); ``?version=`` picks a version when both champion and challenger have a
report of that key, else the newest is served.

Reads only: the router takes ``dependencies`` so the app can guard it like the
other read routes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import Response

from monitor.api.guards import require_model
from monitor.api.views import ErrorResponse
from monitor.evaluate import ReportFiles, StoredReport

__all__ = ["REPORT_CSP", "WINDOW_KEY", "create_report_router", "report_url"]

WINDOW_KEY = re.compile(r"p\d{1,9}:\d{1,18}")
# scripts run, in an opaque origin, and nothing is fetched (Evidently inlines everything)
REPORT_CSP = ("sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
              "style-src 'unsafe-inline'; img-src data: blob:; font-src data:")


def report_url(model: str, key: str, version: str | None = None) -> str:
    """The route of a window's report, quoted for an ``href``."""
    url = f"/api/v1/models/{quote(model, safe='')}/reports/{quote(key, safe='')}"
    return url if version is None else f"{url}?version={quote(version, safe='')}"


def _html(report: StoredReport, request: Request) -> Response:
    headers = {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff",
               "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    try:
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            body = report.gzip_bytes()
            headers["Content-Encoding"] = "gzip"
        else:
            body = report.html_bytes()
    except FileNotFoundError:  # pruned between listing and reading
        raise HTTPException(404, f"the report of window {report.key} of {report.model} was "
                                 "just replaced or pruned; ask again") from None
    return Response(body, 200, headers, media_type="text/html; charset=utf-8")


def _files(reports: ReportFiles | None) -> ReportFiles:
    if reports is None:
        raise HTTPException(404, "drift reports are off (reports.enabled is false in the "
                                 "service's config)")
    return reports


def create_report_router(reports: ReportFiles | None,
                         dependencies: Sequence[DependsParam] = ()) -> APIRouter:
    """The two report routes; ``reports`` None (reports off) answers 404 saying so."""
    router = APIRouter(tags=["reports"], dependencies=list(dependencies))
    html: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/html": {}}, "description": "Evidently's HTML drift report"},
        404: {"model": ErrorResponse},
    }

    @router.get("/api/v1/models/{model}/reports/latest", response_class=Response,
                responses=html)
    def latest_report(model: Annotated[str, Depends(require_model)],
                      request: Request) -> Response:
        """The report of the newest drifted window (by its end time) that has one."""
        found = _files(reports).latest(model)
        if found is None:
            raise HTTPException(404, f"no drift report for {model} yet: one is written when "
                                     "a window closes with drift and the baseline has a "
                                     "reference sample")
        return _html(found, request)

    @router.get("/api/v1/models/{model}/reports/{window_key}", response_class=Response,
                responses=html)
    def window_report(
        model: Annotated[str, Depends(require_model)],
        window_key: str,
        request: Request,
        version: Annotated[str | None, Query(max_length=200,
                                             description="model version")] = None,
    ) -> Response:
        """The report of one drifted window, by its key ``p<partition>:<index>``."""
        files = _files(reports)
        if not WINDOW_KEY.fullmatch(window_key):
            shown = window_key if len(window_key) <= 40 else window_key[:37] + "..."
            raise HTTPException(404, f"window key {shown!r}: expected p<partition>:<index>, "
                                     "e.g. p0:7")
        found = files.find(model, window_key, version)
        if found is None:
            kept = [r.key if version is None else f"{r.key} (version {r.version})"
                    for r in files.newest_first(model)]
            which = f" version {version}" if version is not None else ""
            raise HTTPException(404, (
                f"no drift report for window {window_key} of {model}{which}: reports are "
                f"written for drifted windows only, and the last {files.keep} are kept "
                f"(reports.keep); kept now: {', '.join(kept[:files.keep]) or 'none'}"))
        return _html(found, request)

    return router
