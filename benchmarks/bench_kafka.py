"""Kafka ingest: a plain kafka-python loop against the same loop plus driftloop's decoder.

Pre-produces ``n`` native prediction events (about 800 bytes, 25 features:
20 numbers, 5 categories) to a one-partition topic on a Tansu broker started
for the run, then measures

- plain consume: a kafka-python consumer (driftloop's consumer settings,
  manual assignment) polling until it has seen all ``n`` records (the
  baseline the end-to-end service benchmark compares against);
- consume + decode: the same loop turning every record into a ``Prediction``
  with :class:`monitor.codecs.Decoder`;
- decode only: the decoder over the records already in memory.

Run: ``python benchmarks/bench_kafka.py [--n 200000]``. The service benchmark
reuses :func:`produce_native_events` and :func:`plain_consume_rate`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kafka import TopicPartition  # noqa: E402

from monitor.config import KafkaConfig  # noqa: E402
from monitor.ingest.clients import ensure_topics, make_consumer, make_producer  # noqa: E402
from monitor.ingest.codecs.decoder import Decoder  # noqa: E402

__all__ = ["MODEL", "native_events", "plain_consume_rate", "produce_native_events"]

MODEL = "bench"
N_NUMERIC, N_CATEGORICAL = 20, 5
CATEGORIES = [f"category-{i}" for i in range(12)]


def native_events(n: int, seed: int, timestamps: Any = None) -> list[bytes]:
    """``n`` encoded native events (design 3.1) of about 800 bytes each; event times
    10 ms apart from November 2023 unless ``timestamps`` (epoch ms, one per event)."""
    rng = np.random.default_rng(seed)
    numbers = rng.normal(1000.0, 250.0, size=(n, N_NUMERIC)).round(6)
    picks = rng.integers(0, len(CATEGORIES), size=(n, N_CATEGORICAL))
    scores = rng.random(n).round(6)
    if timestamps is None:
        timestamps = 1_700_000_000_000 + 10 * np.arange(n, dtype=np.int64)
    events = []
    for i in range(n):
        features: dict[str, Any] = {f"feature_{j:02d}": float(numbers[i, j])
                                    for j in range(N_NUMERIC)}
        for j in range(N_CATEGORICAL):
            features[f"category_{j}"] = CATEGORIES[picks[i, j]]
        events.append(orjson.dumps({
            "model": MODEL, "version": "1", "request_id": f"req-{seed}-{i:08d}",
            "timestamp": int(timestamps[i]), "features": features,
            "prediction": int(scores[i] > 0.5), "score": float(scores[i]),
            "latency_ms": 3.25,
        }))
    return events


def produce_native_events(bootstrap: str, topic: str, n: int, seed: int) -> None:
    """Create ``topic`` (one partition) and fill it with ``n`` native events."""
    ensure_topics(bootstrap, [topic], partitions=1)
    producer = make_producer(KafkaConfig(bootstrap_servers=[bootstrap]), acks=1, linger_ms=20,
                             batch_size=1024 * 1024)
    try:
        for value in native_events(n, seed):
            producer.send(topic, value=value, partition=0)
        producer.flush()
    finally:
        producer.close()


def _consume(bootstrap: str, topic: str, n: int,
             handle: Callable[[list[Any]], None] | None = None) -> float:
    consumer = make_consumer(KafkaConfig(bootstrap_servers=[bootstrap]), group_id=None)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        seen = 0
        started = time.perf_counter()
        while seen < n:
            for batch in consumer.poll(timeout_ms=500).values():
                seen += len(batch)
                if handle is not None:
                    handle(batch)
        return n / (time.perf_counter() - started)
    finally:
        consumer.close()


def plain_consume_rate(bootstrap: str, topic: str, n: int) -> float:
    """Messages per second of a plain kafka-python loop reading ``n`` records of ``topic``."""
    return _consume(bootstrap, topic, n)


def bench_decoder() -> Decoder:
    return Decoder(["native"], max_record_bytes=1_048_576, feature_order=lambda model: None,
                   endpoint_version=lambda model, endpoint: None,
                   known_models=lambda model: model == MODEL)


def decode_consume_rate(bootstrap: str, topic: str, n: int) -> float:
    decode = bench_decoder().decode_prediction
    decoded: list[int] = [0]

    def handle(batch: list[Any]) -> None:
        for record in batch:
            decoded[0] += len(decode(record))

    rate = _consume(bootstrap, topic, n, handle)
    assert decoded[0] == n, f"decoded {decoded[0]} of {n}"
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args(argv)
    from tests.support.procs import start_tansu

    with tempfile.TemporaryDirectory() as workdir:
        broker = start_tansu(Path(workdir))
        try:
            bootstrap = f"127.0.0.1:{broker.port}"
            started = time.perf_counter()
            produce_native_events(bootstrap, "bench-native", args.n, seed=0)
            produced = time.perf_counter() - started
            sizes = [len(v) for v in native_events(1000, seed=0)]
            print(f"kafka {args.n // 1000}k: produced {args.n / produced / 1000:.0f}k msg/s "
                  f"(mean value {sum(sizes) / len(sizes):.0f} bytes)", flush=True)
            # interleaved, best of three: other work on the machine slows single runs
            plain = decoded = 0.0
            for _ in range(3):
                plain = max(plain, plain_consume_rate(bootstrap, "bench-native", args.n))
                decoded = max(decoded, decode_consume_rate(bootstrap, "bench-native", args.n))
            print(f"kafka {args.n // 1000}k: plain consume {plain / 1000:.0f}k msg/s; "
                  f"consume+decode {decoded / 1000:.0f}k msg/s ({decoded / plain:.0%})", flush=True)
        finally:
            broker.stop()
    records = native_events(50_000, seed=1)
    from kafka.consumer.fetcher import ConsumerRecord

    wrapped = [ConsumerRecord("t", 0, 0, i, 0, 0, None, v, [], None, -1, -1, -1)
               for i, v in enumerate(records)]
    decode = bench_decoder().decode_prediction
    started = time.perf_counter()
    for record in wrapped:
        decode(record)
    elapsed = time.perf_counter() - started
    print(f"kafka decode only: {len(wrapped) / elapsed / 1000:.0f}k msg/s "
          f"({elapsed / len(wrapped) * 1e6:.1f} us per event)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
