"""Two services and one model owner over an in-memory log (issue 15, ``kafka.partials``).

``monitor.stream.Service`` with partials on, without a broker: replica A holds
predictions partition 0, replica B partition 1 and the partials topic, so B owns the
model. The merged windows B stores equal one stream's over the same events; every
partial reaches the log before the persist that commits the offsets past its events
(publish-then-commit); and when B dies without persisting, a new B restored from the
store reads the pending partials again and stores each window once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from monitor.baseline import Baseline
from monitor.cli.examples import sample_features
from monitor.config import Config
from monitor.ingest import Decoder
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.stream import ArmAccumulator, ArmSpec, ModelPipeline, Service
from monitor.stream.arms import unpack_arms
from monitor.stream.kserve_split import SPLIT_STREAMS
from monitor.stream.partials import Partial
from monitor.stream.scaleout import ScaleOut
from tests.monitor.canary_fakes import traffic
from tests.support.memory_kafka import LogConsumer

PREDICTIONS, PARTIALS = "predictions", "g-partials"
BROKER_MS = 1_546_300_800_000  # 2019-01-01
START_MS = BROKER_MS - 86_400_000
MINUTE = 60_000
POOL = sample_features(np.random.default_rng(5), 400, 0).to_dict("records")


class Log:
    """Topics in memory; ``flushed`` counts what producers flushed, record by record."""

    def __init__(self) -> None:
        self.topics: dict[tuple[str, int], list[ConsumerRecord]] = {}
        self.flushed = 0

    def append(self, topic: str, partition: int, value: bytes) -> None:
        records = self.topics.setdefault((topic, partition), [])
        records.append(ConsumerRecord(topic, partition, 0, len(records), BROKER_MS, 0, None,
                                      value, [], None, -1, -1, -1))

    @property
    def size(self) -> int:
        return sum(len(r) for r in self.topics.values())


class Producer:
    def __init__(self, log: Log) -> None:
        self.log = log

    def send(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self.log.append(topic, partition, value)

    def flush(self) -> None:
        self.log.flushed = self.log.size


class Consumer(LogConsumer):
    """With the partition counts the scale-out asks metadata for."""

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1} if topic == PREDICTIONS else {0}


class Letters:
    def flush(self, timeout_seconds: float | None = 30.0) -> int:
        return 0


def config(tmp_path: Path, baseline: Path) -> Config:
    return Config.model_validate({
        "kafka": {"group_id": "g", "predictions_topic": PREDICTIONS, "partials": True,
                  "partials_partitions": 1, "label_alignment_seconds": 0},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "models": {"carloan": {"baseline": str(baseline), "window": {"duration": "1m"}}}})


def replica(cfg: Config, log: Log, assigned: set[tuple[str, int]],
            on_persist: Callable[[], None] = lambda: None) -> tuple[Service, Consumer]:
    pipelines = {"carloan": ModelPipeline("carloan", cfg.models["carloan"],
                                          Baseline.load(cfg.models["carloan"].baseline))}
    decoder = Decoder(["native"], max_record_bytes=100_000, feature_order=lambda m: None,
                      endpoint_version=lambda m, e: None, known_models=lambda m: True)
    store = Store(cfg.state.url)
    consumer = Consumer(log.topics, assigned)
    service = Service(cfg, pipelines, store, Metrics(CollectorRegistry()), decoder, consumer,
                      Letters())  # type: ignore[arg-type]
    assert service.scaleout is not None
    service.scaleout.connected(consumer, Producer(log))
    write = service.persister.write

    def checked_write(*args: Any, **kwargs: Any) -> Any:
        on_persist()
        return write(*args, **kwargs)

    service.persister.write = checked_write  # type: ignore[method-assign]
    for (topic, partition), offset in service.restore(assigned).items():
        consumer.seek(TopicPartition(topic, partition), offset)
    return service, consumer


def event(i: int) -> bytes:
    return json.dumps({"model": "carloan", "version": "1", "request_id": f"r{i}",
                       "timestamp": START_MS + i * MINUTE // 50,
                       "features": {k: (None if isinstance(v, float) and v != v else
                                        v.item() if isinstance(v, np.generic) else v)
                                    for k, v in POOL[i % len(POOL)].items()},
                       "prediction": i % 2, "score": (i % 97) / 97}).encode()


def windows(store_url: str) -> list[tuple[int, int, int | None]]:
    """(window, rows, partition) of the stored results."""
    with Store(store_url) as store:
        return sorted((int(w["window"]), int(w["rows"]), w["partition"])
                      for w in store.windows("carloan", limit=1000))


FIRST = START_MS // MINUTE
MERGED = [(i, 50, None) for i in range(FIRST, FIRST + 8)]  # 8 windows of 50 events


def partial_at(record: ConsumerRecord) -> Partial:
    return Partial.decode(record.value)


@pytest.fixture
def cfg(tmp_path: Path, example_baseline: Path) -> Config:
    return config(tmp_path, example_baseline)


def test_the_owner_merges_both_partitions_and_partials_precede_their_commit(
        cfg: Config, tmp_path: Path) -> None:
    log = Log()

    def published_first() -> None:  # every partial sent so far is flushed before a persist
        assert log.flushed == log.size

    a, _ = replica(cfg, log, {(PREDICTIONS, 0)}, published_first)
    b, _ = replica(cfg, log, {(PREDICTIONS, 1), (PARTIALS, 0)}, published_first)
    for i in range(400):  # 8 windows of 50 events, spread over both partitions
        log.append(PREDICTIONS, i % 2, event(i))
    log.append(PREDICTIONS, 0, event(10_000))  # moves both partitions past the data
    log.append(PREDICTIONS, 1, event(10_001))
    for _ in range(4):
        a.step(force_persist=True)
        b.step(force_persist=True)
    # one stream, merged by the owner: A evaluated nothing itself
    assert windows(cfg.state.url) == MERGED


def test_a_new_owner_reads_the_pending_partials_again_and_stores_each_window_once(
        cfg: Config, tmp_path: Path) -> None:
    log = Log()
    a, _ = replica(cfg, log, {(PREDICTIONS, 0)})
    b, _ = replica(cfg, log, {(PREDICTIONS, 1), (PARTIALS, 0)})
    for i in range(200):
        log.append(PREDICTIONS, i % 2, event(i))
    a.step(force_persist=True)
    b.step(force_persist=True)
    b.step(force_persist=True)
    first = windows(cfg.state.url)
    assert first and len(first) < 4  # windows 0..2 closed, the 4th is open
    for i in range(200, 400):
        log.append(PREDICTIONS, i % 2, event(i))
    a.step(force_persist=True)  # A's partials of windows 3..6 are on the log
    # B reads them, cannot close the windows yet (its own partition's new watermark is not
    # on the log before this step's end), persists, and dies
    b.step(force_persist=True)
    del b
    with Store(cfg.state.url) as store:  # the offset committed is held back before them
        committed = store.offsets("g")[(PARTIALS, 0)]
    sources = [p.partition for p in map(partial_at, log.topics[(PARTIALS, 0)])]
    assert committed < len(sources) and 0 in sources[committed:]  # A's are read again
    again, _ = replica(cfg, log, {(PREDICTIONS, 1), (PARTIALS, 0)})
    log.append(PREDICTIONS, 0, event(10_000))
    log.append(PREDICTIONS, 1, event(10_001))
    for _ in range(4):
        a.step(force_persist=True)
        again.step(force_persist=True)
    assert windows(cfg.state.url) == MERGED


class Topics:
    """partitions_for_topic of a consumer that knows ``counts`` (topic -> partitions)."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.counts[topic])) if topic in self.counts else None


def split_scaleout(cfg: Config, log: Log) -> ScaleOut:
    kafka = cfg.kafka.model_copy(update={"kserve_split": True, "formats": ["kserve"]})
    pipelines = {"carloan": ModelPipeline("carloan", cfg.models["carloan"],
                                          Baseline.load(cfg.models["carloan"].baseline))}
    scaleout = ScaleOut(kafka, pipelines, lambda model, n: None, clock=lambda: 0.0)
    scaleout.connected(Topics({PARTIALS: 1}), Producer(log))
    return scaleout


def test_kserve_partitions_are_held_reported_and_forgotten_as_source_streams(
        cfg: Config) -> None:
    """With kafka.kserve_split, kserve partition q is the source stream SPLIT_STREAMS + q:
    held from when it is taken, reported to the owner under the kserve topic's name, and
    forgotten with the partition."""
    log = Log()
    scaleout = split_scaleout(cfg, log)
    owned = scaleout.take({(PREDICTIONS, 1), ("g-kserve", 0), ("g-kserve", 2), (PARTIALS, 0),
                           ("labels", 0)}, now_ms=0)
    assert owned == {0}
    assert scaleout.held == {1: 0, SPLIT_STREAMS: 0, SPLIT_STREAMS + 2: 0}
    # nothing on them for the idle timeout (duration + lateness = 60 s): each reports idle
    assert scaleout.heartbeats(60_000) == 3
    reports = [partial_at(r) for r in log.topics[(PARTIALS, 0)]]
    assert sorted((p.topic, p.partition, p.idle) for p in reports) == [
        ("g-kserve", SPLIT_STREAMS, True), ("g-kserve", SPLIT_STREAMS + 2, True),
        (PREDICTIONS, 1, True)]
    scaleout.forget({("g-kserve", 2), ("labels", 0)})
    assert scaleout.held == {1: 0, SPLIT_STREAMS: 0}
    # held again: reported afresh (what was sent for it was forgotten with it)
    scaleout.take({("g-kserve", 2)}, now_ms=70_000)
    assert scaleout.heartbeats(130_000) == 1
    assert partial_at(log.topics[(PARTIALS, 0)][-1]).partition == SPLIT_STREAMS + 2


def test_the_sources_are_the_partitions_of_both_topics_once_both_are_known(
        cfg: Config) -> None:
    scaleout = split_scaleout(cfg, Log())
    assert scaleout.sources(Topics({PREDICTIONS: 3})) == ()  # the kserve topic's not known
    assert scaleout.sources(Topics({PREDICTIONS: 3, "g-kserve": 2})) == [
        0, 1, 2, SPLIT_STREAMS, SPLIT_STREAMS + 1]
    alone = ScaleOut(cfg.kafka, {}, lambda model, n: None, clock=lambda: 0.0)
    assert alone.sources(Topics({PREDICTIONS: 3, "g-kserve": 2})) == range(3)


# -- realized performance kept by the model's owner (monitor.stream.shipping) ----------------

LABELS = "labels"
PAIRS_PER_WINDOW = 50


def labelled_config(tmp_path: Path, baseline: Path) -> Config:
    return Config.model_validate({
        "kafka": {"group_id": "g", "predictions_topic": PREDICTIONS, "labels_topic": LABELS,
                  "partials": True, "partials_partitions": 1, "label_alignment_seconds": 0},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "models": {"carloan": {"baseline": str(baseline), "window": {"duration": "1m"},
                               "performance": {"window_rows": PAIRS_PER_WINDOW}}}})


def label(i: int) -> bytes:
    return json.dumps({"model": "carloan", "request_id": f"r{i}", "label": (i // 3) % 2,
                       "timestamp": START_MS + i * MINUTE // 50 + 1}).encode()


def folded(service: Service) -> int:
    """Pairs in the replica's performance windows: closed ones and the open one."""
    windows_ = service.pipelines["carloan"].realized.windows
    return sum(w.index * PAIRS_PER_WINDOW + len(w) for w in windows_.values())


def stored_performance(store_url: str) -> dict[str, Any]:
    with Store(store_url) as store:
        found = [c.state for c in store.load_checkpoints()
                 if c.model == "carloan" and c.kind == "performance"]
    assert len(found) == 1 and isinstance(found[0], dict)
    return found[0]


def test_the_owner_keeps_the_performance_windows_of_pairs_joined_on_any_replica(
        tmp_path: Path, example_baseline: Path) -> None:
    """A holds predictions partition 0 and the labels, B partition 1 and the partials
    topic: A joins every pair (half of them with predictions B stored to wait), and only
    B, the owner, folds them, into one series of performance windows. B dies without
    persisting, and a new owner restored from the store folds the rest: every pair once."""
    cfg = labelled_config(tmp_path, example_baseline)
    assert cfg.models["carloan"].window.duration is not None
    log = Log()
    a, _ = replica(cfg, log, {(PREDICTIONS, 0), (LABELS, 0)})
    b, _ = replica(cfg, log, {(PREDICTIONS, 1), (PARTIALS, 0)})
    assert a.pipelines["carloan"].joins_labels
    for i in range(200):
        log.append(PREDICTIONS, i % 2, event(i))
    b.step(force_persist=True)  # B's predictions wait in the store
    for i in range(200):
        log.append(LABELS, 0, label(i))
    a.step(force_persist=True)  # A joins all 200, ships them
    assert folded(a) == 0  # A is not the owner: it keeps no performance windows
    b.step(force_persist=True)  # B takes them
    assert folded(b) == 200
    assert stored_performance(cfg.state.url)["windows"]["1"]["index"] == 4
    for i in range(200, 400):
        log.append(PREDICTIONS, i % 2, event(i))
        log.append(LABELS, 0, label(i))
    b.step(force_persist=True)
    a.step(force_persist=True)  # shipped again; B dies before its next persist
    del b
    again, _ = replica(cfg, log, {(PREDICTIONS, 1), (PARTIALS, 0)})
    assert folded(again) == 200  # restored from the store with the model
    for _ in range(3):
        a.step(force_persist=True)
        again.step(force_persist=True)
    assert folded(again) == 400 and folded(a) == 0
    state = stored_performance(cfg.state.url)
    assert state["windows"]["1"]["index"] == 8 and not state["windows"]["1"]["labels"]
    with Store(cfg.state.url) as store:  # every pair joined, nothing waits, nothing in transit
        assert not store.waiting_labels("carloan")
        assert store.take_predictions("carloan", [f"r{i}" for i in range(400)], None) == {}
        assert store.take_shipped(["carloan"]) == []


# -- canary arms shipped to the model's owner ----------------------------------------------------
def test_canary_arms_of_a_model_owned_elsewhere_are_shipped_and_the_owners_kept(
        cfg: Config) -> None:
    now = [100.0]
    pipelines = {"carloan": ModelPipeline("carloan", cfg.models["carloan"],
                                          Baseline.load(cfg.models["carloan"].baseline))}
    scaleout = ScaleOut(cfg.kafka, pipelines, lambda model, n: None, clock=lambda: now[0])
    scaleout.connected(Topics({PARTIALS: 1}), Producer(Log()))
    arms = ArmAccumulator({"carloan": ArmSpec("accuracy", False, categories=("0", "1"))})
    with Store(cfg.state.url) as store:
        traffic(arms, "carloan", "1", 10, 0.9)
        assert not scaleout.owns("carloan")  # its partials partition is held elsewhere
        assert scaleout.ship_arms(arms, store) == 1
        assert arms.peek("carloan") == {}
        assert [unpack_arms(p)["1"].n_events for p in store.peek_arms("carloan")] == [10]
        traffic(arms, "carloan", "1", 5, 0.9, seed=1)
        now[0] += 0.5
        assert scaleout.ship_arms(arms, store) == 0  # at most every ARMS_SHIP_SECONDS
        scaleout.take({(PARTIALS, 0)}, 0)  # the model moves here
        now[0] += 5
        assert scaleout.owns("carloan")
        assert scaleout.ship_arms(arms, store) == 0
        assert arms.peek("carloan")["1"].n_events == 5  # kept for this replica's canary job
        scaleout.forget({(PARTIALS, 0)})
        assert not scaleout.owns("carloan")
