"""Three ``driftloop serve`` replicas merge event-time windows per model (issue 15).

``kafka.partials`` on, a 6-partition predictions topic, two models with event-time
windows whose events spread over every partition. Each model's window stream is
merged by the replica that owns the model's partition of the partials topic, and the
stored windows equal those of one replica on the same stream (same windows and rows,
the same scores up to the order float sums were added in). One replica is killed with
``kill -9`` mid-stream and started again: still equal, every event counted once (the
windows' rows add up to what was produced), no retrain launched twice, and every
replica answers the windows API with the same one stream per model.

Every prediction's label comes on a 6-partition labels topic, on another partition
than its prediction, so most pairs join on a replica that did not read the
prediction; each model's realized performance is kept by its owner alone, and across
the ``kill -9`` every pair is folded into its performance windows exactly once.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
import yaml
from kafka import KafkaProducer
from sqlalchemy import create_engine, func, select

from monitor.cli.examples import FEATURES
from monitor.cli.replay import label_events, prediction_events
from monitor.store import Store, schema
from monitor.stream.partials import owner_partition
from tests.support.service import (
    RunningService,
    StreamData,
    Topics,
    assert_same,
    new_topics,
    poll,
    start_service,
    write_config,
)

pytestmark = pytest.mark.integration

PARTITIONS = 6
MODELS = ("carloan", "fraud")
ROWS = 1800  # per model, a minute of event time apart: 7.5 windows of 4 h
WINDOW_HOURS = 4
PAIRS_PER_WINDOW = 300  # realized performance: 6 windows per model
COMPARED = ("rows", "dataset_drift", "drift_share", "features", "prediction_drift",
            "score_drift", "quality", "start", "end", "model", "version", "partition")


def stream(data: StreamData) -> list[tuple[str, int, bytes, bytes]]:
    """(model, partition, key, value) in event-time order: each model's rows spread over
    every partition, then one event per (model, partition) a day later, which closes
    every window of the data (and opens one that stays open)."""
    frames = {"carloan": data.current.iloc[2000:2000 + ROWS],
              "fraud": data.current.iloc[4200:4200 + ROWS]}
    start = pd.Timestamp(frames["carloan"]["timestamp"].iloc[0])
    out: list[tuple[str, int, bytes, bytes]] = []
    for shift, (model, frame) in enumerate(frames.items()):
        frame = frame.copy()
        # both models on one clock, so both move every partition's event time
        frame["timestamp"] = [start + pd.Timedelta(minutes=i) for i in range(len(frame))]
        flush = frame.iloc[:PARTITIONS].copy()
        flush["timestamp"] = start + pd.Timedelta(minutes=ROWS) + pd.Timedelta(days=1)
        flush["request_id"] = [f"flush-{model}-{p}" for p in range(PARTITIONS)]
        rows = pd.concat([frame, flush], ignore_index=True)
        events = prediction_events(rows, model=model, version="1", features=FEATURES,
                                   prediction="prediction", score="score")
        for i, (key, value) in enumerate(events):
            partition = (i + shift) % PARTITIONS if i < len(frame) else i - len(frame)
            out.append((model, partition, key, value))
    flushes = [e for e in out if e[2].startswith(b"flush-")]
    data_events = [e for e in out if not e[2].startswith(b"flush-")]
    # interleave the models minute by minute (both lists are in time order)
    order = sorted(range(len(data_events)), key=lambda i: (i % ROWS, i // ROWS))
    return [data_events[i] for i in order] + flushes


def labels_of(data: StreamData, events: list[tuple[str, int, bytes, bytes]]
              ) -> list[tuple[str, int, bytes, bytes]]:
    """(model, partition, key, value) of the label of each data event that has one (most
    have), in their order, on a partition other than its prediction's."""
    truth = data.labels.set_index(data.labels["request_id"].astype(str))["repaid"]
    out: list[tuple[str, int, bytes, bytes]] = []
    for model, partition, key, _ in events:
        if key.startswith(b"flush-"):
            continue
        rid = key.decode()
        if rid not in truth.index:
            continue
        frame = pd.DataFrame({"request_id": [rid], "repaid": [truth.loc[rid]]})
        (_, value), = label_events(frame, model=model, label="repaid")
        out.append((model, (partition + 1 + len(out) % 5) % PARTITIONS, key, value))
    return out


def send(producer: KafkaProducer, topic: str, events: list[tuple[str, int, bytes, bytes]]
         ) -> None:
    for _, partition, key, value in events:
        producer.send(topic, key=key, value=value, partition=partition)
    producer.flush()


def configure(tmp_path: Path, name: str, tansu: str, topics: Topics, state_url: str,
              data: StreamData, launches: Path) -> Path:
    launcher = {"type": "command", "argv": [
        sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')",
        str(launches), "{idempotency_key}"]}
    path = write_config(
        tmp_path / name / "driftloop.yaml", bootstrap=tansu, topics=topics,
        state_url=state_url, baseline=str(data.baseline),
        model={"window": {"duration": f"{WINDOW_HOURS}h"},
               "performance": {"window_rows": PAIRS_PER_WINDOW},
               "retrain": {"on": ["dataset_drift"], "consecutive_windows": 1, "cooldown": 0,
                           "launcher": launcher}},
        kafka={"partials": True, "partials_partitions": 4, "commit_interval_seconds": 0.5,
               "snapshot_interval_seconds": 1.0})
    config = yaml.safe_load(path.read_text())
    config["models"]["fraud"] = config["models"]["carloan"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def expected_windows(events: list[tuple[str, int, bytes, bytes]], model: str) -> int:
    """The 4 h windows the model's events fall in (the flush's stays open)."""
    hours = {pd.Timestamp(orjson.loads(value)["timestamp"]).value // 3_600_000_000_000
             // WINDOW_HOURS for m, _, key, value in events
             if m == model and not key.startswith(b"flush-")}
    return len(hours)


def all_windows(service: RunningService) -> dict[str, list[dict[str, Any]]]:
    return {model: service.windows(model) for model in MODELS}


def complete(service: RunningService) -> dict[str, list[dict[str, Any]]] | None:
    found = all_windows(service)
    if all(sum(w["rows"] for w in found[m]) == ROWS for m in MODELS):
        return found
    return None


def folded_pairs(state_url: str) -> dict[str, int]:
    """Per model, the pairs in its stored performance windows: closed and open ones."""
    with Store(state_url) as store:
        return {c.model: sum(w["index"] * PAIRS_PER_WINDOW + len(w["labels"])
                             for w in c.state["windows"].values())
                for c in store.load_checkpoints() if c.kind == "performance"}


def in_transit(state_url: str) -> dict[str, int]:
    """Rows of the label join and of pairs not folded yet, per table."""
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                    for t in (schema.pending_predictions, schema.pending_labels,
                              schema.shipped_pairs)}
    finally:
        engine.dispose()


def stored_offsets(state_url: str, topics: Topics) -> int:
    with Store(state_url) as store:
        return sum(o for (t, _), o in store.offsets(topics.group).items()
                   if t == topics.predictions)


def partials_topic(topics: Topics) -> str:
    return f"{topics.group}-partials"


def owners(state_url: str, topics: Topics) -> dict[tuple[str, int], str]:
    """(topic, partition) -> the member that last took it, from the fencing table."""
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            t = schema.partition_owners
            rows = conn.execute(select(t.c.topic, t.c.partition, t.c.owner)
                                .where(t.c.group_id == topics.group)).all()
    finally:
        engine.dispose()
    return {(row.topic, int(row.partition)): row.owner for row in rows}


def run_one(tmp_path: Path, tansu: str, data: StreamData, state_url: str,
            events: list[tuple[str, int, bytes, bytes]]) -> dict[str, list[dict[str, Any]]]:
    topics = new_topics(tansu, "owners-one", partitions=PARTITIONS)
    config = configure(tmp_path, "one", tansu, topics, state_url, data,
                       tmp_path / "launches-one.txt")
    producer = KafkaProducer(bootstrap_servers=[tansu], acks="all", linger_ms=5)
    service = start_service(config, "single")
    try:
        send(producer, topics.predictions, events)
        return poll(lambda: complete(service), 90, "every window of one replica",
                    service.proc, interval=0.5)
    finally:
        producer.close()
        service.stop()


def test_three_replicas_merge_one_window_stream_per_model_across_kill_9(
        tansu: str, stream_data: StreamData, postgres_url: str, tmp_path: Path) -> None:
    events = stream(stream_data)
    labels = labels_of(stream_data, events)
    # its own store: the replicas' windows and retrain decisions must not meet its own
    want = run_one(tmp_path, tansu, stream_data, f"sqlite:///{tmp_path / 'one.db'}", events)
    assert {m: len(w) for m, w in want.items()} == {m: expected_windows(events, m)
                                                    for m in MODELS}

    topics = new_topics(tansu, "owners", partitions=PARTITIONS)
    launches = tmp_path / "launches.txt"
    configs = [configure(tmp_path, f"r{i}", tansu, topics, postgres_url, stream_data,
                         launches) for i in range(3)]
    producer = KafkaProducer(bootstrap_servers=[tansu], acks="all", linger_ms=5)
    services: list[RunningService] = []
    try:
        services = [start_service(c, f"replica-{i}") for i, c in enumerate(configs)]
        # all three settled in the group before one dies (see test_service_replicas)
        poll(lambda: len(set(owners(postgres_url, topics).values())) == 3, 90,
             "three replicas holding partitions", services[0].proc)
        half = len(events) // 2
        send(producer, topics.predictions, events[:half])
        send(producer, topics.labels, labels[:len(labels) // 2])
        # mid-stream: some windows merged and stored, the rest of the half pending
        poll(lambda: len(services[0].windows("carloan")) >= 2, 90,
             "the first windows of carloan", services[0].proc, interval=0.05)
        # kill -9 the owner of carloan, mid-stream: its partitions and its merging move
        carloan = owners(postgres_url, topics)[(partials_topic(topics),
                                                owner_partition("carloan", 4))]
        victim = next(i for i, s in enumerate(services)
                      if carloan.endswith(f":{s.proc.pid}"))
        services[victim].kill()
        send(producer, topics.predictions, events[half:])
        send(producer, topics.labels, labels[len(labels) // 2:])
        services[victim] = start_service(configs[victim], f"replica-{victim}-again")
        got = poll(lambda: complete(services[0]), 120, "every window of three replicas",
                   services[0].proc, interval=0.5)
        answers = [all_windows(s) for s in services]
        poll(lambda: stored_offsets(postgres_url, topics) == len(events), 30,
             "every event's offset stored", services[0].proc)
        # every label joined and folded by its model's owner
        want_pairs = Counter(model for model, *_ in labels)
        folded = poll(lambda: (lambda f: f if all(f.get(m, 0) >= want_pairs[m] for m in MODELS)
                               else None)(folded_pairs(postgres_url)), 60,
                      "every pair in the owners' performance windows", services[0].proc)
        # drift was found and a retrain launched: one the killed replica decided but had
        # not launched yet is launched by another once its lease (60 s) has passed
        poll(lambda: launches.exists() and launches.read_text().split(), 120,
             "a retrain launched", services[0].proc)
    finally:
        producer.close()
        for service in services:
            if service.proc.alive():
                service.stop()

    # one stream per model, whichever replica is asked
    assert answers[0] == answers[1] == answers[2] == got
    for model in MODELS:
        # every window once, every event once
        assert Counter(w["window"] for w in got[model]) == Counter(
            w["window"] for w in want[model])
        assert sum(w["rows"] for w in got[model]) == ROWS
        for g, w in zip(got[model], want[model], strict=True):
            for key in COMPARED:
                # floats up to the order their merged sums were added in
                assert_same(g[key], w[key], f"{model} window {w['window']} {key}",
                            rel=1e-9, abs_=1e-12)
    # each pair once: one performance window series per model, written by its owner
    assert folded == dict(want_pairs) and min(want_pairs.values()) > ROWS // 2
    # only the predictions without a label wait; nothing is left in transit
    assert in_transit(postgres_url) == {"pending_predictions": len(events) - len(labels),
                                        "pending_labels": 0, "shipped_pairs": 0}
    # drift was found, and no retrain launched twice
    keys = launches.read_text().split()
    assert keys and len(keys) == len(set(keys))
