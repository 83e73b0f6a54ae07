"""Dependencies that go away mid-stream, and a launcher that hangs.

- PostgreSQL stopped for 30 s and MLflow stopped for 60 s while the baseline
  follows ``mlflow:champion``: ``/readyz`` names each dependency while it is
  away, the service stays up, nothing is lost, and everything is evaluated once
  they return (the windows equal ``driftloop evaluate``).
- A retrain launcher whose target hangs for 120 s: consumption does not stall,
  the consumer keeps its partitions (no rebalance) and the lag stays bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from mlflow.tracking import MlflowClient

from monitor.baseline import Baseline
from monitor.cli.evaluate import evaluate_data
from monitor.cli.examples import FEATURES
from monitor.cli.replay import prediction_events, produce
from monitor.config import load_config
from tests.integration.test_service_mlflow import register
from tests.support.procs import free_port, postgres_workdir, start_mlflow, start_postgres
from tests.support.service import (
    WINDOW_ROWS,
    StreamData,
    assert_same,
    new_topics,
    poll,
    start_service,
    write_config,
)

pytestmark = pytest.mark.integration

COMPARED = ("rows", "dataset_drift", "drift_share", "features", "prediction_drift",
            "score_drift", "quality", "start", "end", "first_offset")


def test_postgres_and_mlflow_outages_lose_nothing_and_readyz_names_them(
        tansu: str, stream_data: StreamData, tmp_path: Path) -> None:
    pg_dir = postgres_workdir()
    pg = start_postgres(pg_dir)
    ml = start_mlflow(tmp_path / "mlflow")
    mlflow_url = f"http://127.0.0.1:{ml.port}"
    service = None
    try:
        with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres",
                             autocommit=True) as admin:
            admin.execute("CREATE DATABASE driftloop")
        state_url = f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/driftloop"
        name = f"carloan-{uuid.uuid4().hex[:8]}"
        client = MlflowClient(tracking_uri=mlflow_url)
        experiment = client.create_experiment(f"outages-{name}")
        client.create_registered_model(name)
        version, key = register(client, experiment, name, Baseline.load(stream_data.baseline))
        client.set_registered_model_alias(name, "champion", version)

        topics = new_topics(tansu, "outages")
        config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                              state_url=state_url, baseline="mlflow:champion", model_name=name,
                              mlflow={"tracking_uri": mlflow_url, "poll_interval": 0.5})
        frame = stream_data.current

        def send(start: int, stop: int) -> None:
            produce([tansu], topics.predictions, prediction_events(
                frame.iloc[start:stop], model=name, version="1", features=FEATURES,
                prediction="prediction", score="score"), partition=0)

        def dependencies() -> dict[str, Any]:
            return dict(service.get("/readyz").json()["dependencies"])  # type: ignore[union-attr]

        service = start_service(config)
        poll(lambda: service.get("/readyz").status_code == 200, 60, "ready", service.proc)
        send(0, 2 * WINDOW_ROWS)
        service.wait_windows(2)
        # both go away mid-stream (stopped by their PIDs)
        os.killpg(pg.pid, signal.SIGINT)  # PostgreSQL's fast shutdown
        pg.popen.wait(30)
        ml.stop()
        down_at = time.monotonic()
        send(2 * WINDOW_ROWS, 4 * WINDOW_ROWS)
        poll(lambda: not dependencies()["state_store"]["ready"]
             and not dependencies()["mlflow"]["ready"], 60, "readyz naming both", service.proc)
        assert service.get("/readyz").status_code == 503
        assert service.get("/healthz").status_code == 200
        time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        pg = start_postgres(pg_dir, pg.port)  # 30 s later, on the same data
        poll(lambda: dependencies()["state_store"]["ready"], 60, "the store back", service.proc)
        service.wait_windows(4, timeout=90)  # evaluated once the store returned
        time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
        ml = start_mlflow(tmp_path / "mlflow", port=ml.port)  # 60 s later
        poll(lambda: service.get("/readyz").status_code == 200, 60, "ready again", service.proc)
        send(4 * WINDOW_ROWS, len(frame))
        seen = service.wait_windows(len(frame) // WINDOW_ROWS, timeout=90)
        assert service.metric("driftloop_events_total", kind="prediction") == len(frame)
    finally:
        if service is not None:
            assert service.stop() == 0
        ml.stop()
        os.killpg(pg.pid, signal.SIGINT) if pg.alive() else None
        pg.popen.wait(30)
        shutil.rmtree(pg_dir, ignore_errors=True)

    assert [w["baseline"] for w in seen] == [key] * len(seen)
    expected, _ = evaluate_data(Baseline.load(stream_data.baseline), frame,
                                load_config(config).models[name], window_rows=WINDOW_ROWS,
                                source="expected")
    assert sum(w["rows"] for w in seen) == len(frame)
    for got, want in zip(seen, expected, strict=True):
        for field in COMPARED:
            assert_same(got[field], want[field], f"window {want['window']} {field}")


class _Hang(BaseHTTPRequestHandler):
    """A webhook target that takes the request and answers after two minutes."""

    calls: ClassVar[list[float]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Hang.calls.append(time.monotonic())
        time.sleep(120)
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_a_launcher_that_hangs_does_not_stall_consumption(
        tansu: str, stream_data: StreamData, tmp_path: Path) -> None:
    port = free_port()
    target = ThreadingHTTPServer(("127.0.0.1", port), _Hang)
    target.daemon_threads = True
    threading.Thread(target=target.serve_forever, daemon=True).start()
    topics = new_topics(tansu, "hang")
    launcher = {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook", "timeout": "120s"}
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=f"sqlite:///{tmp_path / 'state.db'}",
                          baseline=str(stream_data.baseline),
                          model={"retrain": {"on": ["dataset_drift"], "consecutive_windows": 1,
                                             "launcher": launcher}})
    frame = stream_data.current
    drifting = frame.iloc[4 * WINDOW_ROWS:5 * WINDOW_ROWS]

    def send(rows: Any) -> None:
        produce([tansu], topics.predictions, prediction_events(
            rows, model="carloan", version="1", features=FEATURES, prediction="prediction",
            score="score"), partition=0)

    service = start_service(config)
    try:
        send(drifting)  # a drifting window: the retrain launches and the target hangs
        poll(lambda: _Hang.calls, 60, "the launch reaching the hanging target", service.proc)
        # while the launch hangs, the stream keeps flowing: windows close, nothing lags
        for i in range(4):
            send(frame.iloc[i * WINDOW_ROWS:(i + 1) * WINDOW_ROWS])
            service.wait_windows(2 + i, timeout=30)
        poll(lambda: service.metric("driftloop_consumer_lag") == 0, 30, "no lag", service.proc)
        assert time.monotonic() - _Hang.calls[0] < 110  # all of it while the launch hung
        log = service.proc.log_path.read_text()
        assert "partitions revoked: none" in log  # the start-up one only
        assert log.count("partitions revoked") == 1 and "partitions lost" not in log
    finally:
        assert service.stop() == 0  # the hung launch does not hold the shutdown
        target.shutdown()
