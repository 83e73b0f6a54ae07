"""``GET /api/v1/models/{model}/reports/latest`` and ``/reports/{window_key}`` through
FastAPI's TestClient: stored pages served sandboxed, 404 with a sentence otherwise."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from monitor.api import Dependency, ServiceStatus, create_app
from monitor.evaluate import ReportFiles
from monitor.store import Store

READY = ServiceStatus((Dependency("broker", True),))


@pytest.fixture
def files(tmp_path: Path) -> ReportFiles:
    return ReportFiles(tmp_path / "reports", keep=3)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def client(store: Store, reports: ReportFiles | None, **options: Any) -> TestClient:
    return TestClient(create_app(store, CollectorRegistry(), status=lambda: READY,
                                 auth_token=None, models=["carloan", "fraud"], reports=reports,
                                 **options))


def page(key: str, version: str = "1") -> str:
    return f"<!DOCTYPE html><html><body>report {version} {key}</body></html>"


def test_latest_serves_the_newest_drifted_window_sandboxed(store: Store,
                                                           files: ReportFiles) -> None:
    files.write("carloan", "1", "p0:2", page("p0:2"), {"end": "2019-06-03T01:59:00Z"})
    files.write("carloan", "1", "p0:4", page("p0:4"), {"end": "2019-06-04T11:19:00Z"})
    response = client(store, files).get("/api/v1/models/carloan/reports/latest")
    assert response.status_code == 200
    assert response.text == page("p0:4")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-encoding"] == "gzip"  # the stored bytes, as they are
    policy = response.headers["content-security-policy"]
    assert policy.startswith("sandbox allow-scripts;") and "default-src 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_client_without_gzip_gets_plain_html(store: Store, files: ReportFiles) -> None:
    files.write("carloan", "1", "p0:2", page("p0:2"), {"end": "2019-06-03T01:59:00Z"})
    response = client(store, files).get("/api/v1/models/carloan/reports/latest",
                                        headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200 and "content-encoding" not in response.headers
    assert response.content == page("p0:2").encode()
    assert gzip.decompress(files.newest_first("carloan")[0].gzip_bytes()) == response.content


@pytest.mark.parametrize("path", ["p0:2", "p0%3A2", "p0%3a2"])
def test_a_window_report_is_found_by_its_key_quoted_or_not(store: Store, files: ReportFiles,
                                                            path: str) -> None:
    files.write("carloan", "1", "p0:2", page("p0:2"), {"end": "2019-06-03T01:59:00Z"})
    files.write("carloan", "1", "p0:4", page("p0:4"), {"end": "2019-06-04T11:19:00Z"})
    response = client(store, files).get(f"/api/v1/models/carloan/reports/{path}")
    assert response.status_code == 200 and response.text == page("p0:2")


def test_version_picks_among_reports_of_the_same_window_key(store: Store,
                                                            files: ReportFiles) -> None:
    files.write("carloan", "1", "p0:2", page("p0:2", "1"), {"end": "2019-06-03T01:59:00Z"})
    files.write("carloan", "2", "p0:2", page("p0:2", "2"), {"end": "2019-06-03T02:00:00Z"})
    http = client(store, files)
    assert http.get("/api/v1/models/carloan/reports/p0:2").text == page("p0:2", "2")
    assert http.get("/api/v1/models/carloan/reports/p0:2",
                    params={"version": "1"}).text == page("p0:2", "1")
    missing = http.get("/api/v1/models/carloan/reports/p0:2", params={"version": "9"})
    assert missing.status_code == 404
    assert missing.json()["detail"].startswith("no drift report for window p0:2 of carloan "
                                               "version 9: ")


def test_missing_reports_are_404_with_a_sentence(store: Store, files: ReportFiles) -> None:
    http = client(store, files)
    assert http.get("/api/v1/models/carloan/reports/latest").json() == {"detail": (
        "no drift report for carloan yet: one is written when a window closes with drift and "
        "the baseline has a reference sample")}
    files.write("carloan", "1", "p0:4", page("p0:4"), {"end": "2019-06-04T11:19:00Z"})
    response = http.get("/api/v1/models/carloan/reports/p0:0")
    assert response.status_code == 404
    assert response.json()["detail"] == (
        "no drift report for window p0:0 of carloan: reports are written for drifted windows "
        "only, and the last 3 are kept (reports.keep); kept now: p0:4")
    bad = http.get("/api/v1/models/carloan/reports/window-7")
    assert bad.status_code == 404
    assert bad.json()["detail"] == "window key 'window-7': expected p<partition>:<index>, e.g. p0:7"
    unknown = http.get("/api/v1/models/nope/reports/latest")
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("unknown model")


def test_reports_off_answer_404_saying_so(store: Store) -> None:
    http = client(store, None)
    for path in ("latest", "p0:1"):
        response = http.get(f"/api/v1/models/carloan/reports/{path}")
        assert response.status_code == 404
        assert response.json()["detail"] == ("drift reports are off (reports.enabled is false "
                                             "in the service's config)")


def test_openapi_lists_the_report_routes_and_the_page(store: Store, files: ReportFiles) -> None:
    paths = client(store, files).get("/openapi.json").json()["paths"]
    for path in ("/api/v1/models/{model}/reports/latest",
                 "/api/v1/models/{model}/reports/{window_key}", "/"):
        assert "get" in paths[path], path
