"""Records of the service benchmarks: native predictions, their labels, KServe CloudEvents.

Every generator returns what a producer sends, in production order, as
:class:`Outgoing` records (which topic of the setting, value, headers), so the
benchmark and the reference loop read exactly the same bytes.

- :func:`labelled_stream`: prediction ``i`` is followed, ``lag`` predictions later,
  by its label on the labels topic (the label of prediction ``i`` is produced right
  after prediction ``i + lag``); the last ``lag`` labels close the stream.
- :func:`kserve_records`: per prediction, the KServe inference logger's request and
  response CloudEvents in binary mode (``ce_*`` headers, V1 bodies: one named
  instance, one pair of class probabilities), sharing the CloudEvents id.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_kafka import MODEL, native_events  # noqa: E402

__all__ = [
    "LABELS",
    "PREDICTIONS",
    "EventPool",
    "Outgoing",
    "kserve_records",
    "label_value",
    "labelled_stream",
    "produce",
]

PREDICTIONS, LABELS = "predictions", "labels"  # which topic of a setting a record goes to
REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str  # PREDICTIONS or LABELS
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def label_value(prediction: bytes, label_lag_ms: int) -> bytes:
    """The label event of one native prediction: its request id, a label that agrees
    with the prediction nine times in ten, known ``label_lag_ms`` after it."""
    event = orjson.loads(prediction)
    flip = zlib.crc32(event["request_id"].encode()) % 10 == 0
    return orjson.dumps({
        "model": event["model"], "request_id": event["request_id"],
        "label": 1 - event["prediction"] if flip else event["prediction"],
        "timestamp": event["timestamp"] + label_lag_ms,
    })


def labelled_stream(predictions: Sequence[bytes], lag: int,
                    label_lag_ms: int = 60_000) -> list[Outgoing]:
    """Predictions with every label ``lag`` predictions later (see the module docstring)."""
    out: list[Outgoing] = []
    for i, value in enumerate(predictions):
        out.append(Outgoing(PREDICTIONS, value))
        if i >= lag:
            out.append(Outgoing(LABELS, label_value(predictions[i - lag], label_lag_ms)))
    for value in predictions[max(0, len(predictions) - lag):]:
        out.append(Outgoing(LABELS, label_value(value, label_lag_ms)))
    return out


class EventPool:
    """Native predictions and their labels for a live feed, cheap to make: the features
    of ``size`` events of :func:`native_events` are encoded once and reused in turn
    (``orjson.Fragment``), so a producer thread spends its time sending."""

    def __init__(self, size: int = 2000, seed: int = 3) -> None:
        events = [orjson.loads(v) for v in native_events(size, seed)]
        self.features = [orjson.Fragment(orjson.dumps(e["features"])) for e in events]
        self.predictions = [e["prediction"] for e in events]
        self.scores = [e["score"] for e in events]

    def prediction(self, i: int, timestamp_ms: int) -> bytes:
        k = i % len(self.features)
        return orjson.dumps({
            "model": MODEL, "version": "1", "request_id": f"live-{i}",
            "timestamp": timestamp_ms, "features": self.features[k],
            "prediction": self.predictions[k], "score": self.scores[k], "latency_ms": 3.25})

    def label(self, i: int, timestamp_ms: int) -> bytes:
        """The label of prediction ``i``, agreeing with it nine times in ten."""
        prediction = self.predictions[i % len(self.features)]
        return orjson.dumps({"model": MODEL, "request_id": f"live-{i}",
                             "label": 1 - prediction if i % 10 == 0 else prediction,
                             "timestamp": timestamp_ms})


def _rfc3339(ms: int) -> bytes:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z").encode()


def kserve_records(n: int, seed: int) -> list[Outgoing]:
    """``n`` request/response pairs carrying the features and scores of ``native_events``."""
    out: list[Outgoing] = []
    for value in native_events(n, seed):
        event = orjson.loads(value)
        score = event["score"]
        common = [("ce_specversion", b"1.0"), ("ce_id", event["request_id"].encode()),
                  ("ce_source", b"http://bench-predictor.default/"),
                  ("ce_time", _rfc3339(event["timestamp"])),
                  ("ce_inferenceservicename", MODEL.encode()), ("ce_namespace", b"default"),
                  ("ce_component", b"predictor"), ("ce_endpoint", b"default"),
                  ("content-type", b"application/json")]
        out.append(Outgoing(PREDICTIONS, orjson.dumps({"instances": [event["features"]]}),
                            [("ce_type", REQUEST_TYPE.encode()), *common]))
        out.append(Outgoing(PREDICTIONS,
                            orjson.dumps({"predictions": [[round(1 - score, 6), score]]}),
                            [("ce_type", RESPONSE_TYPE.encode()), *common]))
    return out


def produce(producer: Any, topics: dict[str, str], records: Iterable[Outgoing]) -> int:
    """Send ``records`` to partition 0 of their setting's topic; returns how many."""
    sent = 0
    for record in records:
        producer.send(topics[record.topic], value=record.value, headers=record.headers,
                      partition=0)
        sent += 1
    return sent
