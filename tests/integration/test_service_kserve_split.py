"""KServe halves on partitions that different replicas own (issue 15, ``kafka.kserve_split``).

Two ``driftloop serve`` replicas in one consumer group on a 6-partition predictions
topic. The request of call i goes to partition i % 6 and its response to (i + 3) % 6,
which the other replica owns: without the split the halves never meet (each replica
parks its half until it is evicted as ``unpaired``). With it, every pair joins and
counts once: the windows' rows (stored results plus the open windows' checkpoints) add
up to the number of calls, no record is a dead letter, also when one replica is killed
with ``kill -9`` mid-stream and started again (it forwards the halves after its last
persist again, and the replica pairing them drops the copies).

With ``kafka.partials`` on too, the pairs' event-time windows, closed in the streams of
the kserve topic's partitions, are merged by the model's owner into one window stream:
every pair counts once in a merged window, which closes only once every source stream
of both topics passed it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import create_engine, select

from monitor.cli.examples import FEATURES
from monitor.cli.replay import prediction_events
from monitor.ingest.codecs.kserve import REQUEST_TYPE, RESPONSE_TYPE
from monitor.store import Store, schema
from monitor.stream.kserve_split import SPLIT_STREAMS
from monitor.stream.owner import OWNER_KIND
from monitor.stream.partials import owner_partition
from monitor.stream.partitions import ALL_MODELS
from tests.support.service import (
    RunningService,
    StreamData,
    Topics,
    new_topics,
    poll,
    start_service,
    write_config,
)

pytestmark = pytest.mark.integration

PARTITIONS = 6
PAIRS = 1200
WINDOW = 100  # rows of a count window; each kserve partition gets about PAIRS / 6


def ce_headers(kind: str, ce_id: str, time_ms: int) -> list[tuple[str, bytes]]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time_ms / 1000))
    return [("ce_specversion", b"1.0"), ("ce_id", ce_id.encode()), ("ce_type", kind.encode()),
            ("ce_source", b"kserve"), ("ce_inferenceservicename", b"carloan"),
            ("ce_endpoint", b"default"), ("ce_time", f"{stamp}.{time_ms % 1000:03d}Z".encode())]


def plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return None if value != value else value  # NaN -> null


def send_call(producer: KafkaProducer, topic: str, row: Any, ce_id: str, partition: int,
              time_ms: int) -> None:
    """One call: its request on ``partition``, its response on partition + 3 (mod 6)."""
    request = {"instances": [[plain(row[f]) for f in FEATURES]]}
    response = {"predictions": [[1 - float(row["score"]), float(row["score"])]]}
    producer.send(topic, value=orjson.dumps(request), partition=partition % PARTITIONS,
                  headers=ce_headers(REQUEST_TYPE, ce_id, time_ms))
    producer.send(topic, value=orjson.dumps(response), partition=(partition + 3) % PARTITIONS,
                  headers=ce_headers(RESPONSE_TYPE, ce_id, time_ms))


def send_pairs(producer: KafkaProducer, topic: str, data: StreamData, ids: range,
               pause_every: int = 0, start_ms: int | None = None, step_ms: int = 1) -> None:
    """Call i, at ``start_ms`` (default: now) + i * ``step_ms``: its request on partition
    i % 6, its response on (i + 3) % 6; with ``pause_every``, a pause of 50 ms after
    every that many calls (a stream that flows for a while)."""
    now_ms = int(time.time() * 1000) if start_ms is None else start_ms
    for i in ids:
        if pause_every and i % pause_every == 0:
            producer.flush()
            time.sleep(0.05)
        send_call(producer, topic, data.current.iloc[i], f"call-{i}", i, now_ms + i * step_ms)
    producer.flush()


def owners(state_url: str, group: str, topic: str) -> dict[int, str]:
    """partition -> the member that last took it, from the fencing table."""
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            t = schema.partition_owners
            rows = conn.execute(select(t.c.partition, t.c.owner).where(
                t.c.group_id == group, t.c.topic == topic)).all()
    finally:
        engine.dispose()
    return {int(row.partition): row.owner for row in rows}


def halves_apart(state_url: str, group: str, topic: str) -> bool:
    """Every partition held, and the two halves of each call on different replicas."""
    held = owners(state_url, group, topic)
    return len(held) == PARTITIONS and all(
        held[p] != held[(p + 3) % PARTITIONS] for p in range(PARTITIONS))


def counted(state_url: str) -> tuple[int, list[dict[str, Any]]]:
    """The rows of every stored window and open window, and the stored windows."""
    with Store(state_url) as store:
        closed = list(store.windows("carloan", limit=10_000))
        open_rows = sum(w["n_rows"] for c in store.load_checkpoints()
                        if isinstance(c.state, dict) for w in c.state.get("open", []))
    return sum(int(w["rows"]) for w in closed) + open_rows, closed


def waiting(state_url: str) -> int:
    """KServe halves waiting for their partner at the last persist (the marks' pending)."""
    with Store(state_url) as store:
        return sum(len(c.state.get("pending") or ()) for c in store.load_checkpoints()
                   if c.model == ALL_MODELS and isinstance(c.state, dict))


def stored(state_url: str, group: str, topic: str) -> int:
    with Store(state_url) as store:
        return sum(o for (t, _), o in store.offsets(group).items() if t == topic)


def dead_letters(bootstrap: str, topics: Topics) -> list[Any]:
    consumer = KafkaConsumer(topics.dead_letters, bootstrap_servers=[bootstrap],
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        return list(consumer)
    finally:
        consumer.close()


def test_kserve_halves_on_different_replicas_all_join_once_across_a_kill_9(
        tansu: str, stream_data: StreamData, postgres_url: str, tmp_path: Path) -> None:
    topics = new_topics(tansu, "ksplit", partitions=PARTITIONS)

    def replica_config(name: str) -> Path:
        return write_config(tmp_path / name / "driftloop.yaml", bootstrap=tansu, topics=topics,
                            state_url=postgres_url, baseline=str(stream_data.baseline),
                            model={"window": {"rows": WINDOW}},
                            kafka={"formats": ["kserve"], "kserve_split": True,
                                   "kserve_partitions": PARTITIONS})

    config_a, config_b = replica_config("a"), replica_config("b")
    producer = KafkaProducer(bootstrap_servers=[tansu], acks="all", linger_ms=5)
    services: list[RunningService] = []
    third = PAIRS // 3
    try:
        a = start_service(config_a, "replica-a")
        b = start_service(config_b, "replica-b")
        services += [a, b]
        # the test is about halves read by different replicas: wait until they are
        poll(lambda: halves_apart(postgres_url, topics.group, topics.predictions), 90,
             "both replicas holding predictions partitions, halves apart", b.proc)
        send_pairs(producer, topics.predictions, stream_data, range(third))
        poll(lambda: counted(postgres_url)[0] == third, 90, "the first pairs joined", a.proc)
        # more calls, and one replica killed while they flow: what it forwarded since its
        # last persist is forwarded again by its successor
        before = stored(postgres_url, topics.group, topics.predictions)
        flow = threading.Thread(target=send_pairs, args=(
            producer, topics.predictions, stream_data, range(third, 2 * third), 10))
        flow.start()
        try:
            poll(lambda: stored(postgres_url, topics.group, topics.predictions) > before, 90,
                 "progress on the second third", b.proc, interval=0.02)
            # a persist just stored offsets: halfway to the next one (commit_interval_seconds
            # 0.5), B has forwarded halves whose offsets it has not stored
            time.sleep(0.25)
            b.kill()
        finally:
            flow.join()
        b = start_service(config_b, "replica-b2")
        services.append(b)
        send_pairs(producer, topics.predictions, stream_data, range(2 * third, PAIRS))
        poll(lambda: stored(postgres_url, topics.group, topics.predictions) == 2 * PAIRS, 120,
             "every half forwarded and its offset stored", a.proc)
        poll(lambda: counted(postgres_url)[0] >= PAIRS, 120, "every pair joined", a.proc)
        for service in (a, b):
            assert service.stop() == 0  # persists what it holds
    finally:
        producer.close()
        for service in services:
            if service.proc.alive():
                service.stop()

    rows, windows = counted(postgres_url)
    assert rows == PAIRS  # each pair once: none lost, no copy counted
    assert waiting(postgres_url) == 0  # no copy parked, waiting for a partner
    assert windows and all(w["partition"] >= SPLIT_STREAMS for w in windows)
    assert dead_letters(tansu, topics) == []


MINUTE_MS = 60_000
DAY_MS = 86_400_000


def merged(state_url: str) -> list[tuple[str, dict[str, Any]]]:
    """(window key, result) of the stored windows."""
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            t = schema.windows
            rows = conn.execute(select(t.c.window_key, t.c.result).where(
                t.c.model == "carloan")).all()
    finally:
        engine.dispose()
    return [(row.window_key, row.result) for row in rows]


def reported(state_url: str) -> dict[int, int | None]:
    """The source stream partitions' watermarks in carloan's owner checkpoint."""
    with Store(state_url) as store:
        return next(({int(p): w for p, w in c.state.get("reports", {}).items()}
                     for c in store.load_checkpoints()
                     if c.model == "carloan" and c.kind == OWNER_KIND
                     and isinstance(c.state, dict)), {})


def flush_ids() -> list[str]:
    """A call id for each partition of the kserve topic (its producer's partitioner)."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < PARTITIONS:
        found.setdefault(owner_partition(f"flush-{n}", PARTITIONS), f"flush-{n}")
        n += 1
    return [found[q] for q in range(PARTITIONS)]


def test_kserve_pairs_count_once_in_the_windows_their_model_owner_merges(
        tansu: str, stream_data: StreamData, postgres_url: str, tmp_path: Path) -> None:
    topics = new_topics(tansu, "ksplit-owner", partitions=PARTITIONS)
    # a day ago, a call every 250 ms: 5 minute windows; an hour of allowed lateness, so a
    # kserve partition's windows close only when its event time jumps a day on (the
    # halves of one call are forwarded by different replicas: pairs join out of order)
    start_ms = (int(time.time() * 1000) - DAY_MS) // MINUTE_MS * MINUTE_MS
    flush_ms = start_ms + DAY_MS
    step_ms = 250

    def replica_config(name: str) -> Path:
        return write_config(tmp_path / name / "driftloop.yaml", bootstrap=tansu, topics=topics,
                            state_url=postgres_url, baseline=str(stream_data.baseline),
                            model={"window": {"duration": "1m", "allowed_lateness": "1h"}},
                            kafka={"formats": ["native", "kserve"], "kserve_split": True,
                                   "kserve_partitions": PARTITIONS, "partials": True,
                                   "partials_partitions": 2})

    config_a, config_b = replica_config("a"), replica_config("b")
    producer = KafkaProducer(bootstrap_servers=[tansu], acks="all", linger_ms=5)
    services: list[RunningService] = []
    try:
        a = start_service(config_a, "replica-a")
        b = start_service(config_b, "replica-b")
        services += [a, b]
        poll(lambda: halves_apart(postgres_url, topics.group, topics.predictions), 90,
             "both replicas holding predictions partitions, halves apart", b.proc)
        send_pairs(producer, topics.predictions, stream_data, range(PAIRS),
                   start_ms=start_ms, step_ms=step_ms)
        # every pair joined, in the open windows of the kserve partitions' streams
        poll(lambda: counted(postgres_url)[0] == PAIRS, 90, "every pair joined", a.proc)
        # a native event a day on, on each predictions partition: their event time passes
        # every window; the kserve partitions' has not, and holds the merged windows back
        flush = stream_data.current.iloc[:PARTITIONS].copy()
        flush["timestamp"] = pd.Timestamp(flush_ms, unit="ms")
        flush["request_id"] = [f"native-{p}" for p in range(PARTITIONS)]
        for p, (key, value) in enumerate(prediction_events(
                flush, model="carloan", version="1", features=FEATURES,
                prediction="prediction", score="score")):
            producer.send(topics.predictions, key=key, value=value, partition=p)
        producer.flush()
        poll(lambda: all((reported(postgres_url).get(p) or 0) >= flush_ms
                         for p in range(PARTITIONS)), 90,
             "the predictions partitions past every window", a.proc)
        # then a call a day on for each kserve partition, one at a time: each closes that
        # partition's windows, which the owner must not evaluate before the others'
        for q, ce_id in enumerate(flush_ids()):
            send_call(producer, topics.predictions, stream_data.current.iloc[q], ce_id, q,
                      flush_ms)
            producer.flush()
            time.sleep(1.0)
        poll(lambda: sum(int(r["rows"]) for _, r in merged(postgres_url)) >= PAIRS, 120,
             "every merged window stored", a.proc)
        answers = [service.windows("carloan") for service in (a, b)]
        for service in (a, b):
            assert service.stop() == 0
    finally:
        producer.close()
        for service in services:
            if service.proc.alive():
                service.stop()

    windows = merged(postgres_url)
    expected = {(start_ms + i * step_ms) // MINUTE_MS for i in range(PAIRS)}
    # one stream per model: each window once, merged from every source partition
    assert sorted(key for key, _ in windows) == sorted(f"m:{i}" for i in expected)
    assert all(result["partition"] is None for _, result in windows)
    assert sum(int(result["rows"]) for _, result in windows) == PAIRS  # each pair once
    assert answers[0] == answers[1] and len(answers[0]) == len(expected)
    assert waiting(postgres_url) == 0
    assert dead_letters(tansu, topics) == []
