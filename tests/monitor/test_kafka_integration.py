"""Codecs, dead letters and the Kafka helpers against a real Tansu broker.

A small consume -> decode -> dead-letter loop (a test helper, not the service)
reads a topic of good and bad records; every bad one must arrive unchanged on
the dead-letter topic with the design 3.4 headers, and the good records after
it must still be decoded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from monitor.config import KafkaConfig
from monitor.ingest import (
    DeadLetterWriter,
    DecodeError,
    Decoder,
    Label,
    Prediction,
    broker_reachable,
    consumer_lag,
    ensure_topics,
    make_consumer,
    make_producer,
)
from monitor.ingest.codecs.kserve import REQUEST_TYPE, RESPONSE_TYPE
from tests.support.procs import Managed, free_port, start_tansu

pytestmark = pytest.mark.integration

PREDICTIONS, LABELS, DLQ = "predictions", "labels", "driftloop-dlq"
FEATURES = ["a", "b"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Managed]:
    proc = start_tansu(tmp_path_factory.mktemp("tansu"))
    try:
        yield proc
    finally:
        proc.stop()


def config(proc: Managed, **changes: Any) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=[f"127.0.0.1:{proc.port}"],
                       formats=["native", "kserve", "oip"], max_record_bytes=2000, **changes)


def good(request_id: str, **changes: Any) -> bytes:
    event = {"model": "carloan", "version": "3", "request_id": request_id,
             "timestamp": "2018-10-30T18:00:00Z", "features": {"a": 1.5, "b": "x"},
             "prediction": 1, "score": 0.9}
    event.update(changes)
    return orjson.dumps(event)


def ce(kind: str, ce_id: str) -> list[tuple[str, bytes]]:
    return [("ce_specversion", b"1.0"), ("ce_id", ce_id.encode()), ("ce_type", kind.encode()),
            ("ce_source", b"http://localhost/"), ("ce_inferenceservicename", b"carloan"),
            ("ce_endpoint", b"default"), ("content-type", b"application/json")]


# (value, headers, expected reason or None for a good record)
STREAM: list[tuple[bytes, list[tuple[str, bytes]], str | None]] = [
    (good("g0"), [], None),
    (b'{"model": "carloan", "version": ', [], "malformed_json"),
    (good("g1"), [], None),
    (b'{"model": "carloan", "b": "\xff\xfe"}', [], "not_utf8"),
    (orjson.dumps({"model": "carloan", "version": "3"}), [], "missing_field"),
    (good("g2", features=[1, 2]), [], "wrong_type"),
    (b'{"model": "carloan", "features": {"a": NaN}}', [], "non_finite"),
    (good("g3", model="fraud"), [], "unknown_model"),
    (good("g4", features={f"f{i}": float(i) for i in range(300)}), [], "oversized"),
    (good("g5", timestamp="last tuesday"), [], "bad_timestamp"),
    (orjson.dumps({"instances": [[1.0, "x"]]}), ce("com.example.unknown", "u1"),
     "unknown_event_type"),
    (good("g6"), [], None),
    (orjson.dumps({"instances": [[1.0, "x"], [2.0, "y"]]}), ce(REQUEST_TYPE, "k1"), None),
    (orjson.dumps({"predictions": [1, 0]}), ce(RESPONSE_TYPE, "k1"), None),
    (orjson.dumps({"specversion": "1.0", "id": "s1", "type": RESPONSE_TYPE, "source": "x",
                   "inferenceservicename": "carloan", "endpoint": "default",
                   "data": {"predictions": [0]}}),
     [("content-type", b"application/cloudevents+json")], None),
    (orjson.dumps({"specversion": "1.0", "id": "s1", "type": REQUEST_TYPE, "source": "x",
                   "inferenceservicename": "carloan", "endpoint": "default",
                   "data": {"instances": [{"a": 3.0, "b": "z"}]}}),
     [("content-type", b"application/cloudevents+json")], None),
    (good("g7"), [], None),
]
EXPECTED_IDS = ["g0", "g1", "g6", "k1:0", "k1:1", "s1:0", "g7"]
LABEL_STREAM = [
    (orjson.dumps({"model": "carloan", "request_id": "g0", "label": 1}), None),
    (orjson.dumps({"model": "carloan", "request_id": "g1"}), "missing_field"),
    (orjson.dumps({"model": "carloan", "request_id": "g1", "label": 0}), None),
]


def decoder(cfg: KafkaConfig) -> Decoder:
    return Decoder(cfg.formats, max_record_bytes=cfg.max_record_bytes,
                   feature_order=lambda model: FEATURES,
                   endpoint_version=lambda model, endpoint: {"default": "3"}.get(endpoint),
                   known_models=lambda model: model == "carloan")


def consume_all(consumer: KafkaConsumer, n: int, timeout: float = 30.0) -> list[Any]:
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(records) < n and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    assert len(records) == n, f"consumed {len(records)} records, expected {n}"
    return records


def run_loop(cfg: KafkaConfig, n_predictions: int, n_labels: int
             ) -> tuple[list[Prediction], list[Label], list[tuple[Any, DecodeError]]]:
    """consume -> decode -> dead-letter, flushing dead letters before 'committing'."""
    consumer = make_consumer(cfg, group_id=None)
    producer = make_producer(cfg)
    writer = DeadLetterWriter(producer, cfg.dead_letter_topic)
    dec = decoder(cfg)
    predictions: list[Prediction] = []
    labels: list[Label] = []
    bad: list[tuple[Any, DecodeError]] = []
    try:
        consumer.assign([TopicPartition(PREDICTIONS, 0), TopicPartition(LABELS, 0)])
        for record in sorted(consume_all(consumer, n_predictions + n_labels),
                             key=lambda r: (r.topic, r.offset)):
            try:
                if record.topic == LABELS:
                    labels.append(dec.decode_label(record))
                else:
                    predictions.extend(dec.decode_prediction(record))
            except DecodeError as error:
                writer.write(record, error)
                bad.append((record, error))
        assert writer.flush() == len(bad)
        assert dec.joiner.pending_offsets() == {} and dec.joiner.take_evicted() == []
    finally:
        consumer.close()
        producer.close()
    return predictions, labels, bad


def test_bad_records_go_unchanged_to_the_dead_letter_topic(broker: Managed) -> None:
    cfg = config(broker)
    bootstrap = cfg.bootstrap_servers
    assert set(ensure_topics(bootstrap, [PREDICTIONS, LABELS, DLQ], partitions=1)) == {
        PREDICTIONS, LABELS, DLQ}
    assert ensure_topics(bootstrap, [PREDICTIONS, DLQ], partitions=1) == []

    producer = make_producer(cfg, acks=1)
    for value, headers, _ in STREAM:
        producer.send(PREDICTIONS, value=value, key=b"k", headers=headers, partition=0)
    for value, _ in LABEL_STREAM:
        producer.send(LABELS, value=value, partition=0)
    producer.flush()
    producer.close()

    predictions, labels, bad = run_loop(cfg, len(STREAM), len(LABEL_STREAM))

    assert [p.request_id for p in predictions] == EXPECTED_IDS
    assert {p.version for p in predictions} == {"3"}
    assert predictions[3].features == {"a": 1.0, "b": "x"} and predictions[4].prediction == 0
    assert [(label.request_id, label.label) for label in labels] == [("g0", 1), ("g1", 0)]
    expected_bad = [r for _, _, r in STREAM if r] + [r for _, r in LABEL_STREAM if r]
    assert sorted(e.reason for _, e in bad) == sorted(expected_bad)

    reader = make_consumer(cfg, group_id=None)
    try:
        reader.assign([TopicPartition(DLQ, 0)])
        letters = consume_all(reader, len(bad))
    finally:
        reader.close()
    by_source = {(r.topic, r.offset): r for r, _ in bad}
    reasons = {(r.topic, r.offset): e.reason for r, e in bad}
    for letter in letters:
        letter_headers = dict(letter.headers)
        source = (letter_headers["driftloop_source_topic"].decode(),
                  int(letter_headers["driftloop_source_offset"]))
        original = by_source.pop(source)
        assert letter_headers["driftloop_source_partition"] == b"0"
        assert letter.value == original.value and letter.key == original.key
        error = letter_headers["driftloop_error"].decode()
        assert error.startswith(reasons[source] + ": ") and "\n" not in error
        for name, value in original.headers:
            assert letter_headers[name] == value  # ce_* headers survive for a replay
    assert by_source == {}


def test_consumer_lag_follows_the_position(broker: Managed) -> None:
    cfg = config(broker)
    ensure_topics(cfg.bootstrap_servers, ["lag"], partitions=2)
    producer = make_producer(cfg, acks=1)
    for i in range(30):
        producer.send("lag", value=good(f"l{i}"), partition=i % 2)
    producer.flush()
    producer.close()
    consumer = make_consumer(cfg, group_id=None, max_poll_records=5)
    try:
        consumer.assign([TopicPartition("lag", 0), TopicPartition("lag", 1)])
        # before any fetch the end comes from end_offsets(), which reads low against Tansu
        assert sum(consumer_lag(consumer).values()) <= 30
        got, seen = 0, set[int]()
        for _ in range(50):
            if seen == {0, 1}:
                break
            for tp, batch in consumer.poll(timeout_ms=1000, max_records=5).items():
                got += len(batch)
                seen.add(tp.partition)
        assert 0 < got < 30
        # once fetched, the end is the high-water mark of the fetch response: exact
        assert sum(consumer_lag(consumer).values()) == 30 - got
        consume_all(consumer, 30 - got)
        assert consumer_lag(consumer) == {("lag", 0): 0, ("lag", 1): 0}
    finally:
        consumer.close()


def test_group_consumer_with_default_settings_joins_and_commits(broker: Managed) -> None:
    cfg = config(broker, group_id="it-group")
    ensure_topics(cfg.bootstrap_servers, ["grouped"], partitions=2)
    producer = make_producer(cfg)
    for i in range(10):
        producer.send("grouped", value=good(f"gr{i}"), partition=i % 2)
    producer.flush()
    producer.close()
    consumer = make_consumer(cfg)
    try:
        consumer.subscribe(["grouped"])
        records = consume_all(consumer, 10, timeout=60)
        consumer.commit()
        ends = {TopicPartition("grouped", p): 5 for p in (0, 1)}
        assert {tp: consumer.committed(tp) for tp in ends} == ends
        assert sorted(decoder(cfg).decode_prediction(r)[0].request_id for r in records) == sorted(
            f"gr{i}" for i in range(10))
    finally:
        consumer.close()


def test_broker_probe_sees_the_broker_come_and_go(tmp_path: Path) -> None:
    proc = start_tansu(tmp_path)
    bootstrap = f"127.0.0.1:{proc.port}"
    try:
        assert broker_reachable(bootstrap, timeout=2.0)
        assert broker_reachable(["127.0.0.1:1", bootstrap], timeout=2.0)
        consumer = make_consumer(config(proc), group_id=None)
        assert broker_reachable(consumer, timeout=2.0)
        consumer.close()
    finally:
        proc.stop()
    assert not broker_reachable(bootstrap, timeout=0.5)
    assert not broker_reachable(f"127.0.0.1:{free_port()}", timeout=0.5)
