"""The alert webhook and manual retrain routes, through FastAPI's TestClient."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy.exc import OperationalError

from monitor.api import ServiceStatus, create_app, create_trigger_router
from monitor.metrics import Metrics
from monitor.react import RetrainReactor
from monitor.store import Store
from tests.monitor.test_reactor import Clock, FakeLauncher, make_config

TOKEN = "s3cret-token"
GRAFANA_SECRET = "grafana-hmac-key"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BYTES = 4096


class Harness:
    def __init__(self, tmp_path: Path, *, grafana: bool = False, **retrain: Any) -> None:
        self.store = Store(f"sqlite:///{tmp_path / 'state.db'}")
        self.launcher = FakeLauncher()
        registry = CollectorRegistry()
        self.reactor = RetrainReactor(make_config(**retrain), self.store, Metrics(registry),
                                      {"carloan": self.launcher}, clock=Clock())
        app = create_app(self.store, registry, status=lambda: ServiceStatus(()),
                         auth_token=SecretStr(TOKEN), models=["carloan"],
                         max_body_bytes=MAX_BYTES)
        app.include_router(create_trigger_router(
            self.store, self.reactor, models=["carloan"], max_body_bytes=MAX_BYTES,
            grafana_secret=SecretStr(GRAFANA_SECRET) if grafana else None))
        # Alertmanager and Grafana post JSON, which the service requires on mutating routes
        self.client = TestClient(app, headers={"Content-Type": "application/json"})

    def started_nothing(self) -> bool:
        return self.launcher.launched == [] and self.store.runs("carloan") == []


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    built = Harness(tmp_path)
    yield built
    built.store.close()


def alertmanager(status: str = "firing", *, model: str = "carloan", fingerprint: str = "a1b2",
                 action: str = "retrain", **extra: Any) -> dict[str, Any]:
    labels = {"alertname": "DriftloopDatasetDrift", "model": model, "version": "1",
              "severity": "warning", "action": action}
    item = {"status": status, "labels": labels, "annotations": {"summary": "drift"},
            "startsAt": "2026-01-05T12:00:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint}
    return {"version": "4", "status": status, "receiver": "driftloop", "groupKey": "{}:{}",
            "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": labels,
            "commonAnnotations": {}, "externalURL": "http://am", "alerts": [item],
            "notification_reason": "new", **extra}


def grafana_body() -> bytes:
    payload = alertmanager()
    payload.update(version="1", orgId=1, state="alerting", title="[FIRING:1]", message="m")
    return orjson.dumps(payload)


def grafana_signed(body: bytes, secret: str = GRAFANA_SECRET) -> dict[str, str]:
    """Headers of a Grafana delivery signed now, as the shipped contact point signs it."""
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Grafana-Alerting-Signature": digest,
            "X-Grafana-Alerting-Signature-Timestamp": stamp}


def test_firing_retrain_alert_is_persisted_and_starts_one_run(harness: Harness) -> None:
    first = harness.client.post("/api/v1/alerts", json=alertmanager(), headers=AUTH)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["received"], body["new"], body["duplicates"]) == (1, 1, 0)
    assert body["decisions"][0]["action"] == "retrain"
    assert body["decisions"][0]["sentence"].startswith(
        "retrain carloan: alert DriftloopDatasetDrift firing since 2026-01-05T12:00:00.123456Z")
    [record] = harness.store.alerts("carloan")
    assert (record.fingerprint, record.status) == ("a1b2", "firing")
    repeat = harness.client.post("/api/v1/alerts", json=alertmanager(), headers=AUTH)
    assert repeat.status_code == 200
    assert (repeat.json()["new"], repeat.json()["duplicates"]) == (0, 1)
    assert repeat.json()["decisions"][0]["action"] == "none"
    assert len(harness.launcher.launched) == 1


@pytest.mark.parametrize("headers, reason", [
    ({}, "missing bearer token"),
    ({"Authorization": "Bearer wrong"}, "invalid bearer token"),
    ({"Authorization": f"Basic {TOKEN}"}, "expected 'Bearer <token>'"),
])
def test_alert_without_the_token_is_401_and_starts_nothing(
        harness: Harness, headers: dict[str, str], reason: str) -> None:
    response = harness.client.post("/api/v1/alerts", json=alertmanager(), headers=headers)
    assert response.status_code == 401
    assert reason in response.json()["detail"]
    assert harness.started_nothing() and harness.store.alerts() == []


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "expected an object"),
    (orjson.dumps({**alertmanager(), "version": "3"}), "expected '4' (Alertmanager)"),
    (orjson.dumps({**alertmanager(), "alerts": [{"status": "firing"}]}), "alerts.0.labels"),
    (orjson.dumps({**alertmanager(), "status": "burning"}), "status"),
])
def test_malformed_alert_payload_is_400_with_a_reason(
        harness: Harness, body: bytes, reason: str) -> None:
    response = harness.client.post("/api/v1/alerts", content=body, headers=AUTH)
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert harness.started_nothing() and harness.store.alerts() == []


def test_oversized_alert_body_is_413_and_starts_nothing(harness: Harness) -> None:
    body = orjson.dumps(alertmanager(padding="x" * MAX_BYTES))
    response = harness.client.post("/api/v1/alerts", content=body, headers=AUTH)
    assert response.status_code == 413
    assert f"expected at most {MAX_BYTES} bytes" in response.json()["detail"]
    assert harness.started_nothing() and harness.store.alerts() == []


def test_resolved_alert_is_recorded_but_never_retrains(harness: Harness) -> None:
    response = harness.client.post("/api/v1/alerts", json=alertmanager("resolved"), headers=AUTH)
    assert response.status_code == 200
    assert response.json()["decisions"] == []
    assert [a.status for a in harness.store.alerts()] == ["resolved"]
    assert harness.started_nothing()


def test_alert_without_retrain_action_or_for_unknown_model_starts_nothing(
        harness: Harness) -> None:
    paging = harness.client.post("/api/v1/alerts", json=alertmanager(action="page"), headers=AUTH)
    assert paging.status_code == 200 and paging.json()["decisions"] == []
    other = harness.client.post("/api/v1/alerts", json=alertmanager(model="churn", fingerprint="c"),
                                headers=AUTH)
    assert other.status_code == 200
    assert "unknown model 'churn'" in other.json()["ignored"][0]
    assert harness.started_nothing()


def test_store_down_answers_503_so_alertmanager_retries(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*args: Any, **kwargs: Any) -> bool:
        raise OperationalError("INSERT", {}, Exception("could not connect to server"))

    monkeypatch.setattr(harness.store, "record_alert", down)
    response = harness.client.post("/api/v1/alerts", json=alertmanager(), headers=AUTH)
    assert response.status_code == 503
    assert "state store unavailable" in response.json()["detail"]
    assert response.headers["retry-after"] == "5"
    assert harness.launcher.launched == []


def test_grafana_payload_with_a_valid_hmac_starts_a_run(tmp_path: Path) -> None:
    harness = Harness(tmp_path, grafana=True)
    body = grafana_body()
    response = harness.client.post("/api/v1/alerts", content=body, headers=grafana_signed(body))
    assert response.status_code == 200, response.text
    assert response.json()["decisions"][0]["action"] == "retrain"
    assert harness.store.alerts()[0].payload["source"] == "grafana"
    assert len(harness.launcher.launched) == 1


def test_grafana_payload_with_a_wrong_signature_is_401_and_starts_nothing(
        tmp_path: Path) -> None:
    harness = Harness(tmp_path, grafana=True)
    body = grafana_body()
    response = harness.client.post("/api/v1/alerts", content=body,
                                   headers=grafana_signed(body, "not-the-secret"))
    assert response.status_code == 401
    assert "does not match the body" in response.json()["detail"]
    assert harness.started_nothing() and harness.store.alerts() == []


def test_manual_retrain_answers_202_with_the_sentence_and_the_run(harness: Harness) -> None:
    response = harness.client.post("/api/v1/models/carloan/retrain", headers=AUTH,
                                   json={"request_id": "r-1", "requested_by": "ana",
                                         "note": "new data"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["sentence"].startswith(
        "retrain carloan: manual request r-1 by ana: new data; run fake run-1 started")
    assert body["run"]["run_id"] == "run-1"
    assert body["run"]["idempotency_key"] == body["idempotency_key"]
    again = harness.client.post("/api/v1/models/carloan/retrain", headers=AUTH,
                                json={"request_id": "r-1"})
    assert again.status_code == 409
    assert "manual request r-1 already handled" in again.json()["detail"]
    assert len(harness.launcher.launched) == 1


def test_manual_retrain_while_a_run_is_in_flight_is_409(harness: Harness) -> None:
    assert harness.client.post("/api/v1/models/carloan/retrain", headers=AUTH).status_code == 202
    second = harness.client.post("/api/v1/models/carloan/retrain", headers=AUTH)
    assert second.status_code == 409
    assert "still running" in second.json()["detail"]


@pytest.mark.parametrize("path, headers, body, status, reason", [
    ("/api/v1/models/churn/retrain", AUTH, b"", 404, "unknown model 'churn'"),
    ("/api/v1/models/carloan/retrain", {}, b"", 401, "missing bearer token"),
    ("/api/v1/models/carloan/retrain", AUTH, b'{"priority": 1}', 422, "priority"),
    ("/api/v1/models/carloan/retrain", AUTH, b"{oops", 422, "invalid json"),
])
def test_manual_retrain_rejections_start_nothing(
        harness: Harness, path: str, headers: dict[str, str], body: bytes, status: int,
        reason: str) -> None:
    response = harness.client.post(path, content=body, headers=headers)
    assert response.status_code == status
    assert reason in response.json()["detail"].lower()
    assert harness.started_nothing()


def test_manual_retrain_refused_when_manual_is_not_a_trigger(tmp_path: Path) -> None:
    harness = Harness(tmp_path, on=["dataset_drift"])
    response = harness.client.post("/api/v1/models/carloan/retrain", headers=AUTH)
    assert response.status_code == 409
    assert "'manual' is not in retrain.on" in response.json()["detail"]
    assert harness.started_nothing()
