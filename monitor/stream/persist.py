"""Step 5 of the loop: what the consumer has done since the last persist, in one transaction;
and reading it back at start-up.

Between persists the loop collects closed-window results, predictions waiting
for their label and labels waiting for their prediction (:class:`Persister`).
:meth:`Persister.write` stores, in ONE transaction: the closed windows' results
(upserts keyed by their identity, so a replay overwrites), the label-join rows and
the joins they complete, the realized-performance windows those joins close (with
``kafka.partials``, an event-time model's pairs are shipped to its owner instead, and an
owner folds the pairs shipped for its models: :mod:`monitor.stream.shipping`), the
checkpoint of each stream whose open windows changed and whose snapshot is due, the
per-partition processed marks that moved and the commit offsets (what did not change is
not written again; ``Persisted.checkpoint_bytes`` reports the checkpoint bytes written).
Either all of it is stored or none of it is, which is the exactly-once effect of design
section 9.

Snapshots: a changed stream's state is written at most every ``snapshot_interval``
(``kafka.snapshot_interval_seconds``), at once when the persist is forced or when it
changed by what a replay of its partition cannot repeat (``Stream.must_snapshot``). Its
checkpoint says the partition offset it covers; the processed mark says from where a
restart reads the partition again (``replay_from``) and which streams it rebuilds from
nothing (``fresh``), so the state of a stream not written is the fold of its stored
checkpoint and the records since (see docs/internals.md, "How a restart gets it back").

When: closed windows are written at once, but not more than every
``WINDOW_PERSIST_SECONDS`` (under load windows close many times a second, and each
write also checkpoints the open windows); everything else every
``kafka.commit_interval_seconds``, or when ``MAX_BUFFERED_ROWS`` join rows wait.
The latest prediction time persisted is the label-join clock (``event_time_ms``):
the TTL runs in event time, so a replay of old data joins as it did live
(expiry itself is a scheduled job, :meth:`monitor.stream.Service.expire_labels`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.ingest import Prediction
from monitor.ingest.batch import LabelBatch, PredictionBatch
from monitor.metrics import Metrics
from monitor.store import Store, Transaction
from monitor.stream.kserve_split import stream_partition, stream_source
from monitor.stream.label_join import JoinBuffer, JoinedPairs
from monitor.stream.owner import OWNER_KIND, ModelOwner
from monitor.stream.partitions import (
    ALL_MODELS,
    PartitionMark,
    Partitions,
    Replay,
    TopicPartitionKey,
)
from monitor.stream.performance import PERFORMANCE_KIND
from monitor.stream.pipeline import ModelPipeline, WindowOutput
from monitor.stream.shipping import joined as joined_pairs
from monitor.stream.shipping import pack_pairs, unpack_pairs
from monitor.stream.windows import Stream

log = logging.getLogger("driftloop.service")

__all__ = [
    "ALL_VERSIONS",
    "MAX_BUFFERED_ROWS",
    "PERFORMANCE_KIND",
    "WINDOW_PERSIST_SECONDS",
    "PerformanceOutput",
    "Persisted",
    "Persister",
]

WINDOW_PERSIST_SECONDS = 0.5
MAX_BUFFERED_ROWS = 50_000
ALL_VERSIONS = "*"

PerformanceOutput = tuple[str, str, dict[str, Any]]  # model, version, performance result


@dataclass(frozen=True)
class Persisted:
    """What one persist stored, for the export and the reactor."""

    outputs: list[WindowOutput]
    performance: list[PerformanceOutput]
    joined: dict[str, int]  # pairs joined per model
    positions: dict[TopicPartitionKey, int]
    # events and dead letters this persist covers: counted only once stored, so a step
    # that fails and is read again counts nothing twice
    events: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    pairs: dict[str, JoinedPairs] = field(default_factory=dict)  # joined, per model (canary arms)
    # checkpoint rows written (open windows of dirty streams, performance windows, processed
    # marks that moved) and the bytes of their states
    checkpoints: int = 0
    checkpoint_bytes: int = 0


@dataclass
class _Buffers:
    outputs: list[WindowOutput] = field(default_factory=list)


class Persister:
    """Collects the loop's writes and stores them in one transaction when due."""

    def __init__(self, store: Store, pipelines: Mapping[str, ModelPipeline], group: str,
                 clock: Callable[[], float], *, topic: str = "predictions",
                 snapshot_interval: float = 0.0) -> None:
        self.store = store
        self.pipelines = pipelines
        self.group = group
        self.clock = clock
        self.topic = topic  # the predictions topic: its partitions are the streams'
        # issue 15: the kserve topic, whose partition q is stream partition SPLIT_STREAMS + q
        self.split_topic: str | None = None
        # how often a dirty stream's state is written (0: at every persist); in between a
        # restart rebuilds it from the records since its snapshot
        self.snapshot_interval = snapshot_interval
        self.buffers = _Buffers()
        # predictions and labels since the last persist (see monitor.stream.label_join)
        self.join = JoinBuffer()
        self.last_persist = clock()
        # each model's event time for its label-join TTL: its latest prediction time
        # persisted (one model's clock never expires another model's rows)
        self.event_time_ms: dict[str, int] = {}
        # streams that retired: their checkpoints are deleted by the next write
        self.retired: list[tuple[str, str, int]] = []
        # events per (model, version, kind) and dead letters per reason since the last write
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.invalid: Counter[str] = Counter()
        # the processed marks as last stored: an unchanged one is not written again
        self.stored_marks: dict[TopicPartitionKey, PartitionMark] = {}
        # scale-out (issue 15): the owned models' merge states, written when they changed
        self.owner: ModelOwner | None = None
        # scale-out: whether a model's joined pairs go to its owner (monitor.stream.shipping),
        # and the models whose realized performance this replica owns now
        self.ships: Callable[[str], bool] | None = None
        self.owned_performance: Callable[[], set[str]] | None = None
        self.owner_states: list[tuple[str, str, Any]] = []  # as the last load read them

    @property
    def outputs(self) -> list[WindowOutput]:
        return self.buffers.outputs

    def add_predictions(self, model: str, version: str, run: list[Prediction] | PredictionBatch,
                        ttl_seconds: float) -> None:
        self.join.add_predictions(model, version, run, ttl_seconds)

    def add_labels(self, batch: LabelBatch, ttl_seconds: float) -> None:
        self.join.add_labels(batch, ttl_seconds)

    def discard(self) -> None:
        """Forget what was not persisted (a rewind reloads it from the stream)."""
        self.buffers = _Buffers()
        self.join.clear()
        self.counts, self.invalid = Counter(), Counter()
        self.stored_marks = {}

    def due(self, interval_seconds: float, force: bool, positions_moved: bool) -> bool:
        since = self.clock() - self.last_persist
        windows_due = bool(self.buffers.outputs) and since >= WINDOW_PERSIST_SECONDS
        if not (force or since >= interval_seconds or windows_due
                or len(self.join) >= MAX_BUFFERED_ROWS):
            return False
        # an owner takes the pairs other replicas shipped, whether or not it read anything
        owns = self.owned_performance is not None and bool(self.owned_performance())
        if not (positions_moved or self.buffers.outputs or force or owns):
            self.last_persist = self.clock()  # nothing happened since: start a new interval
            return False
        return True

    def write(self, partitions: Partitions, positions: dict[TopicPartitionKey, int],
              force: bool, pending: Mapping[TopicPartitionKey, list[str]] | None = None,
              forwarded: Mapping[TopicPartitionKey, Mapping[int, tuple[int, str]]] | None = None
              ) -> Persisted:
        """Raises StaleOwnership (nothing written) when another member took over an owned
        partition since this process took it. ``force``: every dirty stream is written,
        whatever its snapshot interval (a revoke, shutdown)."""
        buffers = self.buffers
        performance: list[PerformanceOutput] = []
        joined: dict[str, int] = {}
        now = self.clock()
        written = self._snapshots(force, now)  # streams whose checkpoint this persist writes
        marks = partitions.marks(pending, self._replays(written), forwarded)
        moved = {tp: mark for tp, mark in marks.items() if self.stored_marks.get(tp) != mark}
        rows = size = 0
        with self.store.transaction() as tx:
            tx.check_partitions(self.group, partitions.epochs)
            for out in buffers.outputs:
                tx.put_window(out.model, out.version, out.key, out.index, out.result,
                              out.start_ms, out.end_ms)
            clocks = self.event_time_ms
            for model, latest in self.join.latest_prediction_ms().items():
                if latest > clocks.get(model, -1):
                    clocks[model] = latest
            joins = self.join.join(tx, clocks)  # canary arms (issue 10): Persisted.pairs
            folds: dict[str, JoinedPairs] = {}
            for model, pairs in joins.items():
                joined[model] = len(pairs)
                if self.ships is not None and self.ships(model):
                    # its owner folds them (monitor.stream.shipping), this replica too if
                    # it is the owner: below, in the order they were stored
                    tx.ship_pairs(model, pack_pairs(pairs), len(pairs))
                else:
                    folds[model] = pairs
            owned = set() if self.owned_performance is None else self.owned_performance()
            folds.update(self._shipped(tx, owned))
            for model, pairs in folds.items():
                for version, index, result in self.pipelines[model].add_pairs(pairs):
                    # the index makes the evidence's identity stable across replays
                    performance.append((model, version, {**result, "window": index}))
                size += tx.save_checkpoint(model, ALL_VERSIONS, PERFORMANCE_KIND,
                                           self.pipelines[model].performance_state(), {})
                rows += 1
            # first: a stream opened again since it retired starts from nothing (a fresh
            # stream of the mark, unless written below)
            for model, version, partition in self.retired:
                tx.delete_checkpoint(model, version, f"p{partition}")
            covers = {stream: partitions.processed.get(self._source(stream.partition))
                      for stream in written}
            for stream in written:
                size += tx.save_checkpoint(stream.model, stream.version, f"p{stream.partition}",
                                           {**stream.checkpoint(), "covers": covers[stream]},
                                           {})
                rows += 1
            merged = [] if self.owner is None else self.owner.dirty_states()
            for model, state in merged:
                size += tx.save_checkpoint(model, ALL_VERSIONS, OWNER_KIND, state, {})
                rows += 1
            if positions:
                tx.commit_offsets(self.group, positions)
            for (topic, partition), mark in moved.items():
                size += tx.save_checkpoint(ALL_MODELS, topic, mark.kind(partition),
                                           mark.to_dict(), {})
                rows += 1
        # stored: these states are now the checkpoints'
        for stream in written:
            stream.dirty = stream.must_snapshot = False
            stream.covers, stream.first_offset, stream.snapshot_s = covers[stream], None, now
        self.stored_marks = marks
        if self.owner is not None:
            self.owner.stored(model for model, _ in merged)
        self.buffers = _Buffers()
        self.join.clear()
        self.retired = []
        self.last_persist = self.clock()
        counts, invalid = self.counts, self.invalid
        self.counts, self.invalid = Counter(), Counter()
        return Persisted(buffers.outputs, performance, joined, positions, counts, invalid,
                         joins,
                         checkpoints=rows, checkpoint_bytes=size)

    def _shipped(self, tx: Transaction, owned: set[str]) -> dict[str, JoinedPairs]:
        """The pairs shipped for the models this replica owns, taken out of the store."""
        parts: dict[str, list[JoinedPairs]] = {}
        for model, payload in tx.take_shipped(sorted(owned)):
            try:
                parts.setdefault(model, []).append(unpack_pairs(model, payload))
            except Exception as exc:  # written by another version of driftloop: skipped
                log.warning("shipped pairs of %s could not be read (%s); dropped", model, exc)
        return {model: joined_pairs(model, p) for model, p in parts.items()}

    def _snapshots(self, force: bool, now: float) -> list[Stream]:
        """The dirty streams whose state this persist writes: all when forced or without a
        snapshot interval, else those whose snapshot is due, those changed by what a replay
        cannot repeat (``must_snapshot``) and those a replay could not find the start of."""
        due: list[Stream] = []
        for pipeline in self.pipelines.values():
            for stream in pipeline.streams.values():
                if not stream.dirty:
                    continue  # its stored checkpoint is its state
                if stream.snapshot_s is None:
                    stream.snapshot_s = now  # new or restored: due one interval from now
                if (force or stream.must_snapshot
                        or now - stream.snapshot_s >= self.snapshot_interval
                        or (stream.covers is None and stream.first_offset is None)):
                    due.append(stream)
        return due

    def _replays(self, written: list[Stream]) -> dict[TopicPartitionKey, Replay]:
        """Per partition, what a restart reads again to rebuild the dirty streams this
        persist does not write: from the lowest of their starts (the offset their stored
        checkpoint covers, or their first record), and those never stored at all."""
        skipped = set(written)
        replays: dict[TopicPartitionKey, Replay] = {}
        for pipeline in self.pipelines.values():
            for (version, partition), stream in pipeline.streams.items():
                if not stream.dirty or stream in skipped:
                    continue
                start = stream.covers if stream.covers is not None else stream.first_offset
                assert start is not None  # else _snapshots writes it
                replay = replays.setdefault(self._source(partition), Replay(start, []))
                replay.start = min(replay.start, start)
                if stream.covers is None:
                    replay.fresh.append((pipeline.name, version, start))
        return replays

    def _source(self, stream_partition: int) -> TopicPartitionKey:
        return stream_source(stream_partition, self.topic, self.split_topic)

    def expire(self, metrics: Metrics) -> None:
        """Drop unjoined label-join rows past their TTL, each model on its own event-time
        clock, and keep each model under ``performance.max_pending_labels`` (oldest
        first); both are counted as expired."""
        expired = self.store.expire(dict(self.event_time_ms))
        for model, pipeline in self.pipelines.items():
            capped = self.store.cap_pending(model, pipeline.config.performance.max_pending_labels)
            if capped.predictions or capped.labels:
                log.warning("label join of %s: %d predictions and %d labels over "
                            "performance.max_pending_labels dropped, oldest first", model,
                            capped.predictions, capped.labels)
                metrics.count_expired(model, capped.predictions, capped.labels)
        for model, counts in expired.items():
            metrics.count_expired(model, counts.predictions, counts.labels)

    def load(self, prediction_partitions: set[int],
             first_restore: bool) -> dict[TopicPartitionKey, PartitionMark]:
        """Read the checkpoints back: open windows of ``prediction_partitions`` into their
        streams, the performance windows on the first restore only (later ones would
        overwrite what this process already holds); returns every stored processed mark.
        The streams' records since their snapshot are read again by the caller
        (:meth:`rebuild` first makes the streams the marks name as fresh)."""
        marks: dict[TopicPartitionKey, PartitionMark] = {}
        self.stored_marks = {}  # written again at the next persist, whatever they hold
        self.owner_states = []
        for checkpoint in self.store.load_checkpoints():
            state = checkpoint.state
            if not isinstance(state, dict):
                continue
            if checkpoint.model == ALL_MODELS:
                partition = PartitionMark.partition_of(checkpoint.kind)
                if partition is not None:
                    marks[(checkpoint.version, partition)] = PartitionMark.from_dict(state)
                continue
            pipeline = self.pipelines.get(checkpoint.model)
            if pipeline is None:
                continue
            if checkpoint.kind == OWNER_KIND:
                self.owner_states.append((checkpoint.model, checkpoint.kind, state))
            elif checkpoint.kind == PERFORMANCE_KIND:
                if self.ships is not None and self.ships(checkpoint.model):
                    # the owner's: restored by the replica taking the model (ScaleOut)
                    self.owner_states.append((checkpoint.model, checkpoint.kind, state))
                elif first_restore:
                    pipeline.restore_performance(state)
            elif int(checkpoint.kind.lstrip("p")) in prediction_partitions:
                pipeline.stream(checkpoint.version, int(checkpoint.kind.lstrip("p"))).restore(state)
        return marks

    def rebuild(self, marks: Mapping[TopicPartitionKey, PartitionMark],
                handled: Mapping[TopicPartitionKey, int]) -> None:
        """After :meth:`load`, for the partitions in ``handled`` (their processed marks as
        adopted): the streams without a stored checkpoint (fresh in their mark) start empty
        at their first record, and no stream starts past its partition's mark (a checkpoint
        written before snapshots covers exactly the mark; a re-created topic counts its
        offsets from 0 again)."""
        for tp, offset in handled.items():
            mark = marks.get(tp)
            partition = stream_partition(tp, self.topic, self.split_topic)
            if mark is None or partition is None:
                continue
            for model, version, first in mark.fresh:
                pipeline = self.pipelines.get(model)
                if pipeline is not None and (version, partition) not in pipeline.streams:
                    pipeline.stream(version, partition).first_offset = min(first, offset)
            for pipeline in self.pipelines.values():
                for (_, p), stream in pipeline.streams.items():
                    if p == partition and stream.first_offset is None:
                        stream.covers = min(offset, stream.covers if stream.covers is not None
                                            else offset)
