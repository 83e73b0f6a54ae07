"""``server.protect_reads`` and ``server.protect_metrics``: which routes need the token,
through the real FastAPI app on a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from monitor.api import Dependency, ServiceStatus, create_app, resolve_protect_reads
from monitor.store import Store

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READS = ["/api/v1/models", "/api/v1/models/carloan", "/api/v1/models/carloan/windows",
         "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"]
NOT_READY = ServiceStatus((Dependency("broker", False, "no answer from kafka-0.internal:9092"),
                           Dependency("state_store", True)))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def client(store: Store, **options: Any) -> TestClient:
    settings: dict[str, Any] = {"status": lambda: NOT_READY, "auth_token": SecretStr(TOKEN),
                                "models": ["carloan"], **options}
    return TestClient(create_app(store, CollectorRegistry(), **settings))


@pytest.mark.parametrize("path", READS)
def test_protected_reads_without_the_token_are_401(store: Store, path: str) -> None:
    response = client(store, protect_reads=True).get(path)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "missing bearer token" in response.json()["detail"]


@pytest.mark.parametrize("path", READS)
def test_protected_reads_with_the_token_are_200(store: Store, path: str) -> None:
    assert client(store, protect_reads=True).get(path, headers=AUTH).status_code == 200


@pytest.mark.parametrize("path", READS)
def test_reads_are_open_when_not_protected(store: Store, path: str) -> None:
    assert client(store, protect_reads=False).get(path).status_code == 200


def test_protected_readyz_keeps_its_status_but_hides_the_reasons(store: Store) -> None:
    protected = client(store, protect_reads=True)
    anonymous = protected.get("/readyz")
    assert anonymous.status_code == 503
    assert "kafka-0.internal" not in anonymous.text
    assert anonymous.json()["detail"] == "not ready: broker"
    assert anonymous.json()["dependencies"]["broker"] == {"ready": False, "reason": ""}
    authorized = protected.get("/readyz", headers=AUTH)
    assert authorized.status_code == 503
    assert authorized.json()["dependencies"]["broker"]["reason"] == (
        "no answer from kafka-0.internal:9092")


def test_healthz_and_metrics_stay_open_under_protect_reads(store: Store) -> None:
    protected = client(store, protect_reads=True)
    assert protected.get("/healthz").status_code == 200
    assert protected.get("/metrics").status_code == 200


def test_protect_metrics_puts_metrics_behind_the_token(store: Store) -> None:
    protected = client(store, protect_metrics=True)
    assert protected.get("/metrics").status_code == 401
    assert protected.get("/metrics", headers=AUTH).status_code == 200
    assert protected.get("/api/v1/models").status_code == 200


@pytest.mark.parametrize("setting, host, token, protected", [
    (None, "0.0.0.0", "t0ken", True),
    (None, "10.1.2.3", "t0ken", True),
    (None, "127.0.0.1", "t0ken", False),
    (None, "localhost", "t0ken", False),
    (None, "::1", "t0ken", False),
    (None, "127.0.0.1", None, False),
    (False, "0.0.0.0", "t0ken", False),
    (True, "127.0.0.1", "t0ken", True),
])
def test_protect_reads_default_is_on_with_a_token_off_loopback(
        setting: bool | None, host: str, token: str | None, protected: bool) -> None:
    secret = SecretStr(token) if token else None
    assert resolve_protect_reads(setting, host, secret) is protected


def test_protect_reads_true_without_a_token_is_refused() -> None:
    with pytest.raises(ValueError) as caught:
        resolve_protect_reads(True, "127.0.0.1", None)
    assert str(caught.value).startswith("server.protect_reads: got true")
    assert "server.auth_token_env" in str(caught.value)
