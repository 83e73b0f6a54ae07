"""No secret in a response, an error or a log line; launchers learn every secret value;
the command launcher's runs are stopped when the service shuts down.

The service is built as ``driftloop serve`` builds it (``monitor.runtime.build`` and
``service_app``) from a config whose every secret is recognizable, with a real
webhook target on a loopback port that echoes the request back.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from monitor.api import Dependency, ServiceStatus, create_app
from monitor.config import load_config
from monitor.react import build_launchers, known_secrets
from monitor.runtime import Runtime, build, mask_secrets_in_logs, service_app
from monitor.store import Store
from triggers.launch import LaunchRequest

SECRETS = {
    "DRIFTLOOP_TOKEN": "api-token-SECRET-1111",
    "GRAFANA_HMAC": "grafana-SECRET-2222",
    "MLFLOW_HOOK": "mlflow-SECRET-3333",
    "HOOK_HMAC": "webhook-SECRET-7777",
}
STATE_PASSWORD = "state-SECRET-4444"
URL_PASSWORD = "url-SECRET-5555"
URL_QUERY = "query-SECRET-6666"
ALL = [*SECRETS.values(), STATE_PASSWORD, URL_PASSWORD, URL_QUERY]
AUTH = {"Authorization": f"Bearer {SECRETS['DRIFTLOOP_TOKEN']}",
        "Content-Type": "application/json"}


class Echo(BaseHTTPRequestHandler):
    """A launch target that echoes the request line back as its run id."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = orjson.dumps({"run_id": f"{self.path} {self.headers.get('Authorization')}"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def config_data(state_url: str, launcher: dict[str, Any], baseline: Path) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": ["127.0.0.1:1"]},
        "state": {"url": state_url},
        "server": {"auth_token_env": "DRIFTLOOP_TOKEN", "grafana_hmac_secret_env": "GRAFANA_HMAC"},
        "mlflow": {"webhook_secret_env": "MLFLOW_HOOK"},
        "models": {"carloan": {"baseline": str(baseline),
                               "retrain": {"on": ["manual", "alert"], "launcher": launcher}}},
    }


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def state_url(postgres_url: str) -> str:
    return postgres_url.replace("postgres@", f"postgres:{STATE_PASSWORD}@", 1)


@pytest.fixture
def runtime(secret_env: None, state_url: str, echo: int,
            example_baseline: Path) -> Iterator[Runtime]:
    hook = {"type": "webhook", "secret_env": "HOOK_HMAC",
            "url": f"http://hook:{URL_PASSWORD}@127.0.0.1:{echo}/hook?token={URL_QUERY}"}
    built = build(load_config(data=config_data(state_url, hook, example_baseline)))
    yield built
    built.close()


def assert_no_secret(text: str, where: str) -> None:
    for secret in ALL:
        assert secret not in text, f"{where} carries {secret!r}: {text[:400]}"


def test_retrain_202_and_alert_200_carry_no_secret(runtime: Runtime) -> None:
    client = TestClient(service_app(runtime))
    started = client.post("/api/v1/models/carloan/retrain", json={"request_id": "r1"},
                          headers=AUTH)
    assert started.status_code == 202, started.text
    assert started.json()["run"]["run_id"].startswith("/hook?")  # the echo reached us
    assert_no_secret(started.text, "the 202 of the retrain route")
    assert_no_secret(str(dict(started.headers)), "the headers of the 202")
    alert = {"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "startsAt": "2026-01-05T12:00:00Z", "fingerprint": "f1",
        "labels": {"alertname": "Drift", "model": "carloan", "action": "retrain"}}]}
    answered = client.post("/api/v1/alerts", json=alert, headers=AUTH)
    assert answered.status_code == 200, answered.text
    assert_no_secret(answered.text, "the 200 of the alert route")


@pytest.mark.parametrize("method, path, body", [
    ("GET", f"/api/v1/models/{SECRETS['GRAFANA_HMAC']}", None),
    ("POST", f"/api/v1/models/{URL_QUERY}/retrain", b"{}"),
    ("POST", "/api/v1/models/carloan/retrain",
     orjson.dumps({"priority": SECRETS["MLFLOW_HOOK"]})),
    ("POST", "/api/v1/models/carloan/retrain", orjson.dumps({"note": [STATE_PASSWORD]})),
    ("GET", "/api/v1/models/carloan/windows?limit=" + URL_PASSWORD, None),
])
def test_error_details_never_echo_a_secret(
        runtime: Runtime, method: str, path: str, body: bytes | None) -> None:
    client = TestClient(service_app(runtime))
    response = client.request(method, path, content=body, headers=AUTH)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]
    assert_no_secret(response.text, f"the {response.status_code} of {method} {path}")


def test_readyz_reasons_are_masked(tmp_path: Path) -> None:
    status = ServiceStatus((Dependency(
        "mlflow", False, f"https://ops:{URL_PASSWORD}@mlflow.internal refused"),))
    with Store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        app = create_app(store, CollectorRegistry(), status=lambda: status,
                         auth_token=SecretStr(SECRETS["DRIFTLOOP_TOKEN"]), models=["carloan"],
                         secrets=[URL_PASSWORD])
        response = TestClient(app).get("/readyz", headers=AUTH)
    assert response.status_code == 503
    assert "[redacted]@mlflow.internal refused" in response.json()["detail"]
    assert_no_secret(response.text, "/readyz")


def test_known_secrets_lists_every_secret_of_the_config(
        secret_env: None, state_url: str, example_baseline: Path) -> None:
    hook = {"type": "webhook", "secret_env": "HOOK_HMAC",
            "url": f"http://hook:{URL_PASSWORD}@127.0.0.1:1/hook?token={URL_QUERY}"}
    config = load_config(data=config_data(state_url, hook, example_baseline))
    assert set(ALL) <= set(known_secrets(config))


def test_command_output_is_redacted_of_every_service_secret(
        secret_env: None, state_url: str, example_baseline: Path) -> None:
    printed = " ".join(ALL)
    command = {"type": "command", "argv": [sys.executable, "-c", f"print({printed!r})"]}
    data = config_data(state_url, command, example_baseline)
    data["kafka"]["consumer"] = {"sasl_plain_password": URL_QUERY}
    data["mlflow"]["tracking_uri"] = f"http://ops:{URL_PASSWORD}@127.0.0.1:1"
    config = load_config(data=data)
    launcher: Any = build_launchers(config)["carloan"]
    ref = launcher.launch(LaunchRequest("carloan", None, "manual", None, None, "k1", "test"))
    detail = launcher.wait(ref, 30).detail
    # HOOK_HMAC is set in the environment but no key of this config names it
    assert detail.splitlines()[1:] == [" ".join(
        value if value == SECRETS["HOOK_HMAC"] else "[redacted]" for value in ALL)]


def test_closing_the_runtime_stops_running_commands(
        secret_env: None, state_url: str, example_baseline: Path) -> None:
    command = {"type": "command", "argv": [sys.executable, "-c", "import time; time.sleep(60)"]}
    runtime = build(load_config(data=config_data(state_url, command, example_baseline)))
    client = TestClient(service_app(runtime))
    started = client.post("/api/v1/models/carloan/retrain", json={}, headers=AUTH)
    assert started.status_code == 202, started.text
    launcher: Any = runtime.reactor.launchers["carloan"]  # type: ignore[union-attr]
    [run] = launcher._runs.values()
    assert run.popen.poll() is None
    runtime.close()
    assert run.popen.poll() is not None
    assert "stopped by driftloop" in run.status().detail


def test_log_lines_are_masked_of_every_secret() -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    logger = logging.getLogger("driftloop.test-masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        mask_secrets_in_logs(ALL, handlers=[handler])
        logger.warning("launch to %s failed: %s", f"http://x?token={URL_QUERY}", SECRETS)
        try:
            raise RuntimeError(f"password {STATE_PASSWORD} refused")
        except RuntimeError:
            logger.exception("store down")
    finally:
        logger.removeHandler(handler)
    assert len(records) == 2 and "[redacted]" in records[0]
    assert "Traceback" in records[1]
    for line in records:
        assert_no_secret(line, "a log line")
