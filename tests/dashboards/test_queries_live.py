"""Every dashboard query runs against a real Prometheus scraping a real ``driftloop serve``.

Real processes: the session's Tansu broker, ``driftloop serve`` (SQLite state)
processing the seeded drifting example stream (six windows, dataset drift in
window 5, labels for most rows, a few malformed records) with a retrain policy
that acts on that drift, and a Prometheus built from the shipped
``prometheus/prometheus.yml`` scraping it every second. Each panel, template
variable and annotation query of ``grafana/dashboards/*.json`` (variables
substituted by ``tests/dashboards/queries.py``) is sent to ``/api/v1/query``
and must return at least one series, unless it is listed below with the reason
it stays empty, or it selects a metric of ``PENDING_METRICS`` that the service
does not export yet.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.cli.examples import FEATURES
from monitor.cli.replay import label_events, prediction_events, produce
from tests.dashboards.queries import PENDING_METRICS, DashboardQuery, metric_names, promql_queries
from tests.support.procs import start_prometheus
from tests.support.service import (
    StreamData,
    new_topics,
    poll,
    start_service,
    write_config,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_PROMETHEUS = ROOT / "prometheus" / "prometheus.yml"
WINDOWS = 6

_NO_CANARY = ("no canary runs: the stream has one model version and the service has no "
              "MLflow registry, so no challenger is ever judged")
# Panels that stay empty until an event this stream does not contain happens.
EMPTY_UNTIL_EVENT: dict[tuple[str, str, str], str] = {
    ("driftloop-fleet.json", "Canary decisions", "A"): _NO_CANARY,
    ("driftloop-fleet.json", "Canary status by model", "A"): _NO_CANARY,
    ("driftloop-fleet.json", "annotation Canary decisions", ""): _NO_CANARY,
    ("driftloop-model.json", "Canary status", "A"): _NO_CANARY,
    ("driftloop-model.json", "Canary decisions", "A"): _NO_CANARY,
    ("driftloop-model.json", "annotation Canary decisions", ""): _NO_CANARY,
    # the counter is created on the first late event; count windows have none
    ("driftloop-model.json", "Late events", "A"):
        "only event-time windows (window.duration) have late events; this stream uses "
        "count windows",
}
# monitor.service refreshes driftloop_label_join_pending with the TTL expiry, at the
# first persist at least EXPIRY_SECONDS (60 s) after start; this stream is done sooner
_JOIN_COUNTS = ("the pending-join gauge is first set by a persist a minute after the service "
                "started, and this stream is processed within that minute")
EMPTY_UNTIL_A_MINUTE: dict[tuple[str, str, str], str] = {
    ("driftloop-fleet.json", "Rows waiting to be joined", "A"): _JOIN_COUNTS,
    ("driftloop-model.json", "Rows waiting to be joined", "A"): _JOIN_COUNTS,
}


def _prometheus_config(directory: Path, driftloop_port: int) -> Path:
    """The shipped scrape job for driftloop on the test's port, scraped every second."""
    shipped = yaml.safe_load(SHIPPED_PROMETHEUS.read_text())
    (job,) = [job for job in shipped["scrape_configs"] if job["job_name"] == "driftloop"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{driftloop_port}"]}]
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [job]}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (
        f"Prometheus rejected {expr!r}: {body.get('error')}")
    return list(body["data"]["result"])


def _value(url: str, expr: str) -> float | None:
    found = _query(url, expr)
    return float(found[0]["value"][1]) if found else None


def _drive_stream(bootstrap: str, topics: Any, data: StreamData) -> None:
    produce([bootstrap], topics.predictions, prediction_events(
        data.current, model="carloan", version="1", features=FEATURES,
        prediction="prediction", score="score"))
    produce([bootstrap], topics.labels, label_events(data.labels, model="carloan",
                                                     label="repaid"))
    bad = [(b"bad-1", b"{not json"), (b"bad-2", b'{"model": "carloan"}'),
           (b"bad-3", b'{"model": "nobody", "version": "1", "request_id": "1", '
                      b'"timestamp": "2019-06-01T00:00:00Z", "features": {}, "prediction": 1}')]
    produce([bootstrap], topics.predictions, iter(bad))


def test_every_dashboard_query_returns_data_from_a_real_prometheus(
        tansu: str, stream_data: StreamData, tmp_path: Path) -> None:
    topics = new_topics(tansu, "dashboards")
    retrain = {"on": ["dataset_drift"], "consecutive_windows": 1, "cooldown": "1h",
               "launcher": {"type": "command", "argv": [sys.executable, "-c", "pass"]}}
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=f"sqlite:///{tmp_path / 'state.db'}",
                          baseline=str(stream_data.baseline), model={"retrain": retrain})
    service = start_service(config)
    prometheus = start_prometheus(tmp_path / "prometheus",
                                  _prometheus_config(tmp_path / "prometheus", service.proc.port))
    url = f"http://127.0.0.1:{prometheus.port}"
    try:
        _drive_stream(tansu, topics, stream_data)
        service.wait_windows(WINDOWS, timeout=120)
        poll(lambda: service.metric("driftloop_retrain_launches_total", outcome="started") >= 1,
             60, "the retrain launched on the drifted window", service.proc)
        poll(lambda: service.metric("driftloop_events_invalid_total") >= 3, 30,
             "the malformed records counted", service.proc)
        # Prometheus has scraped the final state, and rates have several samples
        poll(lambda: _value(url, "sum(driftloop_windows_total)") == WINDOWS
             and _value(url, "count(driftloop_retrain_launches_total)") is not None
             and _value(url, "sum(driftloop_events_invalid_total)") == 3
             and _value(url, "count(driftloop_performance)") is not None, 60,
             "Prometheus scraping the final windows, retrain and performance", service.proc)
        poll(lambda: (_value(url, 'count_over_time(up{job="driftloop"}[5m])') or 0) >= 5, 30,
             "five scrapes")
        queries = promql_queries()
        results = {query.key: _query(url, query.expr) for query in queries}
        exported = {sample.name for family in text_string_to_metric_families(
            service.get("/metrics").text) for sample in family.samples}
    finally:
        prometheus.stop()
        assert service.stop() == 0

    pending_exported = set(PENDING_METRICS) & exported
    assert not pending_exported, (
        f"now exported, remove from PENDING_METRICS: {sorted(pending_exported)}")
    by_key: dict[tuple[str, str, str], DashboardQuery] = {q.key: q for q in queries}
    listed = set(EMPTY_UNTIL_EVENT) | set(EMPTY_UNTIL_A_MINUTE)
    assert listed <= set(by_key), f"allow-listed panels not found: {listed - set(by_key)}"
    empty, pending_empty = [], []
    for key, found in results.items():
        pending = metric_names(by_key[key].expr) & set(PENDING_METRICS)
        if key in EMPTY_UNTIL_A_MINUTE:
            continue  # a slow machine may pass the minute: data or not, both are right
        if key in EMPTY_UNTIL_EVENT:
            assert not found, f"{key} has data now: remove it from EMPTY_UNTIL_EVENT"
        elif pending and not found:
            pending_empty.append(key)
        elif not found:
            empty.append(f"{key}: {by_key[key].expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
    assert len(results) == len(queries) and len(results) - len(pending_empty) > 40
