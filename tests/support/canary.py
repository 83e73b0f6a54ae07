"""Helpers of the canary integration tests: live traffic of model versions, and loopback
receivers that witness deploy-hook calls and MLflow alias events.

- :class:`Traffic`: a thread producing, every half second, prediction events of each
  version in ``arms`` (its scikit-learn model predicting on fresh features) and their
  labels, like a model server and a label source would;
- :class:`Witness`: an HTTP endpoint on a free port recording what is posted to it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import orjson
from kafka import KafkaProducer

from tests.support.procs import free_port

__all__ = ["Posted", "Traffic", "Witness", "features_and_labels"]


def features_and_labels(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two numeric features; the label depends on both (with a little noise)."""
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + x[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return x, y


class Traffic:
    """Produces ``arms[version]`` events per beat for each version, with labels."""

    def __init__(self, bootstrap: str, predictions: str, labels: str, model: str,
                 beat_seconds: float = 0.5, seed: int = 0) -> None:
        self.model = model
        self.predictions, self.labels = predictions, labels
        self.beat_seconds = beat_seconds
        self.models: dict[str, Any] = {}  # version -> fitted estimator
        self.arms: dict[str, int] = {}  # version -> events per beat
        self.produced: dict[str, int] = {}
        self._rng = np.random.default_rng(seed)
        self._producer = KafkaProducer(bootstrap_servers=[bootstrap], linger_ms=5,
                                       value_serializer=orjson.dumps)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="canary-traffic", daemon=True)

    def serve(self, **arms: int) -> None:
        """Set the versions served and their events per beat (``serve(**{"1": 150})``)."""
        with self._lock:
            self.arms = {version: n for version, n in arms.items() if n > 0}

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._producer.close(5)

    def _run(self) -> None:
        while not self._stop.wait(self.beat_seconds):
            with self._lock:
                arms = dict(self.arms)
            for version, n in arms.items():
                self._beat(version, n)
            self._producer.flush(10)

    def _beat(self, version: str, n: int) -> None:
        x, y = features_and_labels(n, self._rng)
        predicted = self.models[version].predict(x)
        latency = self._rng.normal(10.0, 1.0, n)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for i in range(n):
            request_id = uuid.uuid4().hex
            self._producer.send(self.predictions, {
                "model": self.model, "version": version, "request_id": request_id,
                "timestamp": now, "features": {"x1": float(x[i, 0]), "x2": float(x[i, 1])},
                "prediction": int(predicted[i]), "latency_ms": float(latency[i])})
            self._producer.send(self.labels, {"model": self.model, "request_id": request_id,
                                              "label": int(y[i]), "timestamp": now})
        self.produced[version] = self.produced.get(version, 0) + n


@dataclass(frozen=True)
class Posted:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class Witness:
    """Records every POST (JSON bodies) on a loopback port; answers 200."""

    def __init__(self) -> None:
        self.posted: list[Posted] = []
        posted, lock = self.posted, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    body = {"raw": raw.decode(errors="replace")}
                with lock:
                    posted.append(Posted(self.path, dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Posted]:
        return [p for p in list(self.posted) if p.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __iter__(self) -> Iterator[Posted]:
        return iter(list(self.posted))
