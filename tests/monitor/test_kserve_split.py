"""KServe halves split across replicas (issue 15, ``kafka.kserve_split``).

The forward and the copy filter of :mod:`monitor.stream.kserve_split` on their own, then
two ``monitor.stream.Service`` replicas over an in-memory log: replica A holds predictions
partition 0 and kserve partition 0, replica B predictions partition 1 and kserve
partition 1. Every request is on partition 0 and every response on partition 1, so no
replica reads both halves of a call from the predictions topic; the forward brings them
together, every pair joins once, also when a replica dies between its forward and its
persist and a new one restored from the store forwards the same halves again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2
from prometheus_client import CollectorRegistry

from monitor.baseline import Baseline
from monitor.cli.examples import sample_features
from monitor.config import Config
from monitor.ingest import Decoder
from monitor.ingest.codecs.kserve import REQUEST_TYPE, RESPONSE_TYPE
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.stream import ModelPipeline, Service
from monitor.stream.kserve_split import (
    FORWARDED_OFFSET,
    FORWARDED_PARTITION,
    FORWARDED_TOPIC_ID,
    SPLIT_STREAMS,
    ForwardError,
    KServeSplit,
    cloudevent_id,
)
from monitor.stream.partitions import PartitionMark
from tests.support.memory_kafka import LogConsumer

PREDICTIONS, KSERVE = "predictions", "g-kserve"
BROKER_MS = 1_546_300_800_000  # 2019-01-01
POOL = sample_features(np.random.default_rng(5), 400, 0).to_dict("records")
WINDOW_ROWS = 50


def record(value: bytes, headers: list[tuple[str, bytes]] | None = None, *,
           topic: str = PREDICTIONS, partition: int = 0, offset: int = 0,
           key: bytes | None = None) -> ConsumerRecord:
    return ConsumerRecord(topic, partition, 0, offset, BROKER_MS, 0, key, value,
                          headers or [], None, -1, -1, -1)


def ce_headers(kind: str, ce_id: str) -> list[tuple[str, bytes]]:
    return [("ce_specversion", b"1.0"), ("ce_id", ce_id.encode()), ("ce_type", kind.encode()),
            ("ce_source", b"kserve"), ("ce_inferenceservicename", b"carloan"),
            ("ce_endpoint", b"default"), ("ce_time", b"2019-01-01T00:00:00Z")]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value.item() if isinstance(value, np.generic) else value


def request(i: int) -> bytes:
    return json.dumps({"instances": [{k: _plain(v) for k, v in POOL[i % len(POOL)].items()}]
                       }).encode()


def response(i: int) -> bytes:
    return json.dumps({"predictions": [i % 2]}).encode()


def forwarded(source: tuple[int, int], offset: int, partition: int = 0,
              topic_id: str | None = None) -> ConsumerRecord:
    headers = [*ce_headers(REQUEST_TYPE, f"c{source}"),
               (FORWARDED_PARTITION, str(source[0]).encode()),
               (FORWARDED_OFFSET, str(source[1]).encode())]
    if topic_id is not None:
        headers.append((FORWARDED_TOPIC_ID, topic_id.encode()))
    return record(request(0), headers, topic=KSERVE, partition=partition, offset=offset)


class Future:
    def __init__(self, error: Exception | None = None) -> None:
        self.is_done, self.exception = True, error

    def failed(self) -> bool:
        return self.exception is not None


class Log:
    """Topics in memory; a producer's send lands at once (as if acknowledged)."""

    def __init__(self, kserve_partitions: int = 2) -> None:
        self.topics: dict[tuple[str, int], list[ConsumerRecord]] = {}
        self.kserve_partitions = kserve_partitions

    def append(self, topic: str, partition: int, value: bytes,
               headers: list[tuple[str, bytes]], key: bytes | None = None) -> None:
        records = self.topics.setdefault((topic, partition), [])
        records.append(record(value, headers, topic=topic, partition=partition,
                              offset=len(records), key=key))


class Producer:
    """kafka-python's default partitioner: murmur2 of the key."""

    def __init__(self, log: Log, fail: bool = False) -> None:
        self.log, self.fail = log, fail

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
             timestamp_ms: int | None = None) -> Future:
        if self.fail:
            return Future(KafkaError("broker gone"))
        partition = (murmur2(key) & 0x7FFFFFFF) % self.log.kserve_partitions
        self.log.append(topic, partition, value, headers, key)
        return Future()

    def flush(self, timeout: float | None = None) -> None:
        pass


def split(producer: Any = None) -> KServeSplit:
    cfg = Config.model_validate({"kafka": {"group_id": "g", "formats": ["kserve"],
                                           "kserve_split": True}})
    return KServeSplit(cfg.kafka, producer)


# -- the forward and the copy filter ---------------------------------------------------------
def test_cloudevent_id_reads_binary_and_structured_halves_and_leaves_native_records() -> None:
    assert cloudevent_id(record(request(0), ce_headers(REQUEST_TYPE, "a1")), 10_000) == b"a1"
    envelope = json.dumps({"specversion": "1.0", "id": "s1", "type": RESPONSE_TYPE,
                           "source": "k", "data": {"predictions": [1]}}).encode()
    assert cloudevent_id(record(envelope), 10_000) == b"s1"
    assert cloudevent_id(record(envelope, [("content-type",
                                            b"application/cloudevents+json")]), 10_000) == b"s1"
    native = json.dumps({"model": "carloan", "version": "1", "request_id": "r"}).encode()
    assert cloudevent_id(record(native), 10_000) is None
    # what cannot be routed is decoded where it was read, which dead-letters it
    no_id = [h for h in ce_headers(REQUEST_TYPE, "x") if h[0] != "ce_id"]
    assert cloudevent_id(record(request(0), no_id), 10_000) is None
    assert cloudevent_id(record(request(0), ce_headers(REQUEST_TYPE, "a1")), 10) is None


def test_forward_sends_halves_keyed_by_id_with_their_source_and_keeps_native_records() -> None:
    log = Log()
    forward = split(Producer(log))
    native = record(b'{"model": "carloan"}', offset=0)
    half = record(request(0), ce_headers(REQUEST_TYPE, "a1"), partition=3, offset=1)
    replayed = record(request(1), ce_headers(REQUEST_TYPE, "a0"), partition=3, offset=0)
    assert forward.forward([replayed], handled=1) == []  # flushed before the mark moved
    assert forward.forward([native, half], handled=1, topic_id="t1") == [native]
    assert forward.flush() == 1
    [(where, [sent])] = log.topics.items()
    assert where[0] == KSERVE and sent.key == b"a1" and sent.value == half.value
    assert sent.headers[-3:] == [(FORWARDED_PARTITION, b"3"), (FORWARDED_OFFSET, b"1"),
                                 (FORWARDED_TOPIC_ID, b"t1")]
    assert sent.headers[:-3] == half.headers


def test_a_forward_not_acknowledged_fails_the_flush() -> None:
    forward = split(Producer(Log(), fail=True))
    forward.forward([record(request(0), ce_headers(REQUEST_TYPE, "a1"))], handled=0)
    with pytest.raises(ForwardError, match="1 of 1 forwarded halves not acknowledged"):
        forward.flush()


def test_a_forwarded_again_record_is_dropped() -> None:
    filt = split()
    first = [forwarded((0, 5), 0), forwarded((0, 6), 1)]
    assert filt.admit(0, first, handled=0) == first
    again = [forwarded((0, 5), 2), forwarded((0, 6), 3), forwarded((0, 7), 4)]
    assert [r.offset for r in filt.admit(0, again, handled=2)] == [4]
    assert filt.copies == 2


def test_the_filter_keeps_each_source_partitions_order_apart() -> None:
    filt = split()
    mixed = [forwarded((0, 10), 0), forwarded((1, 2), 1), forwarded((0, 11), 2),
             forwarded((1, 3), 3)]
    assert filt.admit(0, mixed, handled=0) == mixed
    # source 1 re-forwarded from offset 3 (its replica died before committing 3): only 3 is
    # a copy; source 0 moved on meanwhile
    tail = [forwarded((1, 3), 4), forwarded((0, 12), 5), forwarded((1, 4), 6)]
    assert [r.offset for r in filt.admit(0, tail, handled=4)] == [5, 6]
    assert filt.marks() == {(KSERVE, 0): {0: (12, ""), 1: (4, "")}}


def test_a_source_topic_created_again_is_not_taken_for_copies() -> None:
    filt = split()
    assert len(filt.admit(0, [forwarded((0, 7), 0, topic_id="old")], handled=0)) == 1
    # deleted and created again: its offsets count from 0 under a new id
    again = [forwarded((0, 0), 1, topic_id="new"), forwarded((0, 1), 2, topic_id="new"),
             forwarded((0, 1), 3, topic_id="new")]
    assert [r.offset for r in filt.admit(0, again, handled=1)] == [1, 2]


def test_a_restored_filter_keeps_dropping_and_replays_below_the_mark_pass() -> None:
    filt = split()
    filt.admit(1, [forwarded((0, 5), 0, 1), forwarded((2, 9), 1, 1)], handled=0)
    stored = PartitionMark(2, None, forwarded=tuple(
        sorted((p, o, i) for p, (o, i) in filt.marks()[(KSERVE, 1)].items())))
    mark = PartitionMark.from_dict(stored.to_dict())
    assert mark == stored
    again = split()
    again.restore({(KSERVE, 1): mark}, [(KSERVE, 1)])
    # offsets 0..1 are below the mark (the joiner rebuilds from them); 2..3 are copies
    replay = [forwarded((0, 5), 0, 1), forwarded((2, 9), 1, 1), forwarded((0, 5), 2, 1),
              forwarded((2, 9), 3, 1), forwarded((2, 10), 4, 1)]
    assert [r.offset for r in again.admit(1, replay, handled=2)] == [0, 1, 4]


def test_a_filter_of_a_kserve_topic_created_again_starts_empty() -> None:
    stored = PartitionMark(2, "old-id", forwarded=((0, 5, ""),))
    filt = split()
    filt.restore({(KSERVE, 0): stored}, [(KSERVE, 0)], {(KSERVE, 0): "new-id"})
    # the broker came back without its data: source offsets count from 0 again too
    assert [r.offset for r in filt.admit(0, [forwarded((0, 0), 0)], handled=0)] == [0]
    filt.restore({(KSERVE, 0): stored}, [(KSERVE, 0)], {(KSERVE, 0): "old-id"})
    assert filt.admit(0, [forwarded((0, 5), 2)], handled=2) == []


def test_a_record_not_forwarded_by_a_replica_is_skipped() -> None:
    filt = split()
    stray = record(request(0), ce_headers(REQUEST_TYPE, "z"), topic=KSERVE)
    assert filt.admit(0, [stray], handled=0) == []
    assert filt.strays == 1


# -- two replicas over an in-memory log --------------------------------------------------------
class Letters:
    def __init__(self) -> None:
        self.written: list[tuple[Any, Any]] = []

    def write(self, record: Any, error: Any) -> None:
        self.written.append((record, error))

    def flush(self, timeout_seconds: float | None = 30.0) -> int:
        return len(self.written)


@pytest.fixture
def cfg(tmp_path: Path, example_baseline: Path) -> Config:
    return Config.model_validate({
        "kafka": {"group_id": "g", "predictions_topic": PREDICTIONS, "formats": ["kserve"],
                  "kserve_split": True, "kserve_partitions": 2, "label_alignment_seconds": 0},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "models": {"carloan": {"baseline": str(example_baseline),
                               "window": {"rows": WINDOW_ROWS}}}})


def replica(cfg: Config, log: Log, assigned: set[tuple[str, int]],
            letters: Letters) -> Service:
    pipelines = {"carloan": ModelPipeline("carloan", cfg.models["carloan"],
                                          Baseline.load(cfg.models["carloan"].baseline))}
    decoder = Decoder(["kserve"], max_record_bytes=100_000, feature_order=lambda m: None,
                      endpoint_version=lambda m, e: None, known_models=lambda m: True)
    consumer = LogConsumer(log.topics, assigned)
    # a frozen clock: a persist happens only when a step forces it
    service = Service(cfg, pipelines, Store(cfg.state.url), Metrics(CollectorRegistry()),
                      decoder, consumer, letters, clock=lambda: 1e9)  # type: ignore[arg-type]
    assert service.split is not None
    service.split.producer = Producer(log)
    for (topic, partition), offset in service.restore(assigned).items():
        consumer.seek(TopicPartition(topic, partition), offset)
    return service


def send_pairs(log: Log, ids: range) -> None:
    """Requests on predictions partition 0, responses on partition 1."""
    for i in ids:
        log.append(PREDICTIONS, 0, request(i), ce_headers(REQUEST_TYPE, f"call-{i}"))
        log.append(PREDICTIONS, 1, response(i), ce_headers(RESPONSE_TYPE, f"call-{i}"))


def counted_rows(url: str) -> tuple[int, set[int]]:
    """Rows of the stored windows and open windows, and the windows' partitions."""
    with Store(url) as store:
        closed = list(store.windows("carloan", limit=1000))
        open_rows = sum(w["n_rows"] for c in store.load_checkpoints()
                        if isinstance(c.state, dict) for w in c.state.get("open", []))
    return sum(int(w["rows"]) for w in closed) + open_rows, {w["partition"] for w in closed}


A = {(PREDICTIONS, 0), (KSERVE, 0)}
B = {(PREDICTIONS, 1), (KSERVE, 1)}


def test_halves_read_by_different_replicas_all_join_once(cfg: Config) -> None:
    log, letters = Log(), Letters()
    a, b = replica(cfg, log, A, letters), replica(cfg, log, B, letters)
    send_pairs(log, range(200))
    for _ in range(3):
        a.step(force_persist=True)
        b.step(force_persist=True)
    rows, partitions = counted_rows(cfg.state.url)
    assert rows == 200
    assert partitions and partitions <= {SPLIT_STREAMS, SPLIT_STREAMS + 1}
    assert letters.written == []
    assert {tp[0] for tp in log.topics} == {PREDICTIONS, KSERVE}


def test_halves_forwarded_again_after_a_crash_are_counted_once(cfg: Config) -> None:
    """Three replicas: A and B forward, C pairs. A and B die after C stored the pairs but
    before their own persists: their successors forward both halves of every call again."""
    log, letters = Log(), Letters()
    a, b = replica(cfg, log, {(PREDICTIONS, 0)}, letters), \
        replica(cfg, log, {(PREDICTIONS, 1)}, letters)
    c = replica(cfg, log, {(KSERVE, 0), (KSERVE, 1)}, letters)
    send_pairs(log, range(200))
    a.step()
    b.step()
    c.step(force_persist=True)
    assert counted_rows(cfg.state.url)[0] == 200
    del a, b  # their source offsets were never stored
    a, b = replica(cfg, log, {(PREDICTIONS, 0)}, letters), \
        replica(cfg, log, {(PREDICTIONS, 1)}, letters)
    a.step(force_persist=True)
    b.step(force_persist=True)
    del c  # its filters are stored with its partitions' marks
    c = replica(cfg, log, {(KSERVE, 0), (KSERVE, 1)}, letters)
    c.step(force_persist=True)
    assert counted_rows(cfg.state.url)[0] == 200
    assert c.split is not None and c.split.copies == 400  # every half, once more
    assert c.decoder.joiner.pending_ids() == {}  # no copy waits for a partner
    # the restored streams of the kserve partitions go on from their checkpoints
    send_pairs(log, range(200, 300))
    for service in (a, b, c, c):
        service.step(force_persist=True)
    rows, partitions = counted_rows(cfg.state.url)
    assert rows == 300 and partitions <= {SPLIT_STREAMS, SPLIT_STREAMS + 1}
    assert letters.written == []
