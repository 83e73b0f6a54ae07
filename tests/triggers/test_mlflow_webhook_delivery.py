"""Deliveries from a real MLflow server verify and parse (its signing, its payloads)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from tests.support.procs import free_port
from triggers.mlflow_webhook import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AliasCreated,
    AliasDeleted,
    ModelVersionCreated,
    parse_mlflow_webhook,
    verify_mlflow_signature,
)

pytestmark = pytest.mark.integration
SECRET = "webhook-secret"


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A loopback HTTP endpoint (a thread of this process) recording deliveries."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(Delivery(dict(self.headers.items()), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/mlflow/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, event: str, timeout: float) -> Delivery:
        """MLflow caches webhook lists for up to 60 s, so a new webhook may start late."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for delivery in self.deliveries:
                payload = parse_mlflow_webhook(delivery.body)
                if payload.event == event:
                    return delivery
            time.sleep(0.2)
        raise AssertionError(f"no {event} delivery within {timeout} s; got "
                             f"{[d.body[:80] for d in self.deliveries]}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def verify(delivery: Delivery, secret: str = SECRET) -> bool:
    h = delivery.headers
    return bool(verify_mlflow_signature(secret, h.get(DELIVERY_ID_HEADER),
                                        h.get(TIMESTAMP_HEADER), delivery.body,
                                        h.get(SIGNATURE_HEADER), datetime.now(UTC)))


def test_mlflow_test_deliveries_verify_and_parse(mlflow_server: str, receiver: Receiver) -> None:
    client = MlflowClient(mlflow_server)
    hook = client.create_webhook(f"driftloop-{uuid.uuid4().hex[:8]}", receiver.url,
                                 ["model_version_alias.created", "model_version.created"],
                                 secret=SECRET)
    try:
        for event in ("model_version_alias.created", "model_version.created"):
            result = client.test_webhook(hook.webhook_id, event)
            assert result.success, result.error_message
        alias = receiver.wait_for("model_version_alias.created", 10)
        created = receiver.wait_for("model_version.created", 10)
    finally:
        client.delete_webhook(hook.webhook_id)
    assert verify(alias) and verify(created)
    assert not verify(alias, secret="wrong")
    assert isinstance(parse_mlflow_webhook(alias.body), AliasCreated)
    assert isinstance(parse_mlflow_webhook(created.body), ModelVersionCreated)


def test_mlflow_registry_events_verify_and_parse(mlflow_server: str, receiver: Receiver) -> None:
    client = MlflowClient(mlflow_server)
    model = f"webhook-{uuid.uuid4().hex[:8]}"
    hook = client.create_webhook(
        f"driftloop-{uuid.uuid4().hex[:8]}", receiver.url,
        ["model_version.created", "model_version_alias.created", "model_version_alias.deleted"],
        secret=SECRET)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server)
    try:
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(
                LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array([0, 1])),
                name="model", registered_model_name=model, pip_requirements=["scikit-learn"])
        created = receiver.wait_for("model_version.created", 90)
        client.set_registered_model_alias(model, "challenger", "1")
        moved = receiver.wait_for("model_version_alias.created", 90)
        client.delete_registered_model_alias(model, "challenger")
        deleted = receiver.wait_for("model_version_alias.deleted", 90)
    finally:
        mlflow.set_tracking_uri(before)
        client.delete_webhook(hook.webhook_id)
    assert all(verify(d) for d in (created, moved, deleted))
    version = parse_mlflow_webhook(created.body)
    assert isinstance(version, ModelVersionCreated)
    # a model logged the MLflow 3 way arrives without its run: the registry knows it
    assert (version.model, version.version, version.run_id) == (model, "1", None)
    assert client.get_model_version(model, "1").run_id == run.info.run_id
    assert version.timestamp is not None
    assert parse_mlflow_webhook(moved.body) == AliasCreated(
        model, "challenger", "1", parse_mlflow_webhook(moved.body).timestamp)
    assert parse_mlflow_webhook(deleted.body) == AliasDeleted(
        model, "challenger", parse_mlflow_webhook(deleted.body).timestamp)
