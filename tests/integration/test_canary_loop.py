"""The canary end to end: a real ``mlflow server`` delivering registry webhooks, the real
broker, ``driftloop serve``, and scikit-learn versions serving labeled traffic.

One MLflow server (its own: the outage test stops and restarts it by PID on the same
port and backend), one service and one traffic thread are shared by the module; the
tests run in file order, each reading the champion it starts from in the registry.
The service polls the registry once an hour, so every canary below is started by a
webhook delivery. Deploy hooks and MLflow's own alias events are posted to a
loopback witness, which is how "nothing was called or moved twice" is checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import orjson
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from monitor.baseline import build_baseline
from monitor.cli.main import main as driftloop
from monitor.store import Store
from tests.support.canary import Traffic, Witness, features_and_labels
from tests.support.procs import Managed, start_mlflow
from tests.support.service import RunningService, new_topics, poll, start_service, write_config

pytestmark = pytest.mark.integration

MODEL = "loans"
TOKEN, SECRET = "canary-api-token-0123456789", "canary-mlflow-webhook-secret"
TOKEN_ENV, SECRET_ENV = "CANARY_IT_TOKEN", "CANARY_IT_MLFLOW_SECRET"
RATE = 150  # events per version and half-second beat
INTERVAL = 2.0
MAX_INCONCLUSIVE = 4
CANARY = {"min_events": 300, "min_labels": 100, "iterations": 2, "threshold": 2,
          "max_inconclusive": MAX_INCONCLUSIVE, "max_performance_drop": 0.05,
          "interval": INTERVAL}
STATUS = "driftloop.canary.status"
# the training script a retrain launches: it tags its run with the launch's key, and
# (a retrain gone wrong) learns the labels upside down
TRAIN = """
import sys
import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression

key, model = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(5)
x = rng.normal(size=(2000, 2))
y = (x[:, 0] + x[:, 1] > 0).astype(int)
with mlflow.start_run(tags={"driftloop.idempotency_key": key}):
    mlflow.sklearn.log_model(LogisticRegression().fit(x, 1 - y), name="model",
                             registered_model_name=model, pip_requirements=["scikit-learn"])
"""


def fit(columns: int, seed: int) -> LogisticRegression:
    """A model on the first ``columns`` features (the others zeroed when training)."""
    x, y = features_and_labels(4000, np.random.default_rng(seed))
    x[:, columns:] = 0.0
    return LogisticRegression().fit(x, y)


@dataclass
class Loop:
    workdir: Path
    mlflow_proc: Managed
    mlflow_env: dict[str, str]
    client: MlflowClient
    service: RunningService
    traffic: Traffic
    witness: Witness
    service_hook: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def canary(self) -> dict[str, Any]:
        response = self.service.get(f"/api/v1/models/{MODEL}/canary")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_canary(self, done: Callable[[dict[str, Any]], bool], what: str,
                    timeout: float = 120.0) -> dict[str, Any]:
        return dict(poll(lambda: c if done(c := self.canary()) else None, timeout, what,
                         self.service.proc, interval=0.2))

    def aliases(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.client.get_registered_model(MODEL).aliases.items()}

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(MODEL, version).tags)

    def log(self, estimator: Any) -> str:
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(estimator, name="model",
                                            registered_model_name=MODEL,
                                            pip_requirements=["scikit-learn"])
        version = str(info.registered_model_version)
        self.traffic.models[version] = estimator
        return version

    def hook_calls(self, version: str) -> list[tuple[str, str]]:
        """(decision, idempotency key) of each deploy-hook call about ``version``."""
        return [(p.body["reason"], p.headers["X-Driftloop-Idempotency-Key"])
                for p in self.witness.at("/hook") if p.body.get("version") == version]

    def alias_moves(self, alias: str, version: str) -> int:
        return sum(1 for p in self.witness.at("/aliases")
                   if p.body.get("data", {}).get("alias") == alias
                   and str(p.body["data"].get("version")) == version)

    def flagger(self, gate: str, version: str) -> httpx.Response:
        """Flagger's webhook call, with its documented body."""
        body = {"name": MODEL, "namespace": "test", "phase": "Progressing",
                "checksum": "6d4b8f9c7", "metadata": {"version": version}}
        return httpx.post(f"{self.service.url}/api/v1/canary/flagger/{gate}", json=body,
                          timeout=10)

    def restart_service(self) -> None:
        self.service.kill()
        self.service = start_service(self.service.config_path, name="driftloop")
        wait_ready(self.service)

    def start_mlflow(self) -> None:
        self.mlflow_proc = start_mlflow(self.workdir / "mlflow", port=self.mlflow_proc.port,
                                        env=self.mlflow_env)


def wait_ready(service: RunningService) -> None:
    poll(lambda: service.get("/readyz").status_code == 200, 90, "service ready", service.proc)


@pytest.fixture(scope="module")
def loop(tansu: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    workdir = tmp_path_factory.mktemp("canary")
    mlflow_env = {"MLFLOW_WEBHOOK_CACHE_TTL": "1",
                  "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY":
                      base64.urlsafe_b64encode(os.urandom(32)).decode()}
    mlflow_proc = start_mlflow(workdir / "mlflow", env=mlflow_env)
    url = f"http://127.0.0.1:{mlflow_proc.port}"
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(url)
    client = MlflowClient(url)
    champion = fit(1, seed=1)
    x, y = features_and_labels(5000, np.random.default_rng(2))
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "prediction": champion.predict(x),
                          "y": y})
    baseline = build_baseline(frame, MODEL, target="y", prediction="prediction")
    baseline_path = baseline.save(workdir / "baseline.json")
    script = workdir / "train.py"
    script.write_text(TRAIN)
    witness = Witness()
    topics = new_topics(tansu, "canary")
    config_path = write_config(
        workdir / "driftloop.yaml", bootstrap=tansu, topics=topics,
        state_url=f"sqlite:///{workdir / 'state.db'}", baseline=str(baseline_path),
        model_name=MODEL, mlflow={"tracking_uri": url, "poll_interval": 3600,
                                  "webhook_secret_env": SECRET_ENV},
        model={"performance": {"metric": "accuracy", "window_rows": 500},
               "retrain": {"on": ["manual"], "launcher": {
                   "type": "command", "argv": [sys.executable, str(script),
                                               "{idempotency_key}", "{model}"],
                   "env": {"MLFLOW_TRACKING_URI": url}, "timeout": 300}},
               "canary": {**CANARY, "hook": {"type": "webhook", "url": witness.url("/hook")}}})
    config = yaml.safe_load(config_path.read_text())
    config["server"]["auth_token_env"] = TOKEN_ENV
    config["jobs"] = {"canary_interval": 0.5}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    traffic = Traffic(tansu, topics.predictions, topics.labels, MODEL).start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv(TOKEN_ENV, TOKEN)
        env.setenv(SECRET_ENV, SECRET)
        service = start_service(config_path, name="driftloop")
        hook = client.create_webhook(
            "driftloop", f"{service.url}/api/v1/mlflow/webhook",
            ["model_version.created", "model_version_alias.created",
             "model_version_alias.deleted"], secret=SECRET)
        client.create_webhook("witness", witness.url("/aliases"),
                              ["model_version_alias.created"], secret="witness")
        running = Loop(workdir, mlflow_proc, mlflow_env, client, service, traffic, witness,
                       hook.webhook_id)
        version = running.log(champion)
        client.set_registered_model_alias(MODEL, "champion", version)
        traffic.serve(**{version: RATE})
        wait_ready(service)
        try:
            yield running
        finally:
            traffic.stop()
            running.service.stop()
            running.mlflow_proc.stop()
            witness.close()
            mlflow.set_tracking_uri(before)


def test_better_challenger_aliased_by_an_operator_is_promoted(loop: Loop) -> None:
    champion = loop.aliases()["champion"]
    promoted_before = loop.service.metric("driftloop_canary_decisions_total", decision="promote")
    better = loop.log(fit(2, seed=3))
    loop.traffic.serve(**{champion: RATE, better: RATE})
    loop.client.set_registered_model_alias(MODEL, "challenger", better)
    done = loop.wait_canary(lambda c: c["challenger"] == better and c["phase"] == "succeeded",
                            "the better challenger promoted")
    loop.traffic.serve(**{better: RATE})
    assert done["verdict"] == "pass" and done["counters"]["passed"] == CANARY["iterations"]
    assert loop.aliases() == {"champion": better, "previous_champion": champion}
    tags = loop.tags(better)
    assert tags[STATUS] == "promoted" and float(tags["driftloop.canary.score"]) >= 95
    assert {c["name"] for c in orjson.loads(tags["driftloop.canary.evidence"])["checks"]} >= {
        "traffic", "performance", "invalid_rate", "prediction_divergence", "latency"}
    assert loop.tags(champion)[STATUS] == "replaced"
    calls = loop.hook_calls(better)
    assert [reason for reason, _ in calls] == ["start", "promote"]
    assert len({key for _, key in calls}) == 2
    assert loop.service.metric("driftloop_canary_decisions_total",
                               decision="promote") == promoted_before + 1
    assert loop.service.metric("driftloop_canary_status", model=MODEL) == 1
    assert loop.flagger("confirm-promotion", better).status_code == 200
    assert loop.flagger("rollback", better).status_code == 403
    # started by MLflow's delivery: the service polls the registry once an hour
    log = loop.service.proc.log_tail(2000)
    assert "MLflow model_version_alias.created: the canary of loans reads the registry" in log


def test_worse_challenger_registered_by_a_driftloop_retrain_is_rolled_back(loop: Loop) -> None:
    champion = loop.aliases()["champion"]
    started = httpx.post(f"{loop.service.url}/api/v1/models/{MODEL}/retrain",
                         json={"request_id": "canary-retrain"}, headers=loop.auth, timeout=10)
    assert started.status_code == 202, started.text
    key = started.json()["idempotency_key"]
    worse = str(poll(lambda: loop.aliases().get("challenger"), 120,
                     "driftloop aliasing the retrained version", loop.service.proc))
    loop.traffic.models[worse] = mlflow.sklearn.load_model(f"models:/{MODEL}/{worse}")
    loop.traffic.serve(**{champion: RATE, worse: RATE})
    run_id = loop.client.get_model_version(MODEL, worse).run_id
    assert loop.client.get_run(run_id).data.tags["driftloop.idempotency_key"] == key
    done = loop.wait_canary(lambda c: c["challenger"] == worse and c["phase"] == "rolled_back",
                            "the worse challenger rolled back")
    loop.traffic.serve(**{champion: RATE})
    assert done["verdict"] == "fail" and done["counters"]["failed_checks"] == 2
    assert "found by retrain" in done["history"][0]["sentence"]
    performance = next(c for c in done["evidence"]["checks"] if c["name"] == "performance")
    assert performance["outcome"] == "fail" and performance["statistic"] < -0.5
    assert "challenger" not in loop.aliases() and loop.aliases()["champion"] == champion
    tags = loop.tags(worse)
    assert tags[STATUS] == "rejected" and "performance" in tags["driftloop.canary.evidence"]
    assert [reason for reason, _ in loop.hook_calls(worse)] == ["start", "rollback"]
    assert loop.flagger("rollback", worse).status_code == 200
    assert loop.flagger("confirm-promotion", worse).status_code == 403


def test_challenger_with_too_little_traffic_stays_inconclusive_until_max_inconclusive(
        loop: Loop) -> None:
    champion = loop.aliases()["champion"]
    quiet = loop.log(fit(2, seed=4))
    loop.traffic.serve(**{champion: RATE, quiet: 20})
    loop.client.set_registered_model_alias(MODEL, "challenger", quiet)
    waiting = loop.wait_canary(
        lambda c: c["challenger"] == quiet and c["phase"] == "progressing"
        and c["counters"]["inconclusive_in_a_row"] >= MAX_INCONCLUSIVE - 1,
        "inconclusive checks short of max_inconclusive")
    assert loop.aliases()["champion"] == champion and loop.aliases()["challenger"] == quiet
    assert "too little traffic" in waiting["evidence"]["reason"]
    done = loop.wait_canary(lambda c: c["challenger"] == quiet and c["phase"] == "rolled_back",
                            "rolled back at max_inconclusive")
    loop.traffic.serve(**{champion: RATE})
    assert done["counters"]["inconclusive_in_a_row"] == MAX_INCONCLUSIVE
    assert done["counters"]["passed"] == done["counters"]["failed_checks"] == 0
    assert "inconclusive checks in a row" in done["decision"]["reason"]
    assert "challenger" not in loop.aliases() and loop.aliases()["champion"] == champion


def signed(body: bytes, secret: str, age: float = 0.0) -> dict[str, str]:
    delivery, stamp = os.urandom(8).hex(), str(int(time.time() - age))
    digest = hmac.new(secret.encode(), f"{delivery}.{stamp}.".encode() + body,
                      hashlib.sha256).digest()
    return {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery,
            "X-MLflow-Timestamp": stamp,
            "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode()}


def test_webhook_with_a_bad_signature_or_an_old_timestamp_changes_nothing(loop: Loop) -> None:
    # the service's MLflow webhook is off: only the deliveries below can tell it to look
    loop.client.update_webhook(loop.service_hook, status="DISABLED")
    time.sleep(1.5)  # MLflow's webhook list cache (MLFLOW_WEBHOOK_CACHE_TTL=1)
    champion = loop.aliases()["champion"]
    candidate = loop.log(fit(2, seed=6))
    loop.client.set_registered_model_alias(MODEL, "challenger", candidate)
    before = loop.canary()
    body = orjson.dumps({"entity": "model_version_alias", "action": "created",
                         "timestamp": "2026-01-05T12:00:00+00:00",
                         "data": {"name": MODEL, "alias": "challenger", "version": candidate}})
    url = f"{loop.service.url}/api/v1/mlflow/webhook"
    for headers in (signed(body, "not-the-secret"), signed(body, SECRET, age=3600)):
        refused = httpx.post(url, content=body, headers=headers, timeout=10)
        assert refused.status_code == 401, refused.text
    time.sleep(4 * 0.5)  # a few canary ticks
    assert loop.canary()["updated_at"] == before["updated_at"]
    accepted = httpx.post(url, content=body, headers=signed(body, SECRET), timeout=10)
    assert accepted.status_code == 200 and accepted.json()["action"] == "poll"
    loop.wait_canary(lambda c: c["challenger"] == candidate and c["phase"] == "progressing",
                     "the canary started by the genuine delivery")
    assert driftloop(["canary", "abort", "--model", MODEL, "--url", loop.service.url,
                      "--token-env", TOKEN_ENV, "--note", "webhook test"]) == 0
    loop.wait_canary(lambda c: c["phase"] == "aborted", "the operator's abort applied")
    assert "challenger" not in loop.aliases() and loop.aliases()["champion"] == champion
    assert loop.tags(candidate)[STATUS] == "aborted"
    assert [reason for reason, _ in loop.hook_calls(candidate)] == ["start", "abort"]
    loop.client.update_webhook(loop.service_hook, status="ACTIVE")


def test_kill_9_and_an_mlflow_outage_resume_without_moving_or_calling_twice(loop: Loop) -> None:
    time.sleep(1.5)  # the service's webhook, re-enabled above, out of MLflow's cache
    champion = loop.aliases()["champion"]
    challenger = loop.log(fit(2, seed=7))
    loop.traffic.serve(**{champion: RATE, challenger: RATE})
    loop.client.set_registered_model_alias(MODEL, "challenger", challenger)
    loop.wait_canary(lambda c: c["challenger"] == challenger and c["phase"] == "progressing"
                     and c["counters"]["passed"] == 1, "one passing check")
    loop.restart_service()  # kill -9 in the middle of the canary
    resumed = loop.canary()
    assert (resumed["phase"], resumed["counters"]["passed"]) == ("progressing", 1)
    loop.mlflow_proc.stop()  # MLflow goes away (by its PID) before the decision
    pending = loop.wait_canary(lambda c: c["phase"] == "promoting" and c["pending"] is not None
                               and not c["registry"]["ok"], "a promotion pending on MLflow")
    assert pending["pending"]["remaining"]
    assert loop.service.get("/readyz").status_code == 200  # monitoring goes on
    assert loop.service.metric("driftloop_canary_decisions_total", decision="promote") == 1
    loop.restart_service()  # kill -9 with the decision pending
    assert loop.canary()["phase"] == "promoting"
    assert loop.service.metric("driftloop_canary_decisions_total", decision="promote") == 0
    loop.start_mlflow()  # back on the same port and backend
    done = loop.wait_canary(lambda c: c["phase"] == "succeeded", "the promotion applied")
    loop.traffic.serve(**{challenger: RATE})
    assert done["registry"]["ok"] and done["pending"] is None
    assert loop.aliases() == {"champion": challenger, "previous_champion": champion}
    assert loop.tags(challenger)[STATUS] == "promoted"
    calls = loop.hook_calls(challenger)
    assert [reason for reason, _ in calls] == ["start", "promote"]
    assert len({key for _, key in calls}) == len(calls)
    assert [h["event"] for h in done["history"]].count("promote") == 1
    with Store(f"sqlite:///{loop.workdir / 'state.db'}") as store:
        decided = [d.sentence for d in store.decisions(MODEL, limit=10_000)
                   if d.sentence.startswith(f"promote {MODEL} v{challenger}:")]
    assert len(decided) == 1, decided
    # MLflow's own record of alias events: each move happened once
    poll(lambda: loop.alias_moves("champion", challenger) >= 1, 30, "MLflow's alias event")
    assert loop.alias_moves("champion", challenger) == 1
    assert loop.alias_moves("previous_champion", champion) == 1
    assert loop.alias_moves("challenger", challenger) == 1  # set by the operator only

