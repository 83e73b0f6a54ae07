"""Two ``driftloop serve`` replicas in one consumer group on a 4-partition topic.

One gets SIGTERM mid-stream, the other is killed with ``kill -9`` later, both
restart. Every event is counted once (the windows' rows add up to what was
produced, partition by partition), no window is counted twice, and no retrain is
launched twice: the retrain command writes its idempotency key to a file, and no
key appears twice.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaProducer
from sqlalchemy import create_engine, select

from monitor.cli.examples import FEATURES
from monitor.cli.replay import prediction_events
from monitor.store import Store, schema
from tests.support.service import (
    WINDOW_ROWS,
    RunningService,
    StreamData,
    new_topics,
    poll,
    start_service,
    write_config,
)

pytestmark = pytest.mark.integration

PARTITIONS = 4
PER_PARTITION = 2 * WINDOW_ROWS


def drifting_rows(data: StreamData, n: int) -> pd.DataFrame:
    """``n`` rows drawn from the example's fifth window, which drifts as a whole."""
    window = data.current.iloc[4 * WINDOW_ROWS: 5 * WINDOW_ROWS]
    rows = pd.concat([window] * (n // len(window) + 1), ignore_index=True).iloc[:n].copy()
    rows["request_id"] = [f"r{i}" for i in range(n)]
    return rows


def send(producer: KafkaProducer, topic: str, rows: pd.DataFrame, start: int) -> None:
    """Row i goes to partition i % 4, in order."""
    events = prediction_events(rows, model="carloan", version="1", features=FEATURES,
                               prediction="prediction", score="score")
    for i, (key, value) in enumerate(events, start=start):
        producer.send(topic, key=key, value=value, partition=i % PARTITIONS)
    producer.flush()


def stored_offsets(state_url: str, group: str, topic: str) -> dict[int, int]:
    with Store(state_url) as store:
        return {p: o for (t, p), o in store.offsets(group).items() if t == topic}


def partition_owners(state_url: str, group: str, topic: str) -> set[str]:
    """The members that last took a partition of ``topic``, from the fencing table."""
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            t = schema.partition_owners
            rows = conn.execute(select(t.c.owner).where(t.c.group_id == group,
                                                        t.c.topic == topic)).all()
    finally:
        engine.dispose()
    return {row.owner for row in rows}


def test_two_replicas_count_every_event_once_across_sigterm_and_kill_9(
        tansu: str, stream_data: StreamData, postgres_url: str, tmp_path: Path) -> None:
    topics = new_topics(tansu, "replicas", partitions=PARTITIONS)
    launches = tmp_path / "launches.txt"
    launcher = {"type": "command", "argv": [
        sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')",
        str(launches), "{idempotency_key}"]}
    def replica_config(name: str) -> Path:  # one machine: a port each
        return write_config(tmp_path / name / "driftloop.yaml", bootstrap=tansu, topics=topics,
                            state_url=postgres_url, baseline=str(stream_data.baseline),
                            model={"retrain": {"on": ["dataset_drift"],
                                               "consecutive_windows": 1, "cooldown": 0,
                                               "launcher": launcher}},
                            kafka={"commit_interval_seconds": 0.5})

    config_a, config_b = replica_config("a"), replica_config("b")
    rows = drifting_rows(stream_data, PARTITIONS * PER_PARTITION)
    quarter = len(rows) // 4
    producer = KafkaProducer(bootstrap_servers=[tansu], acks="all", linger_ms=5)
    services: list[RunningService] = []
    try:
        a = start_service(config_a, "replica-a")
        b = start_service(config_b, "replica-b")
        services += [a, b]
        # both members settled in the group before one leaves: Tansu keeps a leader that
        # left in the middle of a join as the group's leader, and the group never settles
        # again (Kafka elects a new one); the test is about two members sharing the stream
        poll(lambda: len(partition_owners(postgres_url, topics.group, topics.predictions))
             == 2, 90, "both replicas holding partitions", b.proc)
        send(producer, topics.predictions, rows.iloc[:quarter], 0)
        poll(lambda: sum(stored_offsets(postgres_url, topics.group, topics.predictions)
                         .values()) >= quarter // 2, 90, "both replicas consuming", a.proc)
        # SIGTERM one replica while the stream flows: it persists and leaves the group
        send(producer, topics.predictions, rows.iloc[quarter:2 * quarter], quarter)
        assert a.stop() == 0
        left = stored_offsets(postgres_url, topics.group, topics.predictions)
        send(producer, topics.predictions, rows.iloc[2 * quarter:3 * quarter], 2 * quarter)
        # the other replica takes every partition over, the stopped one's included
        poll(lambda: all(stored_offsets(postgres_url, topics.group, topics.predictions)
                         .get(p, 0) > left.get(p, 0) for p in range(PARTITIONS)), 90,
             "the other replica taking every partition over", b.proc)
        send(producer, topics.predictions, rows.iloc[3 * quarter:], 3 * quarter)
        before = sum(stored_offsets(postgres_url, topics.group, topics.predictions).values())
        poll(lambda: sum(stored_offsets(postgres_url, topics.group, topics.predictions)
                         .values()) > before, 90, "progress on the last quarter", b.proc,
             interval=0.02)
        b.kill()  # kill -9 mid-stream
        a = start_service(config_a, "replica-a2")
        b = start_service(config_b, "replica-b2")
        services += [a, b]
        poll(lambda: stored_offsets(postgres_url, topics.group, topics.predictions)
             == dict.fromkeys(range(PARTITIONS), PER_PARTITION), 120, "every event persisted",
             a.proc)
        poll(lambda: len(a.windows()) == PARTITIONS * PER_PARTITION // WINDOW_ROWS, 60,
             "every window stored", a.proc)
        windows = a.windows()
    finally:
        producer.close()
        for service in services:
            if service.proc.alive():
                service.stop()

    # every window once, each full: the rows add up to what was produced, per partition
    identities = Counter((w["partition"], w["window"]) for w in windows)
    assert identities == Counter({(p, i): 1 for p in range(PARTITIONS)
                                  for i in range(PER_PARTITION // WINDOW_ROWS)})
    assert all(w["rows"] == WINDOW_ROWS for w in windows)
    assert sum(w["rows"] for w in windows) == len(rows)
    # no retrain launched twice (every window drifts, so there were some to launch)
    keys = launches.read_text().split()
    assert keys and len(keys) == len(set(keys))
