"""The HTTP API through FastAPI's TestClient, on a real SQLite store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from monitor.api import (
    Dependency,
    ModelVersions,
    ServiceStatus,
    check_bind,
    create_app,
    limited_body,
    require_token,
)
from monitor.api.views import ModelDetail, ModelsResponse, ReadyResponse, WindowsPage
from monitor.metrics import Metrics
from monitor.store import CanaryState, RetrainRun, Store, TriggerState

READY = ServiceStatus((Dependency("broker", True), Dependency("state_store", True)))


def _window(i: int, version: str = "3", drift: bool = False) -> dict[str, Any]:
    return {
        "model": "carloan",
        "version": version,
        "window": i,
        "first_offset": None,
        "start": "2019-05-01T00:00:00Z",
        "end": "2019-05-31T08:00:00Z",
        "rows": 5000,
        "dataset_drift": drift,
        "drift_share": 0.57 if drift else 0.0,
        "features": {
            "car_value": {"method": "wasserstein", "score": 0.41, "threshold": 0.1, "drift": drift}
        },
        "prediction_drift": {
            "method": "jensenshannon",
            "score": 0.22,
            "threshold": 0.1,
            "drift": drift,
        },
        "quality": {"missing": {}, "unseen_categories": {}, "violations": []},
        "performance": {
            "metric": "accuracy",
            "value": 0.915,
            "baseline": 0.944,
            "degraded": True,
            "labeled_rows": 5000,
        },
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


AppFactory = Callable[..., FastAPI]


@pytest.fixture
def make_app(store: Store, registry: CollectorRegistry) -> AppFactory:
    def make(**overrides: Any) -> FastAPI:
        options: dict[str, Any] = {
            "status": lambda: READY,
            "auth_token": SecretStr("s3cret"),
            "models": ["carloan", "fraud"],
        }
        options.update(overrides)
        return create_app(store, registry, **options)

    return make


@pytest.fixture
def client(make_app: AppFactory) -> TestClient:
    return TestClient(make_app())


# -- health, readiness, metrics --------------------------------------------------------
def test_healthz_answers_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_200_when_every_dependency_is_ready(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert ReadyResponse.model_validate(response.json()).ready is True


def test_readyz_is_503_naming_the_dependency_not_ready(make_app: AppFactory) -> None:
    status = ServiceStatus(
        (
            Dependency("broker", False, "no broker at 127.0.0.1:9092"),
            Dependency("state_store", True),
            Dependency("mlflow", True),
        )
    )
    response = TestClient(make_app(status=lambda: status)).get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == "not ready: broker (no broker at 127.0.0.1:9092)"
    assert body["dependencies"]["broker"] == {
        "ready": False,
        "reason": "no broker at 127.0.0.1:9092",
    }
    assert body["dependencies"]["mlflow"]["ready"] is True


def test_readyz_is_503_when_the_status_check_itself_fails(make_app: AppFactory) -> None:
    def broken() -> ServiceStatus:
        raise ConnectionError("secret internals")

    response = TestClient(make_app(status=broken)).get("/readyz")
    assert response.status_code == 503
    assert "ConnectionError" in response.json()["detail"]
    assert "secret internals" not in response.text


def test_metrics_exposes_the_injected_registry(
    registry: CollectorRegistry, client: TestClient
) -> None:
    Metrics(registry).count_events("carloan", "3", "prediction", 7)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert (
        'driftloop_events_total{kind="prediction",model="carloan",version="3"} 7.0' in response.text
    )


def test_metrics_speaks_openmetrics_when_asked(
    registry: CollectorRegistry, client: TestClient
) -> None:
    Metrics(registry)
    response = client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


# -- models ------------------------------------------------------------------------------
def test_models_lists_each_configured_model(store: Store, client: TestClient) -> None:
    store.put_window("carloan", "3", "rows:0", 0, _window(0))
    store.put_window("carloan", "3", "rows:1", 1, _window(1, drift=True))
    store.put_canary(CanaryState("carloan", "running", champion="3", challenger="4"))
    store.log_decision(
        "carloan", "retrain", "retrain carloan: dataset drift in 2 consecutive windows", at_ms=0
    )
    response = client.get("/api/v1/models")
    assert response.status_code == 200
    models = ModelsResponse.model_validate(response.json()).models
    assert [m.name for m in models] == ["carloan", "fraud"]
    carloan, fraud = models
    assert (carloan.champion, carloan.challenger) == ("3", "4")
    assert carloan.last_window is not None
    assert (carloan.last_window.window, carloan.last_window.dataset_drift) == (1, True)
    assert carloan.last_window.performance == 0.915
    assert carloan.decisions[0].sentence.startswith("retrain carloan:")
    assert carloan.decisions[0].at == "1970-01-01T00:00:00.000Z"
    assert (fraud.last_window, fraud.champion, fraud.decisions) == (None, None, [])


def test_injected_versions_give_champion_and_challenger(make_app: AppFactory) -> None:
    app = make_app(versions=lambda model: ModelVersions("7", None))
    body = TestClient(app).get("/api/v1/models/fraud").json()
    assert (body["champion"], body["challenger"]) == ("7", None)


def test_model_detail_has_last_window_canary_trigger_and_runs(
    store: Store, client: TestClient
) -> None:
    store.put_window("carloan", "3", "rows:0", 0, _window(0))
    store.put_trigger_state(
        TriggerState("carloan", {"dataset_drift": 1}, cooldown_until_ms=3_600_000)
    )
    store.create_run(
        RetrainRun("run-1", "carloan", "dataset drift", "k1", "command", "running", 1000)
    )
    response = client.get("/api/v1/models/carloan")
    assert response.status_code == 200
    detail = ModelDetail.model_validate(response.json())
    assert detail.last_window is not None and detail.last_window.window == 0
    assert response.json()["last_window"] == _window(0)
    assert (
        detail.trigger is not None and detail.trigger.cooldown_until == "1970-01-01T01:00:00.000Z"
    )
    assert [r.id for r in detail.retrain_runs] == ["run-1"]
    assert detail.canary is None


def test_unknown_model_is_404_with_the_configured_names(client: TestClient) -> None:
    for path in ("/api/v1/models/nope", "/api/v1/models/nope/windows"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "unknown model 'nope'; configured: carloan, fraud"}


def test_windows_are_design_results_newest_first(store: Store, client: TestClient) -> None:
    for i in range(5):
        store.put_window("carloan", "3", f"rows:{i}", i, _window(i))
    response = client.get("/api/v1/models/carloan/windows", params={"limit": 2})
    assert response.status_code == 200
    page = WindowsPage.model_validate(response.json())
    assert (page.model, page.count, [w.window for w in page.windows]) == ("carloan", 2, [4, 3])
    assert response.json()["windows"][0] == _window(4)
    assert client.get("/api/v1/models/carloan/windows").json()["count"] == 5


@pytest.mark.parametrize("limit", ["0", "1001", "-3", "ten"])
def test_windows_limit_outside_1_to_1000_is_422_with_a_reason(
    client: TestClient, limit: str
) -> None:
    response = client.get("/api/v1/models/carloan/windows", params={"limit": limit})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith(f"query limit: got '{limit}', expected ")


def test_openapi_document_lists_the_read_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/models",
        "/api/v1/models/{model}",
        "/api/v1/models/{model}/windows",
    ):
        assert "get" in paths[path], path


# -- auth, body limit, errors (for the mutating routes added later) --------------------------
def _with_test_routes(app: FastAPI) -> TestClient:
    @app.post("/test/mutate", dependencies=[Depends(require_token)])
    def mutate() -> dict[str, str]:
        return {"done": "yes"}

    @app.post("/test/body")
    def body(raw: Annotated[bytes, Depends(limited_body)]) -> dict[str, int]:
        return {"bytes": len(raw)}

    @app.get("/test/boom")
    def boom() -> None:
        raise RuntimeError("database password is hunter2")

    # as a script on the same host posts: to a loopback address, with a JSON body
    return TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1:8080",
                      headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing bearer token"),
        ("Bearer wrong", "invalid bearer token"),
        ("Basic czNjcmV0", "authorization scheme 'Basic'"),
        ("Bearer ", "authorization scheme 'Bearer'"),
    ],
)
def test_mutating_route_without_the_right_token_is_401(
    make_app: AppFactory, header: str | None, reason: str
) -> None:
    client = _with_test_routes(make_app())
    headers = {"Authorization": header} if header is not None else {}
    response = client.post("/test/mutate", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["detail"].startswith(reason)


def test_mutating_route_with_the_token_passes(make_app: AppFactory) -> None:
    client = _with_test_routes(make_app())
    response = client.post("/test/mutate", headers={"Authorization": "bearer s3cret"})
    assert (response.status_code, response.json()) == (200, {"done": "yes"})


def test_mutating_route_is_open_when_no_token_is_configured(make_app: AppFactory) -> None:
    client = _with_test_routes(make_app(auth_token=None))
    assert client.post("/test/mutate").status_code == 200


def test_body_over_the_limit_is_413_declared_or_streamed(make_app: AppFactory) -> None:
    client = _with_test_routes(make_app(max_body_bytes=100))
    assert client.post("/test/body", content=b"x" * 100).json() == {"bytes": 100}
    declared = client.post("/test/body", content=b"x" * 101)
    assert declared.status_code == 413
    assert declared.json()["detail"] == "request body of 101 bytes: expected at most 100 bytes"
    streamed = client.post("/test/body", content=iter([b"x" * 60, b"x" * 60]))
    assert streamed.status_code == 413
    assert streamed.json()["detail"] == "request body over 100 bytes: expected at most 100 bytes"


def test_unexpected_error_is_a_logged_500_without_a_trace(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = _with_test_routes(make_app())
    with caplog.at_level(logging.ERROR, logger="driftloop.api"):
        response = client.get("/test/boom")
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert detail.startswith("internal error ") and "hunter2" not in response.text
    assert "Traceback" not in response.text
    error_id = detail.split()[2].rstrip(";")
    assert any(error_id in record.getMessage() and record.exc_info for record in caplog.records)


def test_check_bind_refuses_unauthenticated_non_loopback() -> None:
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", SecretStr("t"))
    with pytest.raises(ValueError, match="need a token on a non-loopback address"):
        check_bind("0.0.0.0", None)
