"""``GET /``, the page for people: server-rendered from the store and the reports on disk,
without a script or a network fetch, and with everything from events escaped."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from monitor.api import Dependency, ServiceStatus, create_app
from monitor.api.page import model_page
from monitor.api.page_charts import drift_heatmap, line_chart
from monitor.evaluate import ReportFiles
from monitor.store import CanaryState, RetrainRun, Store

READY = ServiceStatus((Dependency("broker", True),))
EVIL = "<script>alert(1)</script>"
ROOT = Path(__file__).resolve().parents[2]


def score(value: float, drift: bool, method: str = "wasserstein",
          direction: str = "above") -> dict[str, Any]:
    return {"method": method, "score": value, "threshold": 0.1 if direction == "above" else 0.05,
            "drift": drift, "status": "drift" if drift else "ok", "direction": direction}


def window(index: int, drifted: set[str], *, share: float = 0.0,
           accuracy: float | None = None) -> dict[str, Any]:
    features = {name: score(0.4 if name in drifted else 0.03, name in drifted)
                for name in ("car_value", "age", EVIL)}
    features["color"] = score(0.001 if "color" in drifted else 0.6, "color" in drifted,
                              "chisquare", "below")
    return {
        "model": "carloan", "version": "1", "window": index, "partition": 0,
        "first_offset": index * 100, "start": f"2019-05-0{index + 1}T00:00:00Z",
        "end": f"2019-05-0{index + 1}T23:00:00Z", "rows": 100,
        "dataset_drift": share >= 0.5, "drift_share": share, "drift_share_threshold": 0.5,
        "features": features, "prediction_drift": None,
        "performance": None if accuracy is None else {
            "metric": "accuracy", "value": accuracy, "baseline": 0.94, "max_drop": 0.02,
            "degraded": accuracy < 0.92, "labeled_rows": 100, "status": "ok"},
    }


DRIFTED = {1: {"car_value", EVIL}, 3: {"car_value", "age", "color"}}


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    return parser.found


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        for i in range(5):
            result = window(i, DRIFTED.get(i, set()), share=0.75 if i == 3 else 0.25 * (i == 1),
                            accuracy=None if i < 2 else 0.95 - 0.02 * i)
            opened.put_window("carloan", "1", f"p0:{i}", i, result)
        opened.log_decision("carloan", "retrain", f"retrain carloan: {EVIL} in 2 windows",
                            at_ms=1000)
        for i in range(30):  # the policy's routine holds, one per window, come after
            opened.log_decision("carloan", "hold", f"no retrain for carloan: hold {i}",
                                at_ms=2000 + i)
        opened.put_canary(CanaryState("carloan", "progressing", "3", "4", passed=1))
        opened.create_run(RetrainRun("run-1", "carloan", "dataset_drift", "k", "command",
                                     "running", 1000))
        yield opened


@pytest.fixture
def files(tmp_path: Path) -> ReportFiles:
    reports = ReportFiles(tmp_path / "reports", keep=5)
    reports.write("carloan", "1", "p0:3", "<html>report</html>", {"end": "2019-05-04T23:00:00Z"})
    return reports


def get_page(store: Store, files: ReportFiles | None, models: list[str]) -> Any:
    app = create_app(store, CollectorRegistry(), status=lambda: READY, auth_token=None,
                     models=models, reports=files)
    return TestClient(app).get("/")


def test_page_escapes_what_came_from_events_and_runs_no_script(store: Store,
                                                               files: ReportFiles) -> None:
    response = get_page(store, files, ["carloan", "<img src=x onerror=alert(2)>"])
    assert response.status_code == 200
    html = response.text
    assert "<script" not in html.lower() and "onerror=" not in html.replace(
        "&lt;img src=x onerror=alert(2)&gt;", "")
    assert "retrain carloan: &lt;script&gt;alert(1)&lt;/script&gt; in 2 windows" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy


def test_page_fetches_nothing_from_the_network(store: Store, files: ReportFiles) -> None:
    html = get_page(store, files, ["carloan"]).text
    for tag, attrs in elements(html):
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("/", "data:")), (tag, name, value)
    assert not re.search(r"url\(\s*['\"]?https?:", html) and "@import" not in html


def test_heatmap_marks_exactly_the_drifted_cells(store: Store, files: ReportFiles) -> None:
    html = get_page(store, files, ["carloan"]).text
    cells = [a for tag, a in elements(html) if tag == "rect" and a.get("data-feature")]
    assert len(cells) == 5 * 4
    drifted = {(a["data-feature"], a["data-window"]) for a in cells
               if "drift" in (a["class"] or "").split()}
    assert drifted == {(f, f"v1 p0:{i}") for i, names in DRIFTED.items() for f in names}


def test_decisions_that_acted_are_listed_past_the_routine_holds(store: Store,
                                                                files: ReportFiles) -> None:
    html = get_page(store, files, ["carloan"]).text
    rows = html[html.index('<table class="decisions">'):]
    rows = rows[:rows.index("</table>")]
    assert "retrain carloan: &lt;script&gt;" in rows and "hold" not in rows
    assert "Retrain policy, 1970-01-01T00:00:02.029Z: no retrain for carloan: hold 29" in html


def test_page_shows_versions_decisions_runs_and_links_kept_reports(store: Store,
                                                                  files: ReportFiles) -> None:
    html = get_page(store, files, ["carloan"]).text
    assert "champion <b>3</b>" in html and "challenger <b>4</b>" in html
    assert "canary <b>progressing</b>" in html
    links = [a["href"] for tag, a in elements(html) if tag == "a"]
    assert links.count("/api/v1/models/carloan/reports/p0%3A3?version=1") == 2  # axis, table
    assert "none kept (being written" in html  # window p0:1 drifted, no report kept
    assert "dataset_drift" in html and "running" in html  # the retrain run


def test_page_with_reports_off_and_a_model_without_windows_says_so(store: Store) -> None:
    html = get_page(store, None, ["carloan", "fraud"]).text
    assert "reports are off" in html
    assert html.count("No window has closed yet.") == 2  # fraud: summary and heatmap
    assert "no window closed yet" in html


def test_line_chart_breaks_at_windows_without_a_value() -> None:
    chart = line_chart(["a", "b", "c", "d"], {"accuracy": ("value", [0.9, None, 0.8, 0.85])})
    assert len(chart.series[0].segments) == 2 and len(chart.series[0].dots) == 3
    assert line_chart(["a"], {"x": ("value", [None])}, empty="nothing").empty == "nothing"


def test_heatmap_reads_p_values_below_their_threshold_as_drift() -> None:
    heatmap = drift_heatmap([window(0, {"color"})], {})
    color = next(c for c in heatmap.cells if c.feature == "color")
    assert color.status == "drift" and color.opacity > 0.55
    assert "chisquare 0.001 (drift when < 0.050): drift" in color.title
    age = next(c for c in heatmap.cells if c.feature == "age")
    assert age.status == "ok"


def test_the_template_ships_with_the_package() -> None:
    template = resources.files("monitor.api") / "templates" / "page.html"
    assert template.is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "api/templates/*.html" in data["package-data"]["monitor"]


@pytest.mark.parametrize(("metric", "threshold"), [("accuracy", 0.92), ("mae", 0.96)])
def test_performance_chart_draws_the_degradation_line_on_the_bad_side(metric: str,
                                                                      threshold: float) -> None:
    windows = [window(i, set(), accuracy=0.9) for i in range(3)]
    for w in windows:
        w["performance"]["metric"] = metric
    section = model_page("carloan", windows, champion=None, challenger=None, canary=None,
                         decisions=[], runs=[], reports=None)
    assert section.performance_metric == metric
    lines = {s.name: s for s in section.performance_chart.series}
    assert set(lines) == {metric, "baseline", "degraded beyond"}
    y_of = {name: float(s.segments[0].split()[0].split(",")[1]) for name, s in lines.items()}
    # SVG y grows downwards: the threshold is below the baseline for accuracy, above for mae
    assert (y_of["degraded beyond"] > y_of["baseline"]) == (threshold < 0.94)
