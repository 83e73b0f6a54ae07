"""One pass of the consumer loop of ``driftloop serve``, and the state it restores.

:meth:`Service.step` reads as the steps of design section 1:

1. poll a batch of records from the predictions and labels topics;
2. decode and validate (:mod:`monitor.stream.records`); bad records go to the
   dead-letter topic; with ``kafka.kserve_split`` the KServe halves of the predictions
   topic are forwarded by CloudEvents id instead, and paired where they are read back
   from the kserve topic (:mod:`monitor.stream.kserve_split`);
3. update the windows of each (model, version, partition) (:mod:`monitor.stream.feed`);
4. evaluate the windows that closed (also those an idle or retired stream closes);
5. persist in one transaction (:mod:`monitor.stream.persist`): window results,
   label-join rows and joins, the open-window checkpoints whose snapshot is due, the
   processed marks and the next offsets;
6. export metrics;
7. hand the results to the reactor, which queues them for its scheduled job;
8. commit the offsets to Kafka (for lag tooling; the store's are the truth): the
   consumer loop does, with the positions ``persist`` returns.

Dead letters are flushed before the offsets that pass their records are stored.
:meth:`restore`, :meth:`revoke`, :meth:`lose` and :meth:`rewind` take and drop what
this member holds at rebalances and after a failed step (:mod:`monitor.stream.holdings`,
where the ownership and restart invariants are written down). All of them run on the
consumer thread (:mod:`monitor.stream.consumer` queues kafka-python's rebalance
callbacks).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition

from monitor.config import Config
from monitor.ingest import Consumer, DeadLetters, Decoder
from monitor.metrics import Metrics
from monitor.store import StaleOwnership, Store
from monitor.stream.alignment import LabelAlignment
from monitor.stream.arms import ArmAccumulator
from monitor.stream.export import Reactor, export
from monitor.stream.feed import WindowFeed
from monitor.stream.holdings import Holdings
from monitor.stream.kserve_split import SPLIT_STREAMS, KServeSplit
from monitor.stream.partitions import Partitions, TopicPartitionKey
from monitor.stream.persist import Persisted, Persister
from monitor.stream.pipeline import ModelPipeline, WindowOutput
from monitor.stream.records import RecordReader, runs_of
from monitor.stream.report_rows import ReportRows
from monitor.stream.scaleout import ScaleOut

__all__ = ["Reactor", "Service", "StepStats"]

log = logging.getLogger("driftloop.service")


@dataclass
class StepStats:
    records: int = 0
    predictions: int = 0
    labels: int = 0
    invalid: int = 0
    persisted: Persisted | None = None  # what this step stored, if a persist was due

    @property
    def windows(self) -> list[WindowOutput]:
        return self.persisted.outputs if self.persisted is not None else []


class Service:
    def __init__(
        self,
        config: Config,
        pipelines: Mapping[str, ModelPipeline],
        store: Store,
        metrics: Metrics,
        decoder: Decoder,
        consumer: Consumer | None,
        dead_letters: DeadLetters | None,
        *,
        reactor: Reactor | None = None,
        clock: Callable[[], float] = time.time,
        report_rows: ReportRows | None = None,
        arms: ArmAccumulator | None = None,
    ) -> None:
        self.config = config
        self.pipelines = pipelines
        self.store = store
        self.metrics = metrics
        self.decoder = decoder
        # both None until the consumer loop has connected to a broker
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.lock = threading.RLock()
        self.reactor = reactor
        self.clock = clock
        self.report_rows = report_rows  # rows of open windows for drift reports (or None)
        self.arms = arms  # per-version interval statistics for the canary judge (or None)
        self.group = config.kafka.group_id
        self.member = f"{socket.gethostname()}:{os.getpid()}"
        self.partitions = Partitions()
        # KServe pairs cannot be replayed exactly (a pair may span partitions, the joiner's
        # capacity evicts across them): with CloudEvents, every persist writes dirty streams
        self.persister = Persister(
            store, pipelines, self.group, clock, topic=config.kafka.predictions_topic,
            snapshot_interval=0.0 if decoder.cloudevents
            else config.kafka.snapshot_interval_seconds)
        self.reader = RecordReader(
            decoder, pipelines, lambda: self.dead_letters,
            on_dead_letter=None if arms is None else
            (lambda record: arms.add_dead_letter(record.value, record.headers)))
        # (topic, partition) -> (first, last) offset of the last poll: the poison hunt
        self.last_polled: dict[TopicPartitionKey, tuple[int, int]] = {}
        self.alignment = LabelAlignment.of(
            config.kafka, any(p.joins_labels for p in pipelines.values()))
        # issue 15: event-time windows merged per model by its owner (None: per partition)
        self.scaleout = ScaleOut(config.kafka, pipelines, metrics.count_late, clock) \
            if config.kafka.partials else None
        if self.scaleout is not None:
            self.persister.owner = self.scaleout.owner
            # realized performance kept by the owner too (monitor.stream.shipping)
            self.persister.ships = self.scaleout.ships
            self.persister.owned_performance = self.scaleout.owned_performance
        # issue 15: KServe halves forwarded by CloudEvents id and paired where they meet
        self.split = KServeSplit(config.kafka) if config.kafka.kserve_split else None
        if self.split is not None:
            self.persister.split_topic = self.split.topic
        self.feed = WindowFeed(pipelines, self.persister, metrics, decoder, clock,
                               report_rows=report_rows, arms=arms, scaleout=self.scaleout)
        self.holdings = Holdings(
            store, self.group, self.member, pipelines, self.partitions, self.persister,
            decoder, metrics, clock, config.kafka.predictions_topic, report_rows=report_rows,
            alignment=self.alignment, scaleout=self.scaleout, split=self.split)

    def swap_baseline(self, model: str, key: str, baseline: Any) -> None:
        """Between batches (a window boundary for every stream): new windows of ``model``
        use ``baseline``; open ones finish on theirs (see monitor.baseline.watch)."""
        with self.lock:
            pipeline = self.pipelines.get(model)
            if pipeline is not None:
                pipeline.swap_baseline(key, baseline)
                log.info("baseline of %s is now %s: new windows use it", model, key)

    # -- one pass -----------------------------------------------------------------------
    def step(self, timeout_ms: int = 200, *, max_records: int | None = None,
             force_persist: bool = False) -> StepStats:
        assert self.consumer is not None, "not connected"
        stats = StepStats()
        batches = self.consumer.poll(
            timeout_ms=timeout_ms, max_records=max_records or self.config.kafka.poll_max_records)
        with self.lock:
            batches = self._align(batches, hunting=max_records is not None)
            self.last_polled = {(tp.topic, tp.partition): (r[0].offset, r[-1].offset)
                                for tp, r in batches.items() if r}
            for tp, records in batches.items():
                key = (tp.topic, tp.partition)
                if not records:
                    continue
                if not self.partitions.owns(key):
                    # assigned by this very poll (restored before the next one), or revoked
                    # while the batch was in flight (its new owner reads it): read it again
                    self.holdings.note_unread(key, records[0].offset)
                    continue
                if self.holdings.recreated(key, self.consumer):
                    self._take_again(key)
                    continue
                stats.records += len(records)
                handled = self.partitions.handled(key)
                if tp.topic == self.config.kafka.labels_topic:
                    for batch in self.reader.label_runs(key, records, handled):
                        self.feed.add_labels(batch)
                        self.persister.counts[(batch.model, "", "label")] += len(batch)
                        stats.labels += len(batch)
                elif self.scaleout is not None and tp.topic == self.scaleout.topic:
                    self.scaleout.on_records(records, handled)
                elif self.split is not None and tp.topic == self.split.topic:
                    # forwarded halves, paired here: no native batch, streams of their own
                    admitted = self.split.admit(tp.partition, records, handled)
                    stats.predictions += self.feed.add_runs(
                        runs_of(self.reader.predictions(key, admitted, handled)),
                        SPLIT_STREAMS + tp.partition)
                else:
                    local = records if self.split is None else self.split.forward(
                        records, handled, self.partitions.topic_ids.get(key))
                    stats.predictions += self.feed.add_runs(
                        self.reader.prediction_runs(key, local, handled), key[1])
                self.partitions.advance(key, records[-1].offset + 1)
            for evicted in self.decoder.joiner.take_evicted():
                self.reader.invalid[evicted.reason] += 1
                assert self.dead_letters is not None
                self.dead_letters.write(evicted.record, f"{evicted.reason}: {evicted.message}")
            for reason, n in self.reader.take_invalid().items():
                self.persister.invalid[reason] += n
                stats.invalid += n
            if self.feed.housekeeping_due():
                self.housekeep()
            if self.scaleout is not None:
                self.feed.own(self.consumer)
        stats.persisted = self.persist(force=force_persist)
        return stats

    def _take_again(self, key: TopicPartitionKey) -> None:
        """The records just polled are the new topic's at the old topic's position: drop
        them, write and forget what is held as when the partition is lost, and take it
        again, which reads the new topic from its start."""
        log.warning("%s[%d]: the topic was created again while this member held it",
                    key[0], key[1])
        self.lose([key])
        assert self.consumer is not None
        for (topic, partition), offset in self.restore([key]).items():
            self.consumer.seek(TopicPartition(topic, partition), offset)

    def _align(self, batches: dict[Any, list[Any]], hunting: bool) -> dict[Any, list[Any]]:
        """Label records ahead of their predictions wait (:mod:`monitor.stream.alignment`)."""
        if self.alignment is None:
            return batches
        assert self.consumer is not None
        batches = self.alignment.take(batches, self.consumer, hunting=hunting)
        self.metrics.set_labels_paused(self.alignment.paused)
        return batches

    def housekeep(self) -> None:
        """Close the windows of idle event-time streams and retire streams without events
        for ``window.retire_after``: their checkpoints go, their version frees a place."""
        self.feed.housekeep()

    def expire_labels(self) -> None:
        """The label-join-expiry job: under the lock, so never inside a persist."""
        with self.lock:
            self.persister.expire(self.metrics)

    def commit_positions(self) -> dict[TopicPartitionKey, int]:
        """Next offsets safe to commit: never past a KServe half still waiting for its partner."""
        held = self.decoder.joiner.pending_offsets()
        if self.scaleout is not None:  # partials not merged yet are read again after a restart
            held = {**held, **self.scaleout.held_back()}
        return self.partitions.commit_positions(held)

    # -- persist and export ------------------------------------------------------------------
    def persist(self, force: bool = False) -> Persisted | None:
        """Write what is due in one transaction, export it and react to it; None when
        nothing was due. The caller commits ``positions`` to Kafka (for lag tools).

        Partitions another member took over are dropped (their state is not written)
        and the rest is written without them.
        """
        with self.lock:
            if not self.persister.due(self.config.kafka.commit_interval_seconds, force,
                                      self.partitions.dirty):
                return None
            if self.dead_letters is not None:
                self.metrics.count_dead_letters(self.dead_letters.flush())
            if self.scaleout is not None:  # publish, then commit the offsets past the events
                self.scaleout.publisher.flush()
            if self.split is not None:  # forward, then commit the offsets past the halves
                self.split.flush()
            try:
                persisted = self._write(force)
            except StaleOwnership as exc:
                log.warning("%s", exc)
                self.holdings.forget(exc.partitions)
                persisted = self._write(force)
            self.partitions.dirty = False
        export(persisted, self.metrics, self.reactor)
        if self.arms is not None:
            self.arms.add_pairs(persisted.pairs)
            if self.scaleout is not None:  # a canary is judged by its model's owner
                self.scaleout.ship_arms(self.arms, self.store)
        return persisted

    def _write(self, force: bool) -> Persisted:
        return self.persister.write(self.partitions, self.commit_positions(), force,
                                    self.decoder.joiner.pending_ids(),
                                    None if self.split is None else self.split.marks())

    # -- start-up, rebalances, recovery (the consumer thread) ----------------------------------
    def restore(self, assigned: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """Take newly assigned partitions and load their checkpoints (the store's epochs
        first, :meth:`Holdings.take`); returns the offsets to seek to."""
        with self.lock:
            return self.holdings.take(assigned, self.consumer)

    def revoke(self, revoked: Iterable[TopicPartitionKey]) -> None:
        """Partitions handed over in a rebalance: persist everything, then forget them."""
        with self.lock:
            self.persist(force=True)
            self.holdings.forget(revoked)

    def lose(self, lost: Iterable[TopicPartitionKey]) -> None:
        """Partitions lost with the group membership: another member may own them already.

        What this process holds is written first, fenced like every persist: when another
        member took a partition since, nothing of it is written (its owner restores from
        the store and replays), and when none did, the state since the streams' last
        snapshots is kept, which matters when those records cannot be read again (a
        broker that came back empty re-created the topics). Then they are dropped."""
        with self.lock:
            try:
                self.persist(force=True)
            except Exception as exc:  # store or broker trouble: the next owner replays
                log.warning("partitions lost: their state since the last persist could not "
                            "be written (%s: %s); it is read again from Kafka",
                            type(exc).__name__, exc)
            self.holdings.forget(lost)

    def rewind(self, assigned: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """Forget everything not persisted and reload from the store, as a restart would.

        Used after a failed step (store or broker trouble half-way): the stored state
        and offsets are consistent, memory may not be. Returns offsets to seek to.
        """
        with self.lock:
            assigned = set(assigned)
            self.holdings.clear(assigned)
            return self.holdings.take(assigned, self.consumer)
