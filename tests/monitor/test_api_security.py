"""Cross-site requests, Grafana signatures, header caps and log hygiene, through the real
FastAPI app (``create_app`` + ``create_trigger_router``) on a real SQLite store.

The scenarios are those of issue 9: a web page the operator visits posting to a
tokenless loopback service (findings 3), a captured Grafana delivery replayed
(4), an oversized ``Idempotency-Key`` and CR/LF in request text (6).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta
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
from tests.monitor.test_api_triggers import alertmanager, grafana_body
from tests.monitor.test_reactor import Clock, FakeLauncher, make_config

TOKEN = "s3cret-token"
GRAFANA_SECRET = "grafana-hmac-key"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
LOCAL = "http://127.0.0.1:8080"
NOW = datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC)
TIMESTAMP_HEADER = "X-Grafana-Alerting-Signature-Timestamp"
RETRAIN = "/api/v1/models/carloan/retrain"


class Service:
    """The app as ``serve`` builds it, with a fake launcher; ``token=None``: loopback mode."""

    def __init__(self, tmp_path: Path, *, token: str | None = TOKEN, grafana: bool = False,
                 base_url: str = LOCAL, app: dict[str, Any] | None = None,
                 router: dict[str, Any] | None = None) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.store = Store(f"sqlite:///{tmp_path / 'state.db'}")
        self.launcher = FakeLauncher()
        registry = CollectorRegistry()
        self.reactor = RetrainReactor(make_config(), self.store, Metrics(registry),
                                      {"carloan": self.launcher}, clock=Clock())
        self.app = create_app(self.store, registry, status=lambda: ServiceStatus(()),
                              auth_token=SecretStr(token) if token else None,
                              models=["carloan"], **(app or {}))
        self.app.include_router(create_trigger_router(
            self.store, self.reactor, models=["carloan"],
            grafana_secret=SecretStr(GRAFANA_SECRET) if grafana else None,
            clock=lambda: NOW, **(router or {})))
        self.client = TestClient(self.app, base_url=base_url)

    def started_nothing(self) -> bool:
        return self.launcher.launched == [] and self.store.runs("carloan") == []

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def loopback(tmp_path: Path) -> Any:
    service = Service(tmp_path, token=None)
    yield service
    service.close()


@pytest.fixture
def grafana(tmp_path: Path) -> Any:
    service = Service(tmp_path, grafana=True)
    yield service
    service.close()


# -- finding 3: cross-site requests in loopback mode ------------------------------------------
@pytest.mark.parametrize("headers, body", [
    ({"Content-Type": "text/plain;charset=UTF-8"}, b'{"note": "from a web page"}'),
    ({"Content-Type": "application/x-www-form-urlencoded"}, b"note=x"),
    ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x--"),
    ({}, b""),
    ({"Content-Type": "application/jsonp"}, b"{}"),
])
def test_manual_retrain_without_a_json_content_type_is_415_and_starts_nothing(
        loopback: Service, headers: dict[str, str], body: bytes) -> None:
    response = loopback.client.post(RETRAIN, content=body, headers=headers)
    assert response.status_code == 415, response.text
    detail = response.json()["detail"]
    assert "Content-Type" in detail and "expected application/json" in detail
    assert loopback.started_nothing()


def test_alert_with_a_form_content_type_is_415_and_records_nothing(loopback: Service) -> None:
    response = loopback.client.post(
        "/api/v1/alerts", content=orjson.dumps(alertmanager()),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415, response.text
    assert "'application/x-www-form-urlencoded'" in response.json()["detail"]
    assert loopback.store.alerts() == [] and loopback.started_nothing()


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_manual_retrain_with_a_json_content_type_starts_a_run(
        loopback: Service, content_type: str) -> None:
    response = loopback.client.post(RETRAIN, content=b"", headers={"Content-Type": content_type})
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:9999",
                                    "http://127.0.0.1", "http://127.0.0.1:8080.evil.example",
                                    "file://", "http://user@127.0.0.1:8080@evil.example"])
def test_mutating_request_from_a_foreign_origin_is_403_and_starts_nothing(
        loopback: Service, origin: str) -> None:
    response = loopback.client.post(RETRAIN, json={}, headers={"Origin": origin})
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert f"Origin {origin!r}" in detail and "server.allowed_origins" in detail
    assert loopback.started_nothing()


def test_alert_from_a_foreign_origin_is_403_and_records_nothing(loopback: Service) -> None:
    response = loopback.client.post("/api/v1/alerts", json=alertmanager(),
                                    headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert loopback.store.alerts() == []


def test_same_origin_and_no_origin_requests_are_accepted(loopback: Service) -> None:
    same = loopback.client.post(RETRAIN, json={"request_id": "a"}, headers={"Origin": LOCAL})
    assert same.status_code == 202, same.text
    # Alertmanager and Grafana send no Origin
    alert = loopback.client.post("/api/v1/alerts", json=alertmanager(action="page"))
    assert alert.status_code == 200, alert.text


def test_listed_origin_is_accepted(tmp_path: Path) -> None:
    service = Service(tmp_path, token=None,
                      app={"allowed_origins": ["https://ops.example:8443"]})
    response = service.client.post(RETRAIN, json={},
                                   headers={"Origin": "https://ops.example:8443"})
    assert response.status_code == 202, response.text
    other = service.client.post("/api/v1/alerts", json=alertmanager(),
                                headers={"Origin": "https://ops.example"})
    assert other.status_code == 403
    service.close()


def test_tokenless_mutating_request_for_a_foreign_host_is_403(tmp_path: Path) -> None:
    # DNS rebinding: the attacker's name resolves to 127.0.0.1, so the page is
    # "same origin" as far as the browser knows; only the Host header tells
    service = Service(tmp_path, token=None, base_url="http://rebind.evil.example:8080")
    response = service.client.post(RETRAIN, json={},
                                   headers={"Origin": "http://rebind.evil.example:8080"})
    assert response.status_code == 403, response.text
    assert "Host 'rebind.evil.example:8080'" in response.json()["detail"]
    assert service.started_nothing()
    service.close()


@pytest.mark.parametrize("base_url", ["http://localhost:8080", "http://[::1]:8080",
                                      "http://127.0.0.2"])
def test_tokenless_mutating_request_for_a_loopback_host_is_accepted(
        tmp_path: Path, base_url: str) -> None:
    service = Service(tmp_path, token=None, base_url=base_url)
    assert service.client.post(RETRAIN, json={}).status_code == 202
    service.close()


def test_with_a_token_any_host_is_accepted(tmp_path: Path) -> None:
    service = Service(tmp_path, base_url="http://driftloop.internal:8080")
    assert service.client.post(RETRAIN, json={}, headers=AUTH).status_code == 202
    service.close()


def test_same_origin_behind_a_tls_proxy_is_accepted(tmp_path: Path) -> None:
    # the browser talks https to the proxy, which forwards the Host to plain-HTTP driftloop
    service = Service(tmp_path, base_url="http://driftloop.example")
    response = service.client.post(RETRAIN, json={}, headers={
        **AUTH, "Origin": "https://driftloop.example", "Host": "driftloop.example"})
    assert response.status_code == 202, response.text
    service.close()


# -- finding 4: Grafana signatures -------------------------------------------------------------
def signed(body: bytes, moment: datetime = NOW, secret: str = GRAFANA_SECRET) -> dict[str, str]:
    stamp = str(int(moment.timestamp()))
    digest = hmac.new(secret.encode(), f"{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {**JSON, "X-Grafana-Alerting-Signature": digest, TIMESTAMP_HEADER: stamp}


def test_grafana_delivery_signed_with_its_timestamp_starts_a_run(grafana: Service) -> None:
    body = grafana_body()
    response = grafana.client.post("/api/v1/alerts", content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    assert response.json()["decisions"][0]["action"] == "retrain"


def test_grafana_delivery_replayed_is_401_and_changes_nothing(grafana: Service) -> None:
    body = grafana_body()
    headers = signed(body)
    assert grafana.client.post("/api/v1/alerts", content=body, headers=headers).status_code == 200
    replay = grafana.client.post("/api/v1/alerts", content=body, headers=headers)
    assert replay.status_code == 401, replay.text
    assert "already received" in replay.json()["detail"]
    assert len(grafana.store.alerts()) == 1 and len(grafana.launcher.launched) == 1


@pytest.mark.parametrize("offset", [timedelta(minutes=-10), timedelta(minutes=6)])
def test_grafana_delivery_with_a_stale_or_future_timestamp_is_401(
        grafana: Service, offset: timedelta) -> None:
    body = grafana_body()
    response = grafana.client.post("/api/v1/alerts", content=body,
                                   headers=signed(body, NOW + offset))
    assert response.status_code == 401
    assert "s from now; expected at most 300 s" in response.json()["detail"]
    assert grafana.store.alerts() == [] and grafana.started_nothing()


def test_grafana_delivery_without_the_timestamp_header_is_401(grafana: Service) -> None:
    body = grafana_body()
    headers = signed(body)
    del headers[TIMESTAMP_HEADER]
    response = grafana.client.post("/api/v1/alerts", content=body, headers=headers)
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert f"missing {TIMESTAMP_HEADER}" in detail and "server.grafana_timestamp_header" in detail
    assert grafana.store.alerts() == []


@pytest.mark.parametrize("header", [b"\xe9" * 64, "é".encode("latin-1") + b"0" * 63,
                                    b"sha256=" + b"\xff" * 64])
def test_grafana_signature_with_non_ascii_characters_is_401_not_500(
        grafana: Service, header: bytes) -> None:
    body = grafana_body()
    headers: dict[str, Any] = {**signed(body), "X-Grafana-Alerting-Signature": header}
    response = grafana.client.post("/api/v1/alerts", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert grafana.store.alerts() == []


def test_grafana_timestamp_header_can_be_renamed_or_turned_off(tmp_path: Path) -> None:
    body = grafana_body()
    renamed = Service(tmp_path / "a", grafana=True,
                      router={"grafana_timestamp_header": "X-Grafana-Alerting-Timestamp"})
    headers = signed(body)
    headers["X-Grafana-Alerting-Timestamp"] = headers.pop(TIMESTAMP_HEADER)
    assert renamed.client.post("/api/v1/alerts", content=body, headers=headers).status_code == 200
    renamed.close()
    # null: the body alone is signed (Grafana without a timestampHeader)
    plain = Service(tmp_path / "b", grafana=True, router={"grafana_timestamp_header": None})
    digest = hmac.new(GRAFANA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = plain.client.post("/api/v1/alerts", content=body,
                                 headers={**JSON, "X-Grafana-Alerting-Signature": digest})
    assert response.status_code == 200, response.text
    plain.close()


# -- finding 6: header caps and log hygiene ------------------------------------------------------
def test_idempotency_key_over_200_characters_is_400_and_starts_nothing(
        loopback: Service) -> None:
    response = loopback.client.post(RETRAIN, json={}, headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == (
        "Idempotency-Key header: got 201 characters, expected at most 200")
    assert loopback.started_nothing()
    accepted = loopback.client.post(RETRAIN, json={}, headers={"Idempotency-Key": "k" * 200})
    assert accepted.status_code == 202


def test_control_characters_in_request_text_never_forge_a_log_line(
        loopback: Service, caplog: pytest.LogCaptureFixture) -> None:
    forged = "x\r\n2026-01-05 12:00:00 INFO driftloop: FORGED\x1b[2J\u2028\u202e"
    caplog.set_level(logging.DEBUG)
    loopback.client.post(RETRAIN, json={"request_id": forged, "requested_by": forged,
                                        "note": forged})
    loopback.client.post(RETRAIN, json={}, headers={"Idempotency-Key": "k\t\x1bFORGED"})
    alert = alertmanager()
    alert["alerts"][0]["labels"].update(alertname=forged, model="carloan")
    alert["alerts"][0]["fingerprint"] = forged
    alert["alerts"][0]["annotations"]["summary"] = forged
    loopback.client.post("/api/v1/alerts", json=alert)
    unknown = alertmanager(model=forged, fingerprint="other")
    loopback.client.post("/api/v1/alerts", json=unknown)

    def down(*_args: Any, **_kwargs: Any) -> bool:
        raise OperationalError("INSERT INTO alerts", {"labels": forged}, Exception(forged))

    with pytest.MonkeyPatch.context() as patch:  # the store's error quotes the statement
        patch.setattr(loopback.store, "record_alert", down)
        assert loopback.client.post("/api/v1/alerts", json=alert).status_code == 503
    messages = [record.getMessage() for record in caplog.records]
    assert any("FORGED" in message for message in messages), messages
    for message in messages:
        for bad in ("\r", "\n", "\x1b", "\u2028", "\u202e", "\t"):
            assert bad not in message, repr(message)
