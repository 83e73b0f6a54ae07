"""Snapshots on a cadence, the rest replayed from Kafka (issue 13, item 3).

A Service over a fake one-partition log and a SQLite store, stepped on a fake clock
with a persist at every step: with ``kafka.snapshot_interval_seconds`` larger than the
gaps between snapshots, a crash (the Service dropped without a last persist) and a
restart on the same store give the same window results and the same open windows as
the run without a crash, for count and event-time windows; versions that appear after
the last snapshot, streams that retired, windows closed by the clock and marks
written before snapshots existed all come back as they were.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from monitor.baseline import Baseline
from monitor.config import Config
from monitor.ingest import Decoder
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.stream import ModelPipeline, Service
from monitor.stream.partitions import ALL_MODELS, PartitionMark
from tests.monitor.test_codecs_bulk import BROKER_MS, good
from tests.monitor.test_persist import Clock

TOPIC = "predictions"
TP = (TOPIC, 0)
BATCH = 20  # records per poll


class Log:
    """A consumer over one partition's records, ``BATCH`` records per poll."""

    def __init__(self, records: list[Any]) -> None:
        self.records = records
        self.position = 0

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]:
        chunk = self.records[self.position:self.position + BATCH]
        self.position += len(chunk)
        return {TopicPartition(TOPIC, 0): chunk} if chunk else {}

    @property
    def done(self) -> bool:
        return self.position >= len(self.records)


class Letters:
    def write(self, record: Any, error: Any) -> None:
        raise AssertionError(f"no dead letter expected, got {error} at {record.offset}")

    def flush(self, timeout_seconds: float | None = 30.0) -> int:
        return 0


def record(offset: int, event: dict[str, Any]) -> Any:
    return ConsumerRecord(TOPIC, 0, 0, offset, BROKER_MS, 0, None, json.dumps(event).encode(),
                          [], None, -1, -1, -1)


def log_of(events: list[dict[str, Any]]) -> list[Any]:
    return [record(offset, event) for offset, event in enumerate(events)]


class Run:
    """One process: a Service on the store at ``path``, restored as at start-up."""

    def __init__(self, path: Path, baseline: Path, window: dict[str, Any], log: Log,
                 clock: Clock, interval: float, **model: Any) -> None:
        self.config = Config.model_validate({
            # one topic, no labels: nothing to align with the predictions
            "kafka": {"commit_interval_seconds": 0, "snapshot_interval_seconds": interval,
                      "label_alignment_seconds": 0},
            "models": {"carloan": {"baseline": str(baseline), "window": window, **model}}})
        self.pipeline = ModelPipeline("carloan", self.config.models["carloan"],
                                      Baseline.load(baseline))
        decoder = Decoder(["native"], max_record_bytes=100_000, feature_order=lambda m: None,
                          endpoint_version=lambda m, e: None, known_models=lambda m: True)
        self.store = Store(f"sqlite:///{path}", clock=clock)
        self.service = Service(self.config, {"carloan": self.pipeline}, self.store,
                               Metrics(CollectorRegistry()), decoder, log,  # type: ignore[arg-type]
                               Letters(), clock=clock)
        self.log, self.clock = log, clock
        self.log.position = self.service.restore([TP]).get(TP, 0)
        self.bytes: list[int] = []

    def step(self) -> None:
        self.clock.now += 1.0
        stats = self.service.step()
        if stats.persisted is not None:
            self.bytes.append(stats.persisted.checkpoint_bytes)


def outcome(run: Run) -> tuple[list[Any], dict[Any, Any]]:
    """The stored window results (in the order first stored) and the open windows."""
    results = list(reversed(run.store.windows("carloan", limit=10_000)))
    streams = {key: stream.checkpoint() for key, stream in sorted(run.pipeline.streams.items())}
    return results, streams


def play(tmp: Path, baseline: Path, window: dict[str, Any], events: list[dict[str, Any]],
         interval: float, crashes: tuple[int, ...] = (),
         between: Callable[[Run], None] | None = None, **model: Any) -> tuple[Run, list[int]]:
    """Step through the log; after the steps in ``crashes`` the process dies (no persist)
    and a new one restores from the store. Returns the last process and the replayed
    record counts of the restarts."""
    log, clock = Log(log_of(events)), Clock()
    clock.now = 1_000_000.0
    tmp.mkdir(parents=True, exist_ok=True)
    run = Run(tmp / "state.db", baseline, window, log, clock, interval, **model)
    replayed: list[int] = []
    steps = 0
    while not log.done:
        run.step()
        steps += 1
        if between is not None:
            between(run)
        if steps in crashes:
            handled = log.position
            run = Run(tmp / "state.db", baseline, window, log, clock, interval, **model)
            replayed.append(handled - log.position)
    return run, replayed


def timed_events(n: int, version: Callable[[int], str] = lambda i: "1") -> list[dict[str, Any]]:
    return [good(i, BROKER_MS + i * 1000, version(i)) for i in range(n)]


COUNT = {"rows": 50, "buffer_rows": 7}
TIMED = {"duration": 60, "allowed_lateness": 20, "buffer_rows": 7}


@pytest.mark.parametrize("window", [COUNT, TIMED], ids=["count", "event-time"])
@pytest.mark.parametrize("interval", [7.0, 1e6], ids=["snapshot-between", "never-snapshot"])
def test_a_restart_between_snapshots_gives_the_results_of_the_run_without_it(
        tmp_path: Path, example_baseline: Path, window: dict[str, Any], interval: float) -> None:
    events = timed_events(400)
    whole, _ = play(tmp_path / "whole", example_baseline, window, events, interval)
    crashed, replayed = play(tmp_path / "crashed", example_baseline, window, events, interval,
                             crashes=(4, 11, 17))
    assert all(n > 0 for n in replayed)  # the restarts did read records again
    assert outcome(crashed) == outcome(whole)


def test_persists_between_snapshots_write_no_stream_state(
        tmp_path: Path, example_baseline: Path) -> None:
    run, _ = play(tmp_path, example_baseline, COUNT, timed_events(400), 1e6)
    every, _ = play(tmp_path / "every", example_baseline, COUNT, timed_events(400), 0.0)
    assert max(run.bytes) * 10 < sorted(every.bytes)[len(every.bytes) // 2]


def test_a_version_that_first_appears_after_the_last_snapshot_survives_a_restart(
        tmp_path: Path, example_baseline: Path) -> None:
    events = timed_events(400, version=lambda i: "1" if i < 150 else "2")
    whole, _ = play(tmp_path / "whole", example_baseline, COUNT, events, 5.0)
    crashed, _ = play(tmp_path / "crashed", example_baseline, COUNT, events, 5.0,
                      crashes=(11, 14, 19))
    assert ("2", 0) in crashed.pipeline.streams
    assert outcome(crashed) == outcome(whole)


def test_a_retired_stream_is_not_rebuilt_by_the_replay(
        tmp_path: Path, example_baseline: Path) -> None:
    # version 1 (every other record) stops at record 100 (step 5); with retire_after 3 s it
    # retires a few steps later, while version 2 goes on; the crash comes before any
    # snapshot of version 2, so the restart reads version 1's records again
    events = timed_events(400, version=lambda i: "1" if i < 100 and i % 2 == 0 else "2")
    whole, _ = play(tmp_path / "whole", example_baseline, {**COUNT, "retire_after": 3}, events,
                    1e6)
    assert ("1", 0) not in whole.pipeline.streams
    crashed, replayed = play(tmp_path / "crashed", example_baseline,
                             {**COUNT, "retire_after": 3}, events, 1e6, crashes=(12,))
    assert replayed[0] > 200 and ("1", 0) not in crashed.pipeline.streams
    assert outcome(crashed) == outcome(whole)


def test_windows_closed_by_the_clock_are_written_at_once_and_not_closed_again(
        tmp_path: Path, example_baseline: Path) -> None:
    # 40 events of one event-time window, then a pause in processing time longer than the
    # idle timeout: the window closes by the clock, which a replay could not repeat; the
    # 20 events after it are late. The crash comes after them.
    events = timed_events(60)
    window = {**TIMED, "idle_timeout": 100}

    def pausing() -> Callable[[Run], None]:
        paused: list[bool] = []

        def pause(run: Run) -> None:
            if run.log.position == 40 and not paused:
                paused.append(True)
                run.clock.now += 200.0
                with run.service.lock:
                    run.service.housekeep()
                run.service.persist()

        return pause

    whole, _ = play(tmp_path / "whole", example_baseline, window, events, 1e6,
                    between=pausing())
    crashed, replayed = play(tmp_path / "crashed", example_baseline, window, events, 1e6,
                             crashes=(3,), between=pausing())
    assert replayed == [20]  # from the snapshot the clock's close forced
    results, _ = outcome(whole)
    assert [r["rows"] for r in results] == [40]  # the window the clock closed
    assert outcome(crashed) == outcome(whole)


def test_a_mark_written_before_snapshots_still_restores(
        tmp_path: Path, example_baseline: Path) -> None:
    events = timed_events(400)
    whole, _ = play(tmp_path / "whole", example_baseline, COUNT, events, 0.0)

    def old_marks(run: Run) -> None:  # as the code before snapshots wrote them
        if run.log.position == 200:
            run.service.persist(force=True)
            mark = run.service.persister.stored_marks[TP]
            old: dict[str, Any] = {"processed": mark.processed, "topic_id": None, "pending": []}
            with run.store.transaction() as tx:
                tx.save_checkpoint(ALL_MODELS, TOPIC, PartitionMark.kind(0), old, {})

    crashed, replayed = play(tmp_path / "crashed", example_baseline, COUNT, events, 0.0,
                             crashes=(10,), between=old_marks)
    assert replayed == [0]
    assert outcome(crashed) == outcome(whole)


def test_a_mark_round_trips_and_an_old_one_replays_nothing() -> None:
    mark = PartitionMark(120, "id", ("ce",), 40, (("carloan", "2", 90),))
    assert PartitionMark.from_dict(json.loads(json.dumps(mark.to_dict()))) == mark
    old = PartitionMark.from_dict({"processed": 120, "topic_id": None, "pending": []})
    assert (old.replay_start, old.fresh) == (120, ())


def test_partitions_lost_with_the_membership_are_written_while_this_member_owns_them(
        tmp_path: Path, example_baseline: Path) -> None:
    # a broker that restarts empty (Tansu's memory engine) re-creates the topics: the
    # records since the last snapshot cannot be read again, so a lost partition that no
    # other member took yet keeps its state by being written before it is dropped
    events = timed_events(400)
    whole, _ = play(tmp_path / "whole", example_baseline, COUNT, events, 1e6)

    def lose_and_take_back(run: Run) -> None:
        if run.log.position == 200:
            run.service.lose([TP])
            assert run.service.restore([TP]) == {TP: 200}  # nothing to read again

    lost, _ = play(tmp_path / "lost", example_baseline, COUNT, events, 1e6,
                   between=lose_and_take_back)
    assert outcome(lost) == outcome(whole)


def test_a_lost_partition_another_member_took_is_not_written(
        tmp_path: Path, example_baseline: Path) -> None:
    def taken_then_lost(run: Run) -> None:
        if run.log.position == 200:
            run.store.take_partitions(run.service.group, {TP}, "another-member")
            run.service.lose([TP])
            assert TP not in run.service.partitions.owned

    run, _ = play(tmp_path, example_baseline, COUNT, timed_events(220), 1e6,
                  between=taken_then_lost)
    # never snapshotted (the interval is longer than the run), and not written when lost
    assert not [c for c in run.store.load_checkpoints() if c.model == "carloan"
                and c.kind == "p0"]


class _Cluster:
    def __init__(self) -> None:
        self.id = uuid.uuid4()

    def topic_id(self, topic: str) -> uuid.UUID:
        return self.id


class RecreatedLog(Log):
    """A broker that comes back without its data while this member keeps the partition:
    the topic is created again (a new topic id) and the consumer's position is the old one."""

    def __init__(self, records: list[Any]) -> None:
        super().__init__(records)
        self._client = SimpleNamespace(cluster=_Cluster())

    def recreate(self, records: list[Any]) -> None:
        self.records = records
        self._client.cluster = _Cluster()

    def seek(self, tp: Any, offset: int) -> None:
        self.position = offset


def test_a_topic_recreated_under_a_held_partition_is_read_from_its_start_once(
        tmp_path: Path, example_baseline: Path) -> None:
    old, new = timed_events(60), timed_events(90)
    log, clock = RecreatedLog(log_of(old)), Clock()
    clock.now = 1_000_000.0
    run = Run(tmp_path / "state.db", example_baseline, COUNT, log, clock, 0.0)
    counted = 0
    for _ in range(2):  # 40 records of the old topic
        clock.now += 1.0
        stats = run.service.step()
        assert stats.persisted is not None
        counted += sum(stats.persisted.events.values())
    assert counted == 40
    log.recreate(log_of(new))  # the next poll would return the new topic's 40..59
    while not log.done:
        clock.now += 1.0
        persisted = run.service.step().persisted
        counted += 0 if persisted is None else sum(persisted.events.values())
    assert counted == 40 + len(new)  # every record of the new topic once, from its start
    assert run.store.offsets(run.config.kafka.group_id)[TP] == len(new)
