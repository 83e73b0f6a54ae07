"""Schemathesis against the app's own OpenAPI document, with and without the token.

The app is built as the service builds it when a token is set and the bind is
public (``protect_reads`` on), with every secret recognizable and planted where a
careless route could echo it: a readiness reason, a stored decision sentence and
run id. Whatever schemathesis sends: no 5xx, no secret in a body or a header, and
without the token nothing is stored and nothing is launched.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from schemathesis import GenerationMode

from monitor.api import (
    Dependency,
    ServiceStatus,
    create_app,
    create_canary_router,
    create_mlflow_webhook_router,
    create_trigger_router,
)
from monitor.metrics import Metrics
from monitor.react import RetrainReactor
from monitor.store import RetrainRun, Store
from tests.monitor.test_canary_reactor import Rig
from tests.monitor.test_canary_reactor import make_config as canary_config
from tests.monitor.test_reactor import Clock, FakeLauncher, make_config

TOKEN = "api-token-SECRET-1111"
GRAFANA_SECRET = "grafana-SECRET-2222"
OTHER_SECRETS = ["state-SECRET-4444", "url-SECRET-5555", "query-SECRET-6666"]
SECRETS = [TOKEN, GRAFANA_SECRET, *OTHER_SECRETS]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BOUNDED = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))


class Api:
    def __init__(self, directory: Path) -> None:
        self.store = Store(f"sqlite:///{directory / 'state.db'}")
        self.launcher = FakeLauncher()
        registry = CollectorRegistry()
        reactor = RetrainReactor(make_config(), self.store, Metrics(registry),
                                 {"carloan": self.launcher}, clock=Clock())
        status = ServiceStatus((Dependency(
            "mlflow", False, f"http://ops:{OTHER_SECRETS[1]}@mlflow.internal refused"),))
        self.app = create_app(self.store, registry, status=lambda: status,
                              auth_token=SecretStr(TOKEN), models=["carloan"],
                              protect_reads=True, secrets=[*OTHER_SECRETS, GRAFANA_SECRET])
        self.app.include_router(create_trigger_router(
            self.store, reactor, models=["carloan"], grafana_secret=SecretStr(GRAFANA_SECRET)))
        # the canary routes, on a canary whose registry is in memory
        self.canary = Rig(self.store, canary_config()).reactor
        self.app.include_router(create_canary_router(self.canary))
        self.app.include_router(create_mlflow_webhook_router(
            self.canary, SecretStr(OTHER_SECRETS[0])))
        # what a target that echoes its URL would leave behind
        echoed = f"/hook?token={OTHER_SECRETS[2]}"
        self.store.create_run(RetrainRun("old", "carloan", "drift", "old", "webhook", "unknown",
                                         1000, 2000, external_id=echoed))
        self.store.log_decision("carloan", "retrain", f"retrain carloan: run webhook {echoed}")

    def recorded(self) -> tuple[int, int, int, int, int]:
        return (len(self.store.alerts(limit=10_000)), len(self.store.runs("carloan", limit=999)),
                len(self.store.decisions("carloan", limit=999)), len(self.launcher.launched),
                len(self.store.canary_states()))


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with tempfile.TemporaryDirectory() as directory:
        built = Api(Path(directory))
        yield built
        built.store.close()


@pytest.fixture(scope="module")
def cases(api: Api) -> st.SearchStrategy[Any]:
    """Valid and invalid requests for every operation of the document."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app, headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, [op.label for op in operations]
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # the configured model too: a generated name is nearly always unknown (404)
    known = [operation.as_strategy(mode, path_parameters={"model": "carloan"})
             for operation in operations if "{model}" in operation.path for mode in modes]
    return st.one_of([operation.as_strategy(mode) for operation in operations
                      for mode in modes] + known)


def assert_safe(response: Any, where: str) -> None:
    # /readyz answers 503 on purpose: mlflow is not ready
    allowed = 503 if where.endswith(" /readyz") else 500
    assert response.status_code < 500 or response.status_code == allowed, (
        f"{where}: {response.status_code} {response.text[:300]}")
    shown = response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
    for secret in SECRETS:
        assert secret not in shown, f"{where} carries {secret!r}: {shown[:300]}"


def test_anonymous_requests_change_nothing_and_leak_nothing(
        api: Api, cases: st.SearchStrategy[Any]) -> None:
    @BOUNDED
    @given(case=cases)
    def anonymous(case: Any) -> None:
        case.headers = {k: v for k, v in (case.headers or {}).items()
                        if k.lower() != "authorization"}
        before = api.recorded()
        response = case.call()
        where = f"{case.method} {case.formatted_path}"
        assert_safe(response, where)
        assert api.recorded() == before, f"{where} without the token changed the store"
        if case.path not in ("/healthz", "/metrics", "/readyz"):
            assert response.status_code in (401, 403, 404, 405, 413, 415), where

    anonymous()


def test_authenticated_requests_leak_nothing(api: Api, cases: st.SearchStrategy[Any]) -> None:
    @BOUNDED
    @given(case=cases)
    def authenticated(case: Any) -> None:
        response = case.call(headers=AUTH)
        assert_safe(response, f"{case.method} {case.formatted_path}")

    authenticated()
