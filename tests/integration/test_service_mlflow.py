"""``baseline: mlflow:champion`` against a real ``mlflow server``: load, follow, restart.

Two baselines are logged to two runs: A (the reference rows) and B (rows of a
shifted window). The alias starts on A; it moves to B while a window is open:
that window finishes on A and the next ones use B. Then the service is killed
with a window open on B, the alias moves back to A while it is down, and the
restarted service finishes the open window on B (loaded again by its key) and
opens the next one on A. Each window must equal ``driftloop evaluate``'s result
against the baseline it names.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from monitor.baseline import Baseline, build_baseline, log_baseline
from monitor.cli.evaluate import evaluate_data
from monitor.cli.examples import FEATURES
from monitor.cli.replay import prediction_events, produce
from monitor.config import load_config
from monitor.store import Store
from tests.support.service import (
    WINDOW_ROWS,
    RunningService,
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


def register(client: MlflowClient, experiment: str, name: str,
             baseline: Baseline) -> tuple[str, str]:
    """Log ``baseline`` to a new run and register a version of ``name`` from it:
    returns (version, ``runs:/<id>``)."""
    run = client.create_run(experiment)
    log_baseline(baseline, run.info.run_id, tracking_uri=client.tracking_uri)
    client.set_terminated(run.info.run_id)
    version = client.create_model_version(name, source=f"{run.info.artifact_uri}/driftloop",
                                          run_id=run.info.run_id)
    return str(version.version), f"runs:/{run.info.run_id}"


def wait_swap(service: RunningService, key: str) -> None:
    """The consumer thread logs the swap before its next batch."""
    poll(lambda: f"is now {key}: new windows use it" in service.proc.log_path.read_text(), 30,
         f"the swap to {key}", service.proc)


def test_baseline_follows_the_mlflow_alias_at_window_boundaries(
        mlflow_server: str, tansu: str, stream_data: StreamData, tmp_path: Path) -> None:
    name = f"carloan-{uuid.uuid4().hex[:8]}"
    frame = stream_data.current
    baseline_a = Baseline.load(stream_data.baseline)
    baseline_b = build_baseline(frame.iloc[4000:5000], name, prediction="prediction",
                                score="score", id_column="request_id", timestamp="timestamp")
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.create_experiment(f"registry-watch-{name}")
    client.create_registered_model(name)
    version_a, key_a = register(client, experiment, name, baseline_a)
    version_b, key_b = register(client, experiment, name, baseline_b)
    client.set_registered_model_alias(name, "champion", version_a)

    topics = new_topics(tansu, "mlflow")
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=state_url, baseline="mlflow:champion", model_name=name,
                          mlflow={"tracking_uri": mlflow_server, "poll_interval": 0.3})

    def send(part: pd.DataFrame) -> None:
        produce([tansu], topics.predictions, prediction_events(
            part, model=name, version="1", features=FEATURES, prediction="prediction",
            score="score"), partition=0)

    def stored() -> int:
        with Store(state_url) as store:
            return store.offsets(topics.group).get((topics.predictions, 0), 0)

    service = start_service(config, "driftloop-a")
    try:
        assert service.get("/readyz").json()["dependencies"]["mlflow"]["ready"] is True
        send(frame.iloc[:1500])  # window 0 closes on A, window 1 opens on A
        poll(lambda: stored() == 1500, 60, "1500 events persisted", service.proc)
        client.set_registered_model_alias(name, "champion", version_b)
        wait_swap(service, key_b)
        send(frame.iloc[1500:2500])  # window 1 finishes on A, window 2 opens on B
        poll(lambda: stored() == 2500, 60, "2500 events persisted", service.proc)
    finally:
        service.kill()
    # the alias moves while the service is down; window 2 stays B's
    client.set_registered_model_alias(name, "champion", version_a)
    service = start_service(config, "driftloop-b")
    try:
        send(frame.iloc[2500:4000])  # window 2 finishes on B, window 3 is A's again
        seen = service.wait_windows(4)
    finally:
        assert service.stop() == 0

    assert [w.get("baseline") for w in seen] == [key_a, key_a, key_b, key_a]
    model_config = load_config(config).models[name]
    expected: dict[str, list[dict[str, Any]]] = {}
    for key, baseline in ((key_a, baseline_a), (key_b, baseline_b)):
        expected[key], _ = evaluate_data(baseline, frame.iloc[:4000], model_config,
                                         window_rows=WINDOW_ROWS, source="expected")
    for i, got in enumerate(seen):
        want = expected[got["baseline"]][i]
        for field in COMPARED:
            assert_same(got[field], want[field], f"window {i} {field}")
    # the baseline matters: every window's scores differ between A and B
    for i in range(4):
        assert expected[key_a][i]["features"] != expected[key_b][i]["features"]
