"""Replay a data file onto Kafka as native prediction and label events (design 3.1, 3.2).

Used by the demo and the integration tests, and useful to backfill a topic
from a file: the rows are produced in file order, so a count window over the
topic holds the same rows as ``driftloop evaluate --window-rows`` over the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

__all__ = ["label_events", "plain", "prediction_events", "produce"]


def plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy numbers and booleans as Python's, NaN and pandas' missing
    values as null, timestamps as RFC 3339 text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def prediction_events(
    frame: pd.DataFrame,
    *,
    model: str,
    version: str,
    features: Sequence[str],
    prediction: str,
    score: str | None = None,
    request_id: str = "request_id",
    timestamp: str = "timestamp",
) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs of native prediction events, one per row."""
    columns = {name: frame[name].tolist() for name in features}
    ids = frame[request_id].tolist()
    times = frame[timestamp].tolist()
    predictions = frame[prediction].tolist()
    scores = frame[score].tolist() if score else None
    for i in range(len(frame)):
        event: dict[str, Any] = {
            "model": model,
            "version": version,
            "request_id": str(plain(ids[i])),
            "timestamp": plain(times[i]),
            "features": {name: plain(values[i]) for name, values in columns.items()},
            "prediction": plain(predictions[i]),
        }
        if scores is not None:
            event["score"] = plain(scores[i])
        yield event["request_id"].encode(), orjson.dumps(event)


def label_events(frame: pd.DataFrame, *, model: str, label: str, request_id: str = "request_id",
                 timestamp: str | None = None) -> Iterator[tuple[bytes, bytes]]:
    ids = frame[request_id].tolist()
    labels = frame[label].tolist()
    times = frame[timestamp].tolist() if timestamp else None
    for i in range(len(frame)):
        event = {"model": model, "request_id": str(plain(ids[i])), "label": plain(labels[i]),
                 "timestamp": plain(times[i]) if times else "2019-12-01T00:00:00Z"}
        yield event["request_id"].encode(), orjson.dumps(event)


def produce(bootstrap: Sequence[str], topic: str, records: Iterator[tuple[bytes, bytes]],
            *, partition: int | None = None) -> int:
    """Produce and flush; returns how many records were sent."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=list(bootstrap), acks="all", linger_ms=10,
                             batch_size=256 * 1024, max_request_size=4 * 1024 * 1024)
    n = 0
    try:
        for key, value in records:
            producer.send(topic, value=value, key=key, partition=partition)
            n += 1
        producer.flush(60)
    finally:
        producer.close(10)
    return n
