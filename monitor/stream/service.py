"""One pass of the consumer loop of ``driftloop serve``, and the state it restores.

:meth:`Service.step` reads as the steps of design section 1:

1. poll a batch of records from the predictions and labels topics;
2. decode and validate (:mod:`monitor.stream.records`); bad records go to the
   dead-letter topic; with ``kafka.kserve_split`` the KServe halves of the predictions
   topic are forwarded by CloudEvents id instead, and paired where they are read back
   from the kserve topic (:mod:`monitor.stream.kserve_split`);
3. update the windows of each (model, version, partition);
4. evaluate the windows that closed (also those an idle or retired stream closes);
5. persist in one transaction (:mod:`monitor.stream.persist`): window results,
   label-join rows and joins, the open-window checkpoints whose snapshot is due, the
   processed marks and the next offsets;
6. export metrics;
7. hand the results to the reactor, which queues them for its scheduled job;
8. commit the offsets to Kafka (for lag tooling; the store's are the truth): the
   consumer loop does, with the positions ``persist`` returns.

Invariant: every stream checkpoint says the partition offset it covers (the events
folded into it are exactly those below), and the processed mark stored with the
offsets says from where a restart must read again (``replay_from``: the lowest
offset a stream not written since it changed covers) and which streams have no
checkpoint yet (``fresh``). A restart (even ``kill -9``) restores the checkpoints,
seeks to the lower of the stored offset and ``replay_from``, folds each record
below the processed mark only into the streams whose stored state does not hold it
yet (nothing else happens for it), and from the mark on goes on as before: no event
is lost or counted twice. The records read again are at most
``kafka.snapshot_interval_seconds`` of the partition's events. Dead letters are
flushed before the offsets that pass their records are stored.

Ownership: :meth:`restore` takes newly assigned partitions in the store (their
fencing epoch goes up) *before* reading their checkpoints, and every persist
checks the epochs, so a member that lost a partition never overwrites the new
owner's state. :meth:`revoke`, :meth:`lose` and :meth:`rewind` drop state at
rebalances and after a failed step. All of them run on the consumer thread
(:mod:`monitor.stream.consumer` queues kafka-python's rebalance callbacks).
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
from monitor.ingest.batch import LabelBatch, PredictionBatch
from monitor.metrics import Metrics
from monitor.store import StaleOwnership, Store
from monitor.stream.alignment import LabelAlignment
from monitor.stream.arms import ArmAccumulator
from monitor.stream.export import Reactor, export
from monitor.stream.kserve_split import SPLIT_STREAMS, KServeSplit, stream_partitions
from monitor.stream.partitions import Partitions, TopicPartitionKey, topic_id
from monitor.stream.persist import Persisted, Persister
from monitor.stream.pipeline import ModelPipeline, WindowOutput
from monitor.stream.records import RecordReader, RunEvents, runs_of
from monitor.stream.report_rows import ReportRows
from monitor.stream.scaleout import ScaleOut
from monitor.stream.window_state import ClosedWindow

__all__ = ["HOUSEKEEPING_SECONDS", "Reactor", "Service", "StepStats"]

log = logging.getLogger("driftloop.service")

HOUSEKEEPING_SECONDS = 1.0  # how often idle and retired streams are looked for


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
        self._last_housekeeping = clock()
        # per partition: the first offset of records polled before this process held it
        self._unread: dict[TopicPartitionKey, int] = {}
        self.alignment = _alignment(config, pipelines)
        # issue 15: event-time windows merged per model by its owner (None: per partition)
        self.scaleout = ScaleOut(config.kafka, pipelines, metrics.count_late, clock) \
            if config.kafka.partials else None
        if self.scaleout is not None:
            self.persister.owner = self.scaleout.owner
        # issue 15: KServe halves forwarded by CloudEvents id and paired where they meet
        self.split = KServeSplit(config.kafka) if config.kafka.kserve_split else None
        if self.split is not None:
            self.persister.split_topic = self.split.topic

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
                    first = records[0].offset
                    self._unread[key] = min(first, self._unread.get(key, first))
                    continue
                if self._recreated(key):
                    self._take_again(key)
                    continue
                stats.records += len(records)
                handled = self.partitions.handled(key)
                if tp.topic == self.config.kafka.labels_topic:
                    for batch in self.reader.label_runs(key, records, handled):
                        self._on_labels(batch)
                        self.persister.counts[(batch.model, "", "label")] += len(batch)
                        stats.labels += len(batch)
                elif self.scaleout is not None and tp.topic == self.scaleout.topic:
                    self.scaleout.on_records(records, handled)
                elif self.split is not None and tp.topic == self.split.topic:
                    # forwarded halves, paired here: no native batch, streams of their own
                    admitted = self.split.admit(tp.partition, records, handled)
                    self._predictions(runs_of(self.reader.predictions(key, admitted, handled)),
                                      SPLIT_STREAMS + tp.partition, stats)
                else:
                    local = records if self.split is None else self.split.forward(
                        records, handled, self.partitions.topic_ids.get(key))
                    self._predictions(self.reader.prediction_runs(key, local, handled),
                                      key[1], stats)
                self.partitions.advance(key, records[-1].offset + 1)
            for evicted in self.decoder.joiner.take_evicted():
                self.reader.invalid[evicted.reason] += 1
                assert self.dead_letters is not None
                self.dead_letters.write(evicted.record, f"{evicted.reason}: {evicted.message}")
            for reason, n in self.reader.take_invalid().items():
                self.persister.invalid[reason] += n
                stats.invalid += n
            if self.clock() - self._last_housekeeping >= HOUSEKEEPING_SECONDS:
                self.housekeep()
            if self.scaleout is not None:
                self._own()
        stats.persisted = self.persist(force=force_persist)
        return stats

    def _recreated(self, key: TopicPartitionKey) -> bool:
        """Whether the topic of a partition this member holds was created again since it
        took it (a broker back without its data, reached before the group noticed)."""
        held = self.partitions.topic_ids.get(key)
        current = topic_id(self.consumer, key[0]) if held else None
        return current is not None and current != held

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
        """Label records ahead of their predictions wait (:mod:`monitor.stream.alignment`);
        a poison hunt, which reads one record at a time, gets everything held at once."""
        if self.alignment is None:
            return batches
        assert self.consumer is not None
        if hunting:
            released = self.alignment.release(self.consumer)
            batches = {tp: released.pop(tp, []) + batches.get(tp, [])
                       for tp in batches.keys() | released.keys()}
        else:
            batches = self.alignment.align(batches, self.consumer)
        self.metrics.set_labels_paused(self.alignment.paused)
        return batches

    def _predictions(self, runs: Iterable[tuple[tuple[str, str], RunEvents]], partition: int,
                     stats: StepStats) -> None:
        """The runs decoded from one partition into the streams of ``partition``."""
        for (model, version), replayed in runs_of(self.decoder.take_replayed()):
            self.pipelines[model].replay(version, partition, replayed, int(self.clock() * 1000))
        for (model, version), run in runs:
            self._on_predictions(model, version, partition, run)
            self.persister.counts[(model, version, "prediction")] += len(run)
            stats.predictions += len(run)

    def _on_predictions(self, model: str, version: str, partition: int,
                        run: RunEvents) -> None:
        pipeline = self.pipelines[model]
        if self.arms is not None:
            self.arms.add_predictions(model, version, run)
        if self.report_rows is not None:
            self.report_rows.feed(pipeline, version, partition, run)
        now_ms = int(self.clock() * 1000)
        last = int(run.offsets[-1]) if isinstance(run, PredictionBatch) else run[-1].offset
        self._evaluate(pipeline, pipeline.add_batch(run, now_ms)
                       if isinstance(run, PredictionBatch)
                       else pipeline.add_many(version, partition, run, now_ms), last)
        if self.report_rows is not None:
            self.report_rows.settle(pipeline, version, partition)
        if pipeline.joins_labels:  # else no reference performance: no join state to keep
            self.persister.add_predictions(model, version, run,
                                           pipeline.config.performance.label_ttl)

    def _evaluate(self, pipeline: ModelPipeline, closed: list[ClosedWindow],
                  last_offset: int | None = None) -> None:
        """Evaluate closed windows; with partials, a partition's event-time window goes to
        its model's owner instead (``last_offset``: of the run that closed it)."""
        for window in closed:
            if self.scaleout is not None and window.partition is not None \
                    and self.scaleout.publishes(pipeline):
                self.scaleout.publish(pipeline, window, last_offset)
                continue
            started = time.perf_counter()
            output = pipeline.evaluate(window)
            self.persister.outputs.append(output)
            self.metrics.observe_evaluation(pipeline.name, time.perf_counter() - started)
            if self.report_rows is not None:
                self.report_rows.closed(pipeline, output)

    def _own(self) -> None:
        """Issue 15: report the held partitions' watermarks (after the windows they closed
        were published), then evaluate the owned models' merged windows that are due."""
        assert self.scaleout is not None
        self.scaleout.heartbeats(int(self.clock() * 1000))
        for window in self.scaleout.due(self.consumer):
            self._evaluate(self.pipelines[window.model], [window])

    def _on_labels(self, batch: LabelBatch) -> None:
        pipeline = self.pipelines[batch.model]
        if pipeline.joins_labels:  # else counted, but nothing can be evaluated with it
            self.persister.add_labels(batch, pipeline.config.performance.label_ttl)

    def housekeep(self) -> None:
        """Close the windows of idle event-time streams and retire streams without events
        for ``window.retire_after``: their checkpoints go, their version frees a place."""
        now_ms = int(self.clock() * 1000)
        self._last_housekeeping = self.clock()
        for pipeline in self.pipelines.values():
            closed, retired = pipeline.housekeep(now_ms)
            self._evaluate(pipeline, closed)
            for version, partition in retired:
                log.info("stream %s/%s p%d retired: no events for %.0fs", pipeline.name,
                         version, partition, pipeline.config.window.retire_after)
                self.persister.retired.append((pipeline.name, version, partition))
                if version not in pipeline.versions:
                    self.metrics.forget_version(pipeline.name, version)

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
                self._forget(exc.partitions)
                persisted = self._write(force)
            self.partitions.dirty = False
        export(persisted, self.metrics, self.reactor)
        if self.arms is not None:
            self.arms.add_pairs(persisted.pairs)
        return persisted

    def _write(self, force: bool) -> Persisted:
        return self.persister.write(self.partitions, self.commit_positions(), force,
                                    self.decoder.joiner.pending_ids(),
                                    None if self.split is None else self.split.marks())

    # -- start-up, rebalances, recovery (the consumer thread) ----------------------------------
    def restore(self, assigned: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """Take newly assigned partitions and load their checkpoints; returns the offsets
        to seek to. Taking comes first: from then on the previous owner's writes for them
        are refused, so what is read here cannot be overwritten by it."""
        with self.lock:
            wanted = set(assigned) - self.partitions.owned
            if not wanted:
                return {}
            epochs = self.store.take_partitions(self.group, wanted, self.member)
            marks = self.persister.load(self._stream_partitions(wanted),
                                        first_restore=not self.partitions.owned)
            if self.scaleout is not None:
                owned = self.scaleout.take(wanted, int(self.clock() * 1000))
                self.scaleout.restore(self.persister.owner_states, owned)
            self.decoder.joiner.expect({tp: marks[tp].pending for tp in wanted if tp in marks})
            current = {tp: topic_id(self.consumer, tp[0]) if self.consumer else None
                       for tp in wanted}
            if self.split is not None:
                self.split.restore(marks, wanted, current)
            seeks = self.partitions.adopt(wanted, self.store.offsets(self.group), marks,
                                          current, epochs)
            handled = {tp: self.partitions.handled(tp) for tp in wanted if tp in marks}
            self.persister.rebuild(marks, handled)
            for tp in handled:  # the records since the streams' snapshots, read again
                if tp in seeks and self.partitions.handled(tp) == marks[tp].processed:
                    seeks[tp] = min(seeks[tp], marks[tp].replay_start)
                    if marks[tp].replay_start < marks[tp].processed:
                        log.info("%s[%d]: reading offsets %d..%d again to rebuild its streams",
                                 tp[0], tp[1], marks[tp].replay_start, marks[tp].processed - 1)
            for tp in wanted:
                unread = self._unread.pop(tp, None)
                if tp not in seeks and unread is not None:
                    seeks[tp] = unread  # never stored: start where the dropped records did
                    self.partitions.processed.setdefault(tp, unread)
            return seeks

    def revoke(self, revoked: Iterable[TopicPartitionKey]) -> None:
        """Partitions handed over in a rebalance: persist everything, then forget them."""
        with self.lock:
            self.persist(force=True)
            self._forget(revoked)

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
            self._forget(lost)

    def _forget(self, partitions: Iterable[TopicPartitionKey]) -> None:
        gone = set(partitions)
        predictions = self._stream_partitions(gone)
        for pipeline in self.pipelines.values():
            pipeline.drop_streams(predictions)
        if self.report_rows is not None:
            self.report_rows.forget(predictions)
        self.partitions.forget(gone)
        if self.alignment is not None:
            self.alignment.forget(gone)
        self.decoder.joiner.drop_partitions(gone)
        self.metrics.forget_partitions(gone)
        if self.scaleout is not None:
            self.scaleout.forget(gone)
        if self.split is not None:
            self.split.forget(gone)

    def _stream_partitions(self, partitions: Iterable[TopicPartitionKey]) -> set[int]:
        return stream_partitions(partitions, self.config.kafka.predictions_topic,
                                 None if self.split is None else self.split.topic)

    def rewind(self, assigned: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """Forget everything not persisted and reload from the store, as a restart would.

        Used after a failed step (store or broker trouble half-way): the stored state
        and offsets are consistent, memory may not be. Returns offsets to seek to.
        """
        with self.lock:
            for pipeline in self.pipelines.values():
                pipeline.drop_streams()
                pipeline.restore_performance({})
            assigned = set(assigned)
            self.decoder.joiner.drop_partitions(assigned | set(self.partitions.processed))
            self.decoder.take_replayed()  # of the failed step: read again after the seek
            self.partitions.clear()
            if self.alignment is not None:
                self.alignment.clear()
            self.persister.discard()
            if self.report_rows is not None:
                self.report_rows.clear()
            if self.scaleout is not None:
                self.scaleout.clear()
            if self.split is not None:
                self.split.forget(None)
            return self.restore(assigned)


def _alignment(config: Config, pipelines: Mapping[str, ModelPipeline]) -> LabelAlignment | None:
    """Only when a model joins labels (else they are only counted) and it is not turned off."""
    kafka = config.kafka
    if kafka.label_alignment_seconds <= 0 or not any(p.joins_labels for p in pipelines.values()):
        return None
    return LabelAlignment(kafka.predictions_topic, kafka.labels_topic,
                          kafka.label_alignment_seconds)
