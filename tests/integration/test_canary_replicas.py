"""Two ``driftloop serve`` replicas run one canary (issue 15, ``kafka.partials``).

A real ``mlflow server``, the broker, one PostgreSQL store, and labeled traffic of two
scikit-learn versions spread at random over the 4 partitions of each topic, so each
replica reads about half of each version's events and labels. Only the model's owner
(the replica holding its partials partition) runs the canary, and the other ships its
share of each interval's arm statistics through the store: the better challenger is
promoted once, each deploy hook is called once, one replica judges and exports the
canary's status, and both answer the same state. ``min_events`` is above what half the
traffic brings in an interval, so the passing checks are those of the summed shares
(before, each replica judged on its own partitions, whenever a burst of its backlog
happened to reach ``min_events``, and both exported the status).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from monitor.baseline import build_baseline
from tests.support.canary import Traffic, Witness, features_and_labels
from tests.support.procs import start_mlflow
from tests.support.service import RunningService, new_topics, poll, start_service, write_config

pytestmark = pytest.mark.integration

MODEL = "loans"
PARTITIONS = 4
RATE = 200  # events per version and half-second beat: 800 per version and interval
INTERVAL = 2.0
# above the ~400 events of a version one replica reads in an interval, under the ~800
# both read
MIN_EVENTS = 550
CANARY = {"min_events": MIN_EVENTS, "min_labels": 100, "iterations": 2, "threshold": 2,
          "max_inconclusive": 12, "max_performance_drop": 0.05, "interval": INTERVAL}


def fit(columns: int, seed: int) -> LogisticRegression:
    x, y = features_and_labels(4000, np.random.default_rng(seed))
    x[:, columns:] = 0.0
    return LogisticRegression().fit(x, y)


def log_model(estimator: LogisticRegression) -> str:
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(estimator, name="model", registered_model_name=MODEL,
                                        pip_requirements=["scikit-learn"])
    return str(info.registered_model_version)


@pytest.fixture
def mlflow_url(tmp_path: Path) -> Iterator[str]:
    proc = start_mlflow(tmp_path / "mlflow")
    url = f"http://127.0.0.1:{proc.port}"
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(url)
    try:
        yield url
    finally:
        mlflow.set_tracking_uri(before)
        proc.stop()


def ready(service: RunningService) -> Callable[[], bool]:
    return lambda: service.get("/readyz").status_code == 200


def canary_decisions(services: list[RunningService], decision: str) -> float:
    return sum(s.metric("driftloop_canary_decisions_total", decision=decision)
               for s in services)


def test_the_owner_judges_the_canary_on_both_replicas_traffic(
        tansu: str, postgres_url: str, mlflow_url: str, tmp_path: Path) -> None:
    client = MlflowClient(mlflow_url)
    champion_model = fit(1, seed=1)
    x, y = features_and_labels(5000, np.random.default_rng(2))
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1],
                          "prediction": champion_model.predict(x), "y": y})
    baseline = build_baseline(frame, MODEL, target="y", prediction="prediction")
    baseline_path = baseline.save(tmp_path / "baseline.json")
    witness = Witness()
    topics = new_topics(tansu, "canary-replicas", partitions=PARTITIONS)
    configs = []
    for name in ("a", "b"):
        path = write_config(
            tmp_path / name / "driftloop.yaml", bootstrap=tansu, topics=topics,
            state_url=postgres_url, baseline=str(baseline_path), model_name=MODEL,
            mlflow={"tracking_uri": mlflow_url, "poll_interval": 1},
            model={"performance": {"metric": "accuracy", "window_rows": 500},
                   "canary": {**CANARY, "hook": {"type": "webhook",
                                                 "url": witness.url("/hook")}}},
            kafka={"partials": True, "partials_partitions": 2})
        config = yaml.safe_load(path.read_text())
        config["jobs"] = {"canary_interval": 0.5}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        configs.append(path)
    traffic = Traffic(tansu, topics.predictions, topics.labels, MODEL).start()
    services: list[RunningService] = []
    try:
        champion = log_model(champion_model)
        traffic.models[champion] = champion_model
        client.set_registered_model_alias(MODEL, "champion", champion)
        services = [start_service(c, f"replica-{n}") for n, c in zip("ab", configs,
                                                                         strict=True)]
        for service in services:
            poll(ready(service), 90, "ready", service.proc)
        better_model = fit(2, seed=3)
        better = log_model(better_model)
        traffic.models[better] = better_model
        traffic.serve(**{champion: RATE, better: RATE})
        client.set_registered_model_alias(MODEL, "challenger", better)

        def state() -> dict[str, object] | None:
            response = services[0].get(f"/api/v1/models/{MODEL}/canary")
            assert response.status_code == 200, response.text
            found = dict(response.json())
            return found if found.get("phase") == "succeeded" else None

        done = poll(state, 180, "the better challenger promoted", services[0].proc,
                    interval=0.5)
        answers = [s.get(f"/api/v1/models/{MODEL}/canary").json() for s in services]
        promoted = canary_decisions(services, "promote")
        owners = [s.metric("driftloop_canary_status", model=MODEL) for s in services]
        logs = [s.proc.log_tail(4000) for s in services]
    finally:
        traffic.stop()
        for service in services:
            if service.proc.alive():
                service.stop()
        witness.close()

    assert done["challenger"] == better and done["verdict"] == "pass"
    assert {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()} == {
        "champion": better, "previous_champion": champion}
    # one judge: one promotion, each hook once, one replica exporting the canary's status
    assert promoted == 1
    calls = [p.body["reason"] for p in witness.at("/hook") if p.body.get("version") == better]
    assert calls == ["start", "promote"]
    assert sorted(owners) == [0, 1]
    # one state, whichever replica is asked (the running interval shown is each one's own
    # share and what waits in the store)
    assert {k: v for k, v in answers[0].items() if k != "interval"} == {
        k: v for k, v in answers[1].items() if k != "interval"}
    assert done["counters"]["passed"] == CANARY["iterations"]
    # the non-owner never judged: every check in the logs is the owner's
    judges = [i for i, log in enumerate(logs) if f"canary {MODEL} v{better}" in log]
    assert len(judges) == 1, judges
