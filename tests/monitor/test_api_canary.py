"""Canary routes over HTTP: the Argo Rollouts verdict, Flagger's gates with its documented
webhook body, operator actions, and signed MLflow webhook deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from monitor.api import (
    ServiceStatus,
    create_app,
    create_canary_router,
    create_mlflow_webhook_router,
)
from monitor.store import Store
from tests.monitor.test_canary_reactor import MODEL, Rig, make_config

TOKEN = "canary-token-0123456789"
SECRET = "mlflow-hook-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Api:
    def __init__(self, store: Store, *, secret: str | None = SECRET) -> None:
        config = make_config()
        config.models["plain"] = config.models[MODEL].model_copy(update={"canary": None})
        self.rig = Rig(store, config)
        app = create_app(store, CollectorRegistry(), status=lambda: ServiceStatus(()),
                         auth_token=SecretStr(TOKEN), models=[MODEL, "plain"])
        app.include_router(create_canary_router(self.rig.reactor))
        app.include_router(create_mlflow_webhook_router(
            self.rig.reactor, None if secret is None else SecretStr(secret)))
        self.client = TestClient(app)

    def canary(self) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/models/{MODEL}/canary")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def act(self, action: str, body: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Any:
        return self.client.post(f"/api/v1/models/{MODEL}/canary/{action}", json=body or {},
                                headers={**AUTH, **(headers or {})})

    def gate(self, gate: str, **metadata: str) -> Any:
        # Flagger's webhook payload (docs: flagger.app, "Webhooks")
        body = {"name": MODEL, "namespace": "test", "phase": "Progressing",
                "checksum": "85d557f47b", "metadata": metadata}
        return self.client.post(f"/api/v1/canary/flagger/{gate}", json=body)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with Store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        yield Api(store)


def argo_success(payload: dict[str, Any]) -> bool:
    """Argo Rollouts' web metric with the default jsonPath "{$}": ``result`` is the body;
    the successCondition of the docs' example is ``result.verdict == "pass"``."""
    result = payload
    return bool(result["verdict"] == "pass")


def test_canary_read_before_any_canary_is_inconclusive(api: Api) -> None:
    found = api.canary()
    assert (found["verdict"], found["phase"], found["status"]) == ("inconclusive", None, None)
    assert "point the 'challenger' alias" in found["sentence"]
    assert api.client.get("/api/v1/models/plain/canary").status_code == 404
    assert api.client.get("/api/v1/models/nope/canary").status_code == 404


def test_canary_read_follows_the_canary_as_argo_reads_it(api: Api) -> None:
    api.rig.start_canary()
    progressing = api.canary()
    assert (progressing["phase"], progressing["verdict"]) == ("progressing", "inconclusive")
    assert (progressing["champion"], progressing["challenger"]) == ("1", "2")
    assert progressing["counters"]["iterations"] == 2 and not argo_success(progressing)
    api.rig.interval(champion=0.75, challenger=0.95)
    passed = api.canary()
    assert passed["verdict"] == "pass" and argo_success(passed)
    assert passed["last_check"]["outcome"] == "pass"
    assert {c["name"] for c in passed["evidence"]["checks"]} >= {"traffic", "performance"}
    api.rig.interval(champion=0.75, challenger=0.5, seed=4)
    assert api.canary()["verdict"] == "fail"


def test_canary_read_shows_a_decision_pending_on_the_registry(api: Api) -> None:
    api.rig.start_canary()
    api.rig.registry.down = True
    assert api.act("promote").status_code == 202
    api.rig.tick()
    found = api.canary()
    assert found["phase"] == "promoting" and found["verdict"] == "pass"
    assert found["pending"]["remaining"] and found["registry"]["ok"] is False
    assert "connection refused" in found["sentence"]


def test_operator_action_answers_202_then_200_for_the_same_request_then_409(api: Api) -> None:
    api.rig.start_canary()
    first = api.act("rollback", {"request_id": "ops-1", "note": "bad"})
    assert first.status_code == 202, first.text
    assert first.json()["sentence"].startswith(f"roll back {MODEL} v2: operator request ops-1")
    assert api.act("rollback", {"request_id": "ops-1"}).status_code == 200
    api.rig.tick()
    refused = api.act("abort", headers={"Idempotency-Key": "ops-2"})
    assert refused.status_code == 409
    assert "canary is rolled_back" in refused.json()["detail"]
    assert refused.json()["request_id"] == "ops-2"


@pytest.mark.parametrize("path, headers, body, status", [
    (f"/api/v1/models/{MODEL}/canary/promote", {}, b"{}", 401),
    (f"/api/v1/models/{MODEL}/canary/promote", {**AUTH, "Content-Type": "text/plain"},
     b"{}", 415),
    (f"/api/v1/models/{MODEL}/canary/delete", AUTH, b"{}", 404),
    ("/api/v1/models/plain/canary/promote", AUTH, b"{}", 404),
    (f"/api/v1/models/{MODEL}/canary/promote", AUTH, b'{"force": true}', 422),
    (f"/api/v1/models/{MODEL}/canary/promote", {**AUTH, "Idempotency-Key": "k" * 201},
     b"{}", 400),
])
def test_operator_action_refusals(api: Api, path: str, headers: dict[str, str], body: bytes,
                                  status: int) -> None:
    headers = {"Content-Type": "application/json", **headers}
    response = api.client.post(path, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert api.rig.reactor.state(MODEL) is None


def test_flagger_confirm_promotion_opens_only_once_driftloop_promotes(api: Api) -> None:
    assert api.gate("confirm-promotion").status_code == 403
    api.rig.start_canary()
    api.rig.interval(champion=0.75, challenger=0.95)
    closed = api.gate("confirm-promotion")
    assert closed.status_code == 403 and "not promoted yet" in closed.json()["sentence"]
    api.rig.interval(champion=0.75, challenger=0.95, seed=2)
    opened = api.gate("confirm-promotion")
    assert opened.status_code == 200 and opened.json()["open"] is True
    assert opened.json()["checksum"] == "85d557f47b"
    assert api.gate("rollback").status_code == 403


def test_flagger_rollback_gate_opens_on_a_failed_check_or_a_rollback(api: Api) -> None:
    api.rig.start_canary()
    assert api.gate("rollback").status_code == 403
    api.rig.interval(champion=0.75, challenger=0.5)
    failing = api.gate("rollback")
    assert failing.status_code == 200 and failing.json()["verdict"] == "fail"
    api.act("rollback")
    api.rig.tick()
    assert api.gate("rollback").status_code == 200


def test_flagger_gate_maps_metadata_model_and_version(api: Api) -> None:
    api.rig.start_canary()
    api.rig.interval(champion=0.75, challenger=0.5)
    body = {"name": "podinfo", "namespace": "test", "phase": "Progressing",
            "metadata": {"model": MODEL, "version": "2"}}
    assert api.client.post("/api/v1/canary/flagger/rollback", json=body).status_code == 200
    other = {**body, "metadata": {"model": MODEL, "version": "7"}}
    answer = api.client.post("/api/v1/canary/flagger/rollback", json=other)
    assert answer.status_code == 403 and "judges v2, not v7" in answer.json()["sentence"]
    unknown = {**body, "metadata": {}}
    assert api.client.post("/api/v1/canary/flagger/rollback", json=unknown).status_code == 404
    assert api.client.post("/api/v1/canary/flagger/pre-rollout", json=body).status_code == 404
    assert api.client.post("/api/v1/canary/flagger/rollback",
                           json={"namespace": "test"}).status_code == 422


def signed(body: bytes, *, secret: str = SECRET, age: float = 0.0,
           delivery: str | None = None) -> dict[str, str]:
    delivery = delivery or str(uuid.uuid4())
    stamp = str(int(time.time() - age))
    digest = hmac.new(secret.encode(), f"{delivery}.{stamp}.".encode() + body,
                      hashlib.sha256).digest()
    return {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery,
            "X-MLflow-Timestamp": stamp,
            "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode()}


def alias_event(version: str = "2") -> bytes:
    return orjson.dumps({"entity": "model_version_alias", "action": "created",
                         "timestamp": "2026-01-05T12:00:00+00:00",
                         "data": {"name": MODEL, "alias": "challenger", "version": version}})


def test_mlflow_webhook_signed_delivery_makes_the_canary_look_now(api: Api) -> None:
    api.rig.tick()  # polled: no challenger yet; the next poll is a minute away
    api.rig.registry.register("2")
    api.rig.registry.aliases["challenger"] = "2"
    body = alias_event()
    answer = api.client.post("/api/v1/mlflow/webhook", content=body, headers=signed(body))
    assert answer.status_code == 200, answer.text
    assert answer.json()["action"] == "poll"
    api.rig.tick()
    assert api.rig.state().challenger == "2"


@pytest.mark.parametrize("headers", [
    signed(alias_event(), secret="wrong"),
    signed(alias_event(), age=3600),
    {k: v for k, v in signed(alias_event()).items() if k != "X-MLflow-Signature"},
    {**signed(alias_event()), "X-MLflow-Signature": "v2,AAAA"},
])
def test_mlflow_webhook_bad_signature_or_old_timestamp_is_401_and_changes_nothing(
        api: Api, headers: dict[str, str]) -> None:
    api.rig.tick()
    api.rig.registry.register("2")
    api.rig.registry.aliases["challenger"] = "2"
    answer = api.client.post("/api/v1/mlflow/webhook", content=alias_event(), headers=headers)
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("MLflow webhook refused")
    api.rig.tick()
    assert api.rig.reactor.state(MODEL) is None


def test_mlflow_webhook_replayed_delivery_is_401(api: Api) -> None:
    body = alias_event()
    headers = signed(body)
    assert api.client.post("/api/v1/mlflow/webhook", content=body,
                           headers=headers).status_code == 200
    replay = api.client.post("/api/v1/mlflow/webhook", content=body, headers=headers)
    assert replay.status_code == 401 and "already received" in replay.json()["detail"]


def test_mlflow_webhook_answers_other_events_and_models_with_200_ignored(api: Api) -> None:
    for data, entity in ((
            {"name": "plain", "alias": "challenger", "version": "1"}, "model_version_alias"),
            ({"name": MODEL, "version": "1", "key": "k", "value": "v"}, "model_version_tag"),
            ({"name": MODEL}, "registered_model")):
        action = "set" if entity == "model_version_tag" else "created"
        body = orjson.dumps({"entity": entity, "action": action, "data": data})
        answer = api.client.post("/api/v1/mlflow/webhook", content=body, headers=signed(body))
        assert answer.status_code == 200 and answer.json()["action"] == "ignored", answer.text


def test_mlflow_webhook_signed_but_malformed_body_is_400(api: Api) -> None:
    body = b'{"entity": "model_version", "action": "created"}'
    answer = api.client.post("/api/v1/mlflow/webhook", content=body, headers=signed(body))
    assert answer.status_code == 400


def test_mlflow_webhook_without_a_configured_secret_refuses_everything(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        api = Api(store, secret=None)
        body = alias_event()
        answer = api.client.post("/api/v1/mlflow/webhook", content=body, headers=signed(body))
        assert answer.status_code == 401
        assert "no MLflow webhook secret configured" in answer.json()["detail"]
