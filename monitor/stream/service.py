"""One pass of the consumer loop of ``driftloop serve``, and the state it restores.

:meth:`Service.step` reads as the steps of design section 1:

1. poll a batch of records from the predictions and labels topics;
2. decode and validate; bad records go to the dead-letter topic;
3. update the windows of each (model, version, partition);
4. evaluate the windows that closed;
5. persist in one transaction (:mod:`monitor.stream.persist`): window results,
   label-join rows and joins, open-window checkpoints and the next offsets;
6. export metrics;
7. hand the results to the reactor (retrain policy, launchers);
8. commit the offsets to Kafka (for lag tooling; the store's are the truth): the
   consumer loop does, with the positions ``persist`` returns.

Invariant: the offsets stored with a checkpoint are exactly those of the events
folded into it, so a restart (even ``kill -9``) restores the checkpoints, seeks
to the stored offsets and neither loses nor double counts an event. Dead letters
are flushed before the offsets that pass their records are stored.

:meth:`Service.restore`, :meth:`Service.revoke` and :meth:`Service.rewind` load and
drop that state at start-up, rebalances and after a failed step.

Threads: kafka-python 3 runs rebalance callbacks (restore, revoke) on its IO
thread, so the state is guarded by ``lock``; records of a partition revoked while
their batch was in flight are dropped (the new owner reads them again). Never call
a blocking consumer API while holding the lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.config import Config
from monitor.ingest import Consumer, DeadLetters, DecodeError, Decoder, Label, Prediction
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.stream.arms import ArmAccumulator  # canary arms (issue 10)
from monitor.stream.partitions import (
    Partitions,
    TopicPartitionKey,
    topic_id,
)
from monitor.stream.persist import Persisted, Persister
from monitor.stream.pipeline import ModelPipeline, WindowOutput
from monitor.stream.report_rows import ReportRows

__all__ = ["Reactor", "Service", "StepStats"]

log = logging.getLogger("driftloop.service")


class Reactor(Protocol):
    """What acts on results (the retrain policy); called after they are persisted."""

    def on_windows(self, outputs: list[WindowOutput]) -> None: ...

    def on_performance(self, model: str, version: str, result: Mapping[str, Any]) -> None: ...


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
        report_rows: ReportRows | None = None,
        arms: ArmAccumulator | None = None,  # canary arms (issue 10)
        clock: Callable[[], float] = time.time,
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
        self.report_rows = report_rows  # rows of open windows for drift reports (or None)
        self.arms = arms  # canary arms (issue 10): per-version interval statistics, or None
        self.clock = clock
        self.group = config.kafka.group_id
        self.partitions = Partitions()
        self.persister = Persister(store, pipelines, self.group, clock)

    def swap_baseline(self, model: str, key: str, baseline: Any) -> None:
        """Between batches (a window boundary for every stream): new windows of ``model``
        use ``baseline``; open ones finish on theirs (see monitor.baseline.watch)."""
        with self.lock:
            pipeline = self.pipelines.get(model)
            if pipeline is not None:
                pipeline.swap_baseline(key, baseline)
                log.info("baseline of %s is now %s: new windows use it", model, key)

    # -- one pass -----------------------------------------------------------------------
    def step(self, timeout_ms: int = 200) -> StepStats:
        assert self.consumer is not None and self.dead_letters is not None, "not connected"
        stats = StepStats()
        batches = self.consumer.poll(timeout_ms=timeout_ms,
                                     max_records=self.config.kafka.poll_max_records)
        with self.lock:
            events: Counter[tuple[str, str, str]] = Counter()
            invalid: Counter[str] = Counter()
            for tp, records in batches.items():
                key = (tp.topic, tp.partition)
                if not records or not self.partitions.owns(key):
                    continue  # revoked while this batch was in flight: its new owner reads it
                stats.records += len(records)
                if tp.topic == self.config.kafka.labels_topic:
                    self._labels(key, records, events, invalid, stats)
                else:
                    self._predictions(key, records, events, invalid, stats)
                self.partitions.advance(key, records[-1].offset + 1)
            for evicted in self.decoder.joiner.take_evicted():
                invalid[evicted.reason] += 1
                self.dead_letters.write(evicted.record, f"{evicted.reason}: {evicted.message}")
            for (model, version, kind), n in events.items():
                self.metrics.count_events(model, version, kind, n)  # type: ignore[arg-type]
            for reason, n in invalid.items():
                self.metrics.count_invalid(reason, n)
                stats.invalid += n
        stats.persisted = self.persist()
        return stats

    def _labels(self, key: TopicPartitionKey, records: list[Any],
                events: Counter[tuple[str, str, str]], invalid: Counter[str],
                stats: StepStats) -> None:
        assert self.dead_letters is not None
        handled = self.partitions.handled(key)
        for record in records:
            replayed = record.offset < handled
            try:
                label = self.decoder.decode_label(record)
            except DecodeError as error:
                if not replayed:
                    invalid[error.reason] += 1
                    self.dead_letters.write(record, error)
                continue
            if not replayed:
                self._on_label(label)
                events[(label.model, "", "label")] += 1
                stats.labels += 1

    def _predictions(self, key: TopicPartitionKey, records: list[Any],
                     events: Counter[tuple[str, str, str]], invalid: Counter[str],
                     stats: StepStats) -> None:
        """The per-event path: decode only; windows take the batch in runs.

        Records below the processed mark were handled before a restart; a KServe half
        among them is fed to the joiner again, but nothing is emitted twice.
        """
        assert self.dead_letters is not None
        handled = self.partitions.handled(key)
        decode = self.decoder.decode_prediction
        batch: list[Prediction] = []
        extend = batch.extend
        for record in records:
            try:
                predictions = decode(record)
            except DecodeError as error:
                if record.offset >= handled:
                    invalid[error.reason] += 1
                    self.dead_letters.write(record, error)
                    if self.arms is not None:  # canary arms (issue 10)
                        self.arms.add_dead_letter(record.value, record.headers)
                continue
            if record.offset >= handled:
                extend(predictions)
        for (model, version), run in _runs(batch):
            self._on_predictions(model, version, key[1], run)
            events[(model, version, "prediction")] += len(run)
            stats.predictions += len(run)

    def _on_predictions(self, model: str, version: str, partition: int,
                        run: list[Prediction]) -> None:
        pipeline = self.pipelines[model]
        if self.arms is not None:  # canary arms (issue 10)
            self.arms.add_predictions(model, version, run)
        rows = self.report_rows
        if rows is not None:
            rows.feed(pipeline, version, partition, run)
        for closed in pipeline.add_many(version, partition, run):
            started = time.perf_counter()
            output = pipeline.evaluate(closed)
            self.persister.outputs.append(output)
            self.metrics.observe_evaluation(model, time.perf_counter() - started)
            if rows is not None:
                rows.closed(pipeline, output)
        if rows is not None:
            rows.settle(pipeline, version, partition)
        if pipeline.joins_labels:  # else no reference performance: no join state to keep
            self.persister.add_predictions(model, version, run,
                                           pipeline.config.performance.label_ttl)

    def _on_label(self, event: Label) -> None:
        pipeline = self.pipelines[event.model]
        if pipeline.joins_labels:  # else counted, but nothing can be evaluated with it
            self.persister.add_label(event, pipeline.config.performance.label_ttl)

    def expire_labels(self) -> None:
        """Drop unjoined label-join rows past their TTL in event time (a scheduled job).

        Under the lock, so it never runs inside the loop's persist transaction.
        """
        with self.lock:
            now_ms = self.persister.event_time_ms
            if now_ms is None:
                return
            expired = self.store.expire(now_ms)
        for model, counts in expired.items():
            self.metrics.count_expired(model, counts.predictions, counts.labels)

    def commit_positions(self) -> dict[TopicPartitionKey, int]:
        """Next offsets safe to commit: never past a KServe half still waiting for its partner."""
        return self.partitions.commit_positions(self.decoder.joiner.pending_offsets())

    # -- persist, export, commit ------------------------------------------------------------
    def persist(self, force: bool = False) -> Persisted | None:
        """Write what is due in one transaction, export it and react to it; None when
        nothing was due. The caller commits ``positions`` to Kafka (for lag tools)."""
        with self.lock:
            if not self.persister.due(self.config.kafka.commit_interval_seconds, force,
                                      self.partitions.dirty):
                return None
            if self.dead_letters is not None:
                self.dead_letters.flush()
            persisted = self.persister.write(self.partitions, self.commit_positions(), force)
            self.partitions.dirty = False
        self._export(persisted)
        return persisted

    def _export(self, persisted: Persisted) -> None:
        for out in persisted.outputs:
            self.metrics.observe_window(out.model, out.version, out.result)
            log.info("window %s/%s %s: %d rows, dataset drift %s (share %.2f)",
                     out.model, out.version, out.key, out.result.get("rows", 0),
                     out.result.get("dataset_drift"), out.result.get("drift_share") or 0.0)
        for model, version, result in persisted.performance:
            self.metrics.observe_performance(model, version, result)
        for model, n in persisted.joined.items():
            self.metrics.count_joined(model, n)
        if self.arms is not None:  # canary arms (issue 10)
            self.arms.add_pairs(persisted.pairs)
        if self.reactor is not None:
            if persisted.outputs:
                self.reactor.on_windows(persisted.outputs)
            for model, version, result in persisted.performance:
                self.reactor.on_performance(model, version, result)

    # -- start-up, rebalances, recovery -----------------------------------------------------
    def restore(self, assigned: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """Load the checkpoints of newly assigned partitions; returns offsets to seek to."""
        with self.lock:
            wanted = set(assigned) - self.partitions.owned
            if not wanted:
                return {}
            predictions = {p for t, p in wanted if t == self.config.kafka.predictions_topic}
            marks = self.persister.load(predictions, first_restore=not self.partitions.owned)
            current = {tp: topic_id(self.consumer, tp[0]) if self.consumer else None
                       for tp in wanted}
            return self.partitions.adopt(wanted, self.store.offsets(self.group), marks, current)

    def revoke(self, revoked: Iterable[TopicPartitionKey]) -> None:
        """Persist everything before partitions leave; forget their streams."""
        with self.lock:
            self.persist(force=True)  # Kafka's copy of the offsets waits for the loop
            gone = set(revoked)
            topic = self.config.kafka.predictions_topic
            for pipeline in self.pipelines.values():
                for key in [k for k in pipeline.streams if (topic, k[1]) in gone]:
                    del pipeline.streams[key]
            self.partitions.forget(gone)
            if self.report_rows is not None:
                self.report_rows.forget(p for t, p in gone if t == topic)
            self.decoder.joiner.drop_partitions(gone)
            self.metrics.forget_partitions(gone)

    def rewind(self, assigned: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """Forget everything not persisted and reload from the store, as a restart would.

        Used after a failed step (store or broker trouble half-way): the stored state
        and offsets are consistent, memory may not be. Returns offsets to seek to.
        """
        with self.lock:
            for pipeline in self.pipelines.values():
                pipeline.streams.clear()
                pipeline.restore_performance({})
            if self.report_rows is not None:
                self.report_rows.clear()
            assigned = set(assigned)
            self.decoder.joiner.drop_partitions(assigned | set(self.partitions.processed))
            self.partitions.clear()
            self.persister.discard()
            return self.restore(assigned)


def _runs(batch: list[Prediction]) -> list[tuple[tuple[str, str], list[Prediction]]]:
    """Consecutive events of the same (model, version), in order; one run in the usual
    case of a partition that carries one model version."""
    if not batch:
        return []
    first = batch[0]
    model, version = first.model, first.version
    if all(e.model == model and e.version == version for e in batch):
        return [((model, version), batch)]
    runs: list[tuple[tuple[str, str], list[Prediction]]] = []
    for e in batch:
        key = (e.model, e.version)
        if not runs or runs[-1][0] != key:
            runs.append((key, []))
        runs[-1][1].append(e)
    return runs
