"""Labels read in step with their predictions from a backlog (monitor.stream.alignment).

Real processes: the session's Tansu broker and a SQLite state store; the service runs
in-process (``Service.step`` on a group-less consumer), so the store's writes can be
counted. The backlog is produced like a live feed would have written it: the label of
prediction ``i`` right after prediction ``i + LAG``. Small fetches make each labels fetch
carry ~8x more records than a predictions fetch (as 4 MiB fetches of 100-byte labels
against 800-byte predictions do), so without alignment the labels run far ahead and
wait in the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from monitor.cli.examples import FEATURES
from monitor.cli.replay import label_events, prediction_events
from monitor.config import load_config
from monitor.ingest import DeadLetterWriter, make_consumer, make_producer
from monitor.runtime.build import Runtime, build
from monitor.store.database import Transaction
from monitor.stream.alignment import LabelAlignment
from tests.support.service import StreamData, Topics, new_topics, write_config

pytestmark = pytest.mark.integration

N = 2000  # predictions, each with its label
LAG = 50  # the label of prediction i is produced right after prediction i + LAG
# persists come at least this often, whatever the time (a persist is where pairs join)
STEPS_PER_PERSIST = 4
SMALL_FETCHES = {"max_partition_fetch_bytes": 16 * 1024, "fetch_max_bytes": 32 * 1024}


def labelled(data: StreamData) -> Any:
    """The first N predictions that have a label."""
    return data.current[data.current["request_id"].isin(data.labels["request_id"])].iloc[:N]


def backlog(data: StreamData) -> list[tuple[str, bytes]]:
    """(which topic, value) in production order."""
    rows = labelled(data)
    predictions = [v for _, v in prediction_events(
        rows, model="carloan", version="1", features=FEATURES, prediction="prediction",
        score="score")]
    labels = [v for _, v in label_events(
        data.labels.set_index("request_id").loc[rows["request_id"]].reset_index(),
        model="carloan", label="repaid")]
    out: list[tuple[str, bytes]] = []
    for i, value in enumerate(predictions):
        out.append(("predictions", value))
        if i >= LAG:
            out.append(("labels", labels[i - LAG]))
    out.extend(("labels", value) for value in labels[N - LAG:])
    return out


def produce(bootstrap: str, topics: Topics, records: list[tuple[str, bytes]]) -> None:
    config = load_config(data={"kafka": {"bootstrap_servers": [bootstrap]}}).kafka
    producer = make_producer(config, acks=1, batch_size=4096)
    try:
        for which, value in records:
            producer.send(getattr(topics, which), value=value, partition=0)
        producer.flush(60)
    finally:
        producer.close(10)


class StoredLabels:
    """Counts the label rows persists store to wait for their prediction."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows = 0
        original = Transaction.add_labels

        def add_labels(tx: Transaction, rows: Any) -> int:
            rows = list(rows)
            self.rows += len(rows)
            return original(tx, rows)

        monkeypatch.setattr(Transaction, "add_labels", add_labels)


@pytest.fixture
def runtime_for(tmp_path: Path, tansu: str, stream_data: StreamData
                ) -> Iterator[Any]:
    made: list[Runtime] = []

    def make(topics: Topics, alignment_seconds: float) -> Runtime:
        path = write_config(tmp_path / f"driftloop-{len(made)}.yaml", bootstrap=tansu,
                            topics=topics, state_url=f"sqlite:///{tmp_path}/state-{len(made)}.db",
                            baseline=str(stream_data.baseline),
                            kafka={"poll_max_records": 500, "consumer": SMALL_FETCHES,
                                   "label_alignment_seconds": alignment_seconds})
        runtime = build(load_config(path))
        kafka = runtime.config.kafka
        runtime.service.consumer = make_consumer(kafka, group_id=None)
        runtime.service.dead_letters = DeadLetterWriter(make_producer(kafka),
                                                        kafka.dead_letter_topic)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        if runtime.service.dead_letters is not None:
            runtime.service.dead_letters.producer.close(5)  # type: ignore[attr-defined]
        if runtime.service.consumer is not None:
            runtime.service.consumer.close(autocommit=False)
        runtime.store.close()


def consume(runtime: Runtime, topics: Topics, n_predictions: int, n_labels: int
            ) -> list[str]:
    """Step until both partitions are handled to their end; returns the request ids of
    every pair joined, in the order the persists stored them."""
    service, consumer = runtime.service, runtime.service.consumer
    assert consumer is not None
    keys = {(topics.predictions, 0), (topics.labels, 0)}
    consumer.assign([TopicPartition(*key) for key in keys])  # type: ignore[attr-defined]
    for (topic, partition), offset in service.restore(keys).items():
        consumer.seek(TopicPartition(topic, partition), offset)
    joined: list[str] = []
    ends = {key: end for key, end in
            (((topics.predictions, 0), n_predictions), ((topics.labels, 0), n_labels)) if end}
    for step in range(1, 2000):
        if all(service.partitions.handled(key) >= end for key, end in ends.items()):
            break
        persisted = service.step(timeout_ms=500, force_persist=step % STEPS_PER_PERSIST == 0
                                 ).persisted
        if persisted is not None:
            joined.extend(pair.request_id for pair in persisted.pairs.get("carloan", []))
    else:
        raise AssertionError(f"not consumed to the end: {service.partitions.processed}")
    persisted = service.persist(force=True)
    if persisted is not None:
        joined.extend(pair.request_id for pair in persisted.pairs.get("carloan", []))
    return joined


@pytest.mark.parametrize("alignment_seconds", [0.001, 0.0])
def test_backlog_labels_pair_in_memory_only_with_alignment(
        tansu: str, stream_data: StreamData, runtime_for: Any, monkeypatch: pytest.MonkeyPatch,
        alignment_seconds: float) -> None:
    topics = new_topics(tansu, "align")
    produce(tansu, topics, backlog(stream_data))
    stored = StoredLabels(monkeypatch)
    runtime = runtime_for(topics, alignment_seconds)

    joined = consume(runtime, topics, N, N)

    # every pair joins exactly once, and nothing is left waiting in the store
    assert len(joined) == N
    assert sorted(joined) == sorted(labelled(stream_data)["request_id"].astype(str))
    assert runtime.store.pending_counts() == {}
    if alignment_seconds:
        # labels came with their predictions: only pairs cut by a persist wait in the store
        assert stored.rows < N // 4, stored.rows
        assert runtime.service.consumer.paused() == set()  # nothing held at the end
    else:
        # the labels ran ahead (fetched 8x faster): most waited in the store
        assert stored.rows > N // 2, stored.rows


def test_labels_without_predictions_are_not_held(
        tansu: str, stream_data: StreamData, runtime_for: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No predictions partition has a backlog: labels are read and stored as they come."""
    topics = new_topics(tansu, "align-alone")
    labels = [("labels", value) for which, value in backlog(stream_data) if which == "labels"]
    produce(tansu, topics, labels)
    stored = StoredLabels(monkeypatch)
    runtime = runtime_for(topics, 0.001)

    assert consume(runtime, topics, 0, N) == []

    assert stored.rows == N
    counts = runtime.store.pending_counts()["carloan"]
    assert (counts.predictions, counts.labels) == (0, N)


def test_labels_paused_in_the_middle_of_a_fetch_are_read_after_resume(
        tansu: str, stream_data: StreamData) -> None:
    """kafka-python parks the records of a partition paused half-read and, without the
    work-around in monitor.stream.alignment, never reads that partition again (its
    ``poll()`` then blocks for ever: this test fails by its timeout)."""
    topics = new_topics(tansu, "align-parked")
    produce(tansu, topics, backlog(stream_data))
    config = load_config(data={"kafka": {"bootstrap_servers": [tansu],
                                         "consumer": SMALL_FETCHES}}).kafka
    consumer = make_consumer(config, group_id=None)
    alignment = LabelAlignment(topics.predictions, topics.labels, 0.001)
    read = {topics.predictions: 0, topics.labels: 0}
    try:
        consumer.assign([TopicPartition(topics.predictions, 0), TopicPartition(topics.labels, 0)])
        for _ in range(1000):
            if read[topics.labels] == N and read[topics.predictions] == N:
                break
            for tp, batch in alignment.align(consumer.poll(timeout_ms=500, max_records=40),
                                             consumer).items():
                read[tp.topic] += len(batch)
    finally:
        consumer.close(autocommit=False)
    assert read == {topics.predictions: N, topics.labels: N}
