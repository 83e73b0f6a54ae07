"""The demo's model server and label feed: two threads writing to Kafka.

:class:`ModelServer` answers the world's applicants at a steady rate with the
versions the MLflow registry's aliases name: it reads ``champion`` and
``challenger`` every second, loads a version it has not seen with
``mlflow.sklearn.load_model("models:/<name>/<version>")``, sends
``challenger_share`` of the rows to the challenger while there is one (which rows
is fixed by the row number), and logs every prediction to the predictions topic
(:mod:`monitor.cli.demo.events`). A registry it cannot read keeps it serving the
versions it has.

:class:`LabelFeed` publishes each prediction's ground truth ``delay_seconds``
later, as a label source joining outcomes would, and appends the labeled row to
the file a retrain reads (:mod:`monitor.cli.demo.labeled`).

A thread that fails keeps its exception in ``error``; the story checks it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from monitor.cli.demo.events import (
    Record,
    kserve_records,
    label_record,
    native_record,
    plain,
)
from monitor.cli.demo.labeled import append_labeled, format_time
from monitor.cli.demo.world import FEATURES, World

__all__ = ["LabelFeed", "ModelServer"]

_TICK_SECONDS = 0.1
_REFRESH_SECONDS = 1.0
_MAX_BATCH = 2000
_GOLDEN = 0x9E3779B1  # Knuth's multiplicative hash: a fixed, even spread of rows to arms


def _unit(rows: np.ndarray, salt: int) -> np.ndarray:
    """A number in [0, 1) per row, fixed by the row number and ``salt``."""
    mixed = (rows.astype(np.uint64) * np.uint64(_GOLDEN) + np.uint64(salt)) % np.uint64(2**32)
    return np.asarray(mixed, dtype=np.float64) / 2.0**32


class LabelFeed:
    """Publishes labels ``delay_seconds`` after their prediction; appends them to ``path``."""

    def __init__(self, producer: Any, *, topic: str, delay_seconds: float, path: Path) -> None:
        self.producer = producer
        self.topic = topic
        self.delay_seconds = delay_seconds
        self.path = path
        self.published = 0
        self.error: BaseException | None = None
        self._pending: deque[tuple[float, list[Record], list[dict[str, Any]]]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-labels", daemon=True)

    def schedule(self, records: list[Record], rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._pending.append((time.monotonic() + self.delay_seconds, records, rows))

    def start(self) -> LabelFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            while not self._stop.wait(_TICK_SECONDS):
                self._publish_due()
        except BaseException as exc:  # kept for the story, which stops the demo with it
            self.error = exc

    def _publish_due(self) -> None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._pending or self._pending[0][0] > now:
                    return
                _, records, rows = self._pending.popleft()
            for record in records:
                self.producer.send(self.topic, key=record.key, value=record.value)
            append_labeled(self.path, rows)
            self.published += len(records)


class ModelServer:
    """Serves ``rate`` predictions a second from the registry's champion and challenger."""

    def __init__(self, world: World, producer: Any, labels: LabelFeed, *, model: str,
                 topic: str, rate: float, challenger_share: float, event_format: str,
                 endpoints: Mapping[str, str], tracking_uri: str, seed: int) -> None:
        self.world = world
        self.producer = producer
        self.labels = labels
        self.model = model
        self.topic = topic
        self.rate = rate
        self.challenger_share = challenger_share
        self.event_format = event_format
        self.endpoints = dict(endpoints)  # kserve: version -> ce_endpoint ("" = default)
        self.tracking_uri = tracking_uri
        self.seed = seed
        self.row = 0  # the next row of the world to serve
        self.served: Counter[str] = Counter()
        self.champion: str | None = None
        self.challenger: str | None = None
        self.registry_error: str | None = None
        self.error: BaseException | None = None
        self._loaded: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-model-server", daemon=True)

    def start(self) -> ModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            started = time.monotonic()
            next_refresh = 0.0
            while not self._stop.wait(_TICK_SECONDS):
                now = time.monotonic()
                if now >= next_refresh:
                    self._refresh()
                    next_refresh = now + _REFRESH_SECONDS
                due = int((now - started) * self.rate)
                if due > self.row and self.champion is not None:
                    self._serve(self.row, min(due, self.row + _MAX_BATCH))
        except BaseException as exc:  # kept for the story, which stops the demo with it
            self.error = exc

    def _refresh(self) -> None:
        from mlflow import MlflowClient

        try:
            aliases = MlflowClient(self.tracking_uri).get_registered_model(self.model).aliases
        except Exception as exc:  # the registry away: keep serving what is loaded
            self.registry_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            return
        self.registry_error = None
        champion = aliases.get("champion")
        challenger = aliases.get("challenger")
        for version in (champion, challenger):
            if version is not None and str(version) not in self._loaded:
                self._loaded[str(version)] = self._load(str(version))
        self.champion = None if champion is None else str(champion)
        self.challenger = None if challenger is None or challenger == champion else str(challenger)

    def _load(self, version: str) -> Any:
        import mlflow.sklearn

        return mlflow.sklearn.load_model(f"models:/{self.model}/{version}")

    def _serve(self, start: int, stop: int) -> None:
        rows = self.world.rows(start, stop)
        numbers = np.arange(start, stop)
        assert self.champion is not None
        arm = np.full(len(rows), self.champion, dtype=object)
        if self.challenger is not None:
            arm[_unit(numbers, self.seed) < self.challenger_share] = self.challenger
        latency = 6.0 + 6.0 * _unit(numbers, self.seed + 1)
        answered = datetime.now(UTC)
        for version in dict.fromkeys(arm.tolist()):
            chosen = np.flatnonzero(arm == version)
            features = rows.features.iloc[chosen]
            probabilities = self._loaded[version].predict_proba(features)
            self._send(version, numbers[chosen], features, probabilities, latency[chosen],
                       rows.labels[chosen], answered)
            self.served[version] += len(chosen)
        self.row = stop

    def _send(self, version: str, numbers: np.ndarray, features: Any, probabilities: np.ndarray,
              latency: np.ndarray, labels: np.ndarray, answered: datetime) -> None:
        columns = {name: features[name].tolist() for name in FEATURES}
        labelled_at = format_time(answered + timedelta(seconds=self.labels.delay_seconds))
        label_records, labeled_rows = [], []
        for i, row in enumerate(numbers.tolist()):
            values = {name: plain(columns[name][i]) for name in FEATURES}
            chance = float(probabilities[i, 1])
            p1 = round(chance, 4)
            asked = answered - timedelta(milliseconds=float(latency[i]))
            if self.event_format == "kserve":
                call_id = f"demo-{row}"
                request_id = f"{call_id}:0"
                for record in kserve_records(
                        model=self.model, endpoint=self.endpoints[version], call_id=call_id,
                        requested_at=format_time(asked), answered_at=format_time(answered),
                        features=values, probabilities=(round(1.0 - p1, 4), p1)):
                    self.producer.send(self.topic, key=record.key, value=record.value,
                                       headers=record.headers)
            else:
                request_id = f"demo-{row}"
                record = native_record(
                    model=self.model, version=version, request_id=request_id,
                    timestamp=format_time(asked), features=values, prediction=int(chance > 0.5),
                    score=p1, latency_ms=round(float(latency[i]), 2))
                self.producer.send(self.topic, key=record.key, value=record.value)
            label = int(labels[i])
            label_records.append(label_record(model=self.model, request_id=request_id,
                                              label=label, timestamp=labelled_at))
            labeled_rows.append({"row": row, "timestamp": format_time(asked),
                                 "features": values, "label": label})
        self.labels.schedule(label_records, labeled_rows)
