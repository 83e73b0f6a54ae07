"""The page at ``GET /`` and the drift reports of a real ``driftloop serve`` that processed
a drifting stream, looked at in a real headless browser (Debian's chromium).

Real processes: the session's Tansu broker, ``driftloop serve`` (SQLite state, reports
in the test's directory) and chromium, driven over the DevTools protocol. The stream
is the session's ``stream_data`` (six windows of 1000 rows, shifts planted in windows 3
and 5, i.e. ``p0:2`` and ``p0:4``). A screenshot of the page is written under the
test's directory and its path printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.cli.examples import FEATURES, SHIFTS
from monitor.cli.replay import label_events, prediction_events, produce
from tests.support.browser import Tab, start_chromium
from tests.support.service import (
    RunningService,
    StreamData,
    new_topics,
    poll,
    start_service,
    write_config,
)

pytestmark = pytest.mark.integration

DRIFTED_KEYS = ("p0:2", "p0:4")


@dataclass(frozen=True)
class Served:
    service: RunningService
    reports: Path
    windows: list[dict[str, Any]]  # oldest first


@pytest.fixture(scope="module")
def served(tansu: str, stream_data: StreamData,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("page")
    topics = new_topics(tansu, "page")
    reports = workdir / "reports"
    config = write_config(workdir / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=f"sqlite:///{workdir / 'state.db'}",
                          baseline=str(stream_data.baseline))
    text = config.read_text() + f"reports:\n  dir: {json.dumps(str(reports))}\n  keep: 5\n"
    config.write_text(text)
    service = start_service(config)
    frame, labels = stream_data.current, stream_data.labels
    try:
        # windows 1-3 and their labels first, so that windows 4-6 close knowing a realized
        # performance (labels arrive after their predictions)
        for part, n_windows in ((frame.iloc[:3000], 3), (frame.iloc[3000:], 6)):
            produce([tansu], topics.predictions, prediction_events(
                part, model="carloan", version="1", features=FEATURES,
                prediction="prediction", score="score"))
            produce([tansu], topics.labels, label_events(
                labels[labels["request_id"].isin(part["request_id"])], model="carloan",
                label="repaid"))
            windows = service.wait_windows(n_windows)
            poll(lambda: service.metric("driftloop_performance", model="carloan") > 0, 60,
                 "a realized performance window", service.proc)
        poll(lambda: service.metric("driftloop_drift_reports_total", outcome="written") >= 2,
             120, "the reports of the two drifted windows", service.proc)
        yield Served(service, reports, windows)
    finally:
        assert service.stop() == 0


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with start_chromium(tmp_path_factory.mktemp("chromium")) as port:
        yield port


def test_the_browser_harness_sees_console_errors(browser: int) -> None:
    """The check below could fail: an error on a page is seen."""
    with Tab(browser) as tab:
        tab.open("data:text/html,<p>x</p><script>console.error('seen it')</script>")
        assert tab.console_errors() == ["console: seen it"]


def test_page_renders_the_drifted_features_without_errors_or_network(
        served: Served, browser: int, tmp_path: Path) -> None:
    url = f"{served.service.url}/"
    with Tab(browser) as tab:
        tab.open(url)
        screenshot = tab.screenshot(tmp_path / "driftloop-page.png")
        print(f"\nscreenshot of {url}: {screenshot}")
        assert tab.console_errors() == []
        assert tab.requested() == [url]  # the page alone: no script, style or font fetched
        assert tab.evaluate("document.title") == "driftloop"
        assert tab.evaluate("document.querySelector('section.model h2').textContent") == \
            "carloan"
        drawn = tab.evaluate(
            "Array.from(document.querySelectorAll('svg.heatmap rect.cell.drift'))"
            ".map(r => [r.dataset.feature, r.dataset.window])")
        links = tab.evaluate("Array.from(document.querySelectorAll('table.drifted a'))"
                             ".map(a => a.getAttribute('href'))")
        tooltip = tab.evaluate("document.querySelector('svg.heatmap rect.cell.drift title')"
                               ".textContent")
        performance = tab.evaluate("document.querySelectorAll('.chart')[1]"
                                   ".querySelectorAll('circle.value').length")
    assert screenshot.stat().st_size > 10_000
    want = {(name, f"v1 p0:{w['window']}") for w in served.windows
            for name, score in w["features"].items() if score["drift"]}
    assert {tuple(cell) for cell in drawn} == want
    planted = {(name, f"v1 p0:{window - 1}") for name, window in SHIFTS}
    assert planted <= want
    assert sorted(links) == [f"/api/v1/models/carloan/reports/{key.replace(':', '%3A')}"
                             "?version=1" for key in DRIFTED_KEYS]
    assert "(drift when >= " in tooltip and tooltip.endswith(": drift")
    assert performance == sum(w["performance"] is not None for w in served.windows) >= 3


def test_reports_of_the_drifted_windows_agree_with_them_and_render(
        served: Served, browser: int) -> None:
    by_key = {f"p0:{w['window']}": w for w in served.windows}
    for key in DRIFTED_KEYS:
        note = json.loads((served.reports / "carloan" / "1" /
                           f"{key.replace(':', '%3A')}.json").read_text())
        window = by_key[key]
        columns = note["evidently"]["columns"]
        assert {c: v["drift"] for c, v in columns.items()} == {
            **{f: s["drift"] for f, s in window["features"].items()},
            "prediction": window["prediction_drift"]["drift"],
            "score": window["score_drift"]["drift"]}
        assert note["evidently"]["dataset_drift"] == window["dataset_drift"]
        assert note["covered"]["shown"] == note["covered"]["seen"] == window["rows"]
        print(f"\nreport {key}: built in {note['seconds']:.2f} s")
    latest = served.service.get("/api/v1/models/carloan/reports/latest")
    assert latest.status_code == 200 and "window p0:4" in latest.text
    assert "Evidently agrees with the window on all 10 columns" in latest.text
    first = served.service.get("/api/v1/models/carloan/reports/p0%3A2")
    assert first.status_code == 200 and "window p0:2" in first.text
    calm = served.service.get("/api/v1/models/carloan/reports/p0:0")
    assert calm.status_code == 404 and "drifted windows only" in calm.json()["detail"]
    with Tab(browser) as tab:  # Evidently's page runs, sandboxed, with nothing to fetch
        tab.open(f"{served.service.url}/api/v1/models/carloan/reports/p0%3A2")
        tab.evaluate("new Promise(done => setTimeout(done, 1500))", await_promise=True)
        text = tab.evaluate("document.body.innerText")
        assert "Share of Drifted Columns" in text and "car_value" in text
        assert tab.requested() == [f"{served.service.url}/api/v1/models/carloan/reports/p0%3A2"]
