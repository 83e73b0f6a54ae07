"""The client's ceiling: poll with driftloop's consumer settings, decode into numpy columns.

The comparison loop of ``benchmarks/bench_service.py``, run as its own process so
its CPU time and peak RSS compare with the service's. It is the cheapest honest
loop over the same records: a kafka-python consumer built by
:func:`monitor.ingest.clients.make_consumer` (the service's settings: fetch sizes,
``fetch_max_wait_ms``, ``max_poll_records``; manual assignment instead of a group,
whose join is start-up), polled as the service polls (200 ms, ``poll_max_records``),
every value decoded with orjson and its fields appended to per-column numpy
buffers of one window (:data:`WINDOW_ROWS` rows, then handed on and dropped, as a
window consumer would). Garbage collection is set as ``driftloop serve`` sets it.

- native predictions: model, version, request id, timestamp, every feature,
  prediction, score;
- labels: model, request id, label, timestamp;
- KServe: the ``ce_*`` headers (id, type, time), then request instances into the
  feature columns and response probabilities into prediction and score columns
  (halves are not paired: pairing is part of the service's work).

Progress points ``(records, wall seconds, CPU seconds)`` are taken when the first
records are in hand and after each batch is decoded. Run:
``python benchmarks/reference_loop.py --bootstrap HOST:PORT --topic T [--topic T2]
--records N --kind native|kserve`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kafka import TopicPartition  # noqa: E402

from monitor.config import KafkaConfig  # noqa: E402
from monitor.ingest.clients import make_consumer  # noqa: E402

__all__ = ["WINDOW_ROWS", "Columns", "decode_batch", "parse_args", "peak_rss_kb", "run"]

WINDOW_ROWS = 5000
POLL_TIMEOUT_MS = 200  # what monitor.stream.Service.step polls with
_loads = orjson.loads


class Columns:
    """Per-column numpy chunks of the open window; a window is counted and dropped at the
    batch that fills it (batches are not split: the loop's cost, not exact windows)."""

    def __init__(self, window_rows: int = WINDOW_ROWS) -> None:
        self.window_rows = window_rows
        self.chunks: dict[str, list[np.ndarray]] = {}
        self.rows: dict[str, int] = {}
        self.windows = 0
        self.total: dict[str, int] = {}  # rows appended per column, all windows

    def add(self, group: str, columns: dict[str, np.ndarray]) -> None:
        """Append one batch of rows of ``group`` (predictions, labels, responses)."""
        n = len(next(iter(columns.values())))
        for name, values in columns.items():
            self.chunks.setdefault(f"{group}.{name}", []).append(values)
        self.rows[group] = self.rows.get(group, 0) + n
        self.total[group] = self.total.get(group, 0) + n
        if self.rows[group] >= self.window_rows:
            self.windows += 1
            self.rows[group] = 0
            for name in [k for k in self.chunks if k.startswith(f"{group}.")]:
                self.chunks[name] = []


def _numbers(values: list[Any]) -> np.ndarray:
    return np.fromiter(values, np.float64, len(values))


def _texts(values: list[Any]) -> np.ndarray:
    return np.array(values, dtype=object)


def _features(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    first = rows[0]
    return {name: (_texts if type(first[name]) is str else _numbers)([r[name] for r in rows])
            for name in first}


def _native(values: list[bytes], columns: Columns) -> None:
    events = [_loads(v) for v in values]
    found = _features([e["features"] for e in events])
    found.update(model=_texts([e["model"] for e in events]),
                 version=_texts([e["version"] for e in events]),
                 request_id=_texts([e["request_id"] for e in events]),
                 timestamp=np.fromiter((e["timestamp"] for e in events), np.int64, len(events)),
                 prediction=_numbers([e["prediction"] for e in events]),
                 score=_numbers([e.get("score") for e in events]))
    columns.add("predictions", found)


def _labels(values: list[bytes], columns: Columns) -> None:
    events = [_loads(v) for v in values]
    columns.add("labels", {
        "model": _texts([e["model"] for e in events]),
        "request_id": _texts([e["request_id"] for e in events]),
        "label": _numbers([e["label"] for e in events]),
        "timestamp": np.fromiter((e["timestamp"] for e in events), np.int64, len(events))})


def _kserve(records: list[Any], columns: Columns) -> None:
    requests: list[dict[str, Any]] = []
    request_ids: list[str] = []
    probabilities: list[list[float]] = []
    response_ids: list[str] = []
    for record in records:
        attrs = {k[3:]: v.decode() for k, v in record.headers if k.startswith("ce_")}
        body = _loads(record.value)
        if attrs["type"].endswith(".request"):
            for index, instance in enumerate(body["instances"]):
                requests.append(instance)
                request_ids.append(f"{attrs['id']}:{index}")
        else:
            for index, row in enumerate(body["predictions"]):
                probabilities.append(row)
                response_ids.append(f"{attrs['id']}:{index}")
    if requests:
        found = _features(requests)
        found["request_id"] = _texts(request_ids)
        columns.add("predictions", found)
    if probabilities:
        scores = np.array(probabilities, dtype=np.float64)
        columns.add("responses", {"request_id": _texts(response_ids),
                                  "prediction": scores.argmax(axis=1).astype(np.float64),
                                  "score": scores[:, 1]})


def decode_batch(kind: str, topic_role: str, records: list[Any], columns: Columns) -> None:
    """Decode one polled batch of one partition into ``columns``."""
    if kind == "kserve":
        _kserve(records, columns)
    elif topic_role == "labels":
        _labels([r.value for r in records], columns)
    else:
        _native([r.value for r in records], columns)


def run(bootstrap: str, topics: list[str], records: int, kind: str,
        labels_topic: str | None = None) -> dict[str, Any]:
    consumer = make_consumer(KafkaConfig(bootstrap_servers=[bootstrap]), group_id=None)
    max_records = KafkaConfig().poll_max_records
    columns = Columns()
    points: list[tuple[int, float, float]] = []
    try:
        consumer.assign([TopicPartition(t, 0) for t in topics])
        consumer.seek_to_beginning()
        seen = 0
        while seen < records:
            batches = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=max_records)
            if batches and not points:
                points.append((0, time.perf_counter(), time.process_time()))
            for tp, batch in batches.items():
                role = "labels" if tp.topic == labels_topic else "predictions"
                decode_batch(kind, role, batch, columns)
                seen += len(batch)
            if batches:
                points.append((seen, time.perf_counter(), time.process_time()))
    finally:
        consumer.close()
    return {"points": points, "rows": columns.total, "windows": columns.windows,
            "peak_rss_kb": peak_rss_kb()}


def peak_rss_kb() -> int:
    """VmHWM of this process, as for the service (``ru_maxrss`` would carry the parent's
    high-water mark across the exec that started this process)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", action="append", required=True,
                        help="a topic to read partition 0 of (repeat for several)")
    parser.add_argument("--labels-topic", default=None,
                        help="which of the topics holds label events")
    parser.add_argument("--records", type=int, required=True, help="records to read in all")
    parser.add_argument("--kind", choices=("native", "kserve"), default="native")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gc.freeze()  # as monitor.runtime.serve does after start-up
    gc.set_threshold(50_000, 20, 100)
    result = run(args.bootstrap, args.topic, args.records, args.kind, args.labels_topic)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
