"""The consumer loop of ``driftloop serve``.

One pass of :meth:`Service.step` reads as the steps of design section 1:

1. poll a batch of records from the predictions and labels topics;
2. decode and validate; bad records go to the dead-letter topic;
3. update the windows of each (model, version, partition);
4. evaluate the windows that closed;
5. persist in one transaction: window results, label-join rows and joins,
   open-window checkpoints and the next offsets (the exactly-once effect);
6. export metrics;
7. hand the results to the reactor (retrain policy, launchers);
8. commit the offsets to Kafka (for lag tooling; the store's are the truth).

Invariant: the offsets stored with a checkpoint are exactly those of the events
folded into it, so a restart (even ``kill -9``) restores the checkpoints,
seeks to the stored offsets and neither loses nor double counts an event.
Dead letters are flushed before the offsets that pass their records are stored.

Restoring checkpoints at start-up and rebalances is ``monitor.stream.recovery``.

Window results are written when windows close, at most every
``WINDOW_PERSIST_SECONDS``; everything else at ``kafka.commit_interval_seconds``.
Kafka offset commits are asynchronous except on shutdown. Unjoined label-join rows
past their TTL (in event time: the latest prediction time) are dropped once a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from monitor.config import Config
from monitor.ingest import DeadLetterWriter, DecodeError, Decoder, Label, Prediction
from monitor.metrics import Metrics
from monitor.store import PendingLabel, PendingPrediction, Store
from monitor.stream.pipeline import ModelPipeline, WindowOutput
from monitor.stream.recovery import ALL_MODELS, ALL_VERSIONS, PERFORMANCE_KIND, Recovery

__all__ = ["Reactor", "Service", "StepStats"]

log = logging.getLogger("driftloop.service")

WINDOW_PERSIST_SECONDS = 0.5
EXPIRY_SECONDS = 60.0  # how often unjoined rows past their TTL are dropped


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
    windows: list[WindowOutput] = field(default_factory=list)


class Service(Recovery):
    def __init__(
        self,
        config: Config,
        pipelines: Mapping[str, ModelPipeline],
        store: Store,
        metrics: Metrics,
        decoder: Decoder,
        consumer: Any,
        # None until the runtime has connected to a broker (set then)
        dead_letters: DeadLetterWriter | Any,
        *,
        reactor: Reactor | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.pipelines = pipelines
        self.store = store
        self.metrics = metrics
        self.decoder = decoder
        self.consumer = consumer
        self.dead_letters = dead_letters
        # kafka-python 3 runs rebalance callbacks (restore, revoke) on its IO thread: the
        # lock keeps them out of a batch in progress. Never call a blocking consumer API
        # while holding it: the IO thread may be waiting for it in a callback.
        self.lock = threading.RLock()
        self.reactor = reactor
        self.clock = clock
        self.group = config.kafka.group_id
        # per consumed partition: the offset after the last record handled
        self.processed: dict[tuple[str, int], int] = {}
        self._dirty_positions = False
        self._pending_predictions: list[PendingPrediction] = []
        self._pending_labels: list[PendingLabel] = []
        self._outputs: list[WindowOutput] = []
        self._last_persist = clock()
        # event time for the label-join TTL: the latest prediction time persisted
        self._event_time_ms: int | None = None
        self._last_expiry = clock()
        self._restored_partitions: set[tuple[str, int]] = set()
        # per consumed partition: the broker's id of the topic incarnation being read
        self._topic_ids: dict[tuple[str, int], str | None] = {}

    def swap_baseline(self, model: str, key: str, baseline: Any) -> None:
        with self.lock:
            self._swap_baseline(model, key, baseline)

    def _swap_baseline(self, model: str, key: str, baseline: Any) -> None:
        """Between batches (a window boundary for every stream): new windows of ``model``
        use ``baseline``; open ones finish on theirs (see monitor.baseline.watch)."""
        pipeline = self.pipelines.get(model)
        if pipeline is not None:
            pipeline.swap_baseline(key, baseline)
            log.info("baseline of %s is now %s: new windows use it", model, key)

    # -- one pass -----------------------------------------------------------------------
    def step(self, timeout_ms: int = 200) -> StepStats:
        stats = StepStats()
        batches = self.consumer.poll(timeout_ms=timeout_ms,
                                     max_records=self.config.kafka.poll_max_records)
        with self.lock:
            events: Counter[tuple[str, str, str]] = Counter()
            invalid: Counter[str] = Counter()
            labels_topic = self.config.kafka.labels_topic
            for tp, records in batches.items():
                if not records:
                    continue
                key = (tp.topic, tp.partition)
                if key not in self._restored_partitions:
                    # revoked while this batch was in flight: its new owner reads it again
                    continue
                # records below this offset were handled before a restart; a KServe half
                # among them is fed to the joiner again, but nothing is emitted twice
                handled = self.processed.get(key, -1)
                stats.records += len(records)
                if tp.topic == labels_topic:
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
                else:
                    # the per-event path: decode only; windows take the batch in runs
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
                            continue
                        if record.offset >= handled:
                            extend(predictions)
                    for (model, version), run in _runs(batch):
                        self._on_predictions(model, version, tp.partition, run)
                        events[(model, version, "prediction")] += len(run)
                        stats.predictions += len(run)
                self.processed[key] = max(handled, records[-1].offset + 1)
                self._dirty_positions = True
            for evicted in self.decoder.joiner.take_evicted():
                invalid[evicted.reason] += 1
                self.dead_letters.write(evicted.record, f"{evicted.reason}: {evicted.message}")
            for (model, version, kind), n in events.items():
                self.metrics.count_events(model, version, kind, n)  # type: ignore[arg-type]
            for reason, n in invalid.items():
                self.metrics.count_invalid(reason, n)
                stats.invalid += n
        stats.windows = self.persist()
        return stats

    def commit_positions(self) -> dict[tuple[str, int], int]:
        """Next offsets safe to commit: never past a KServe half still waiting for its partner."""
        positions = dict(self.processed)
        for key, lowest in self.decoder.joiner.pending_offsets().items():
            if key in positions:
                positions[key] = min(positions[key], lowest)
        return positions

    def _on_predictions(self, model: str, version: str, partition: int,
                        run: list[Prediction]) -> None:
        pipeline = self.pipelines[model]
        for closed in pipeline.add_many(version, partition, run):
            started = time.perf_counter()
            self._outputs.append(pipeline.evaluate(closed))
            self.metrics.observe_evaluation(model, time.perf_counter() - started)
        if not pipeline.joins_labels:
            return  # no reference performance to compare with: no join state to keep
        ttl_ms = int(pipeline.config.performance.label_ttl * 1000)
        self._pending_predictions.extend(
            PendingPrediction(
                model=model, request_id=e.request_id, version=version,
                prediction=e.prediction, timestamp_ms=e.timestamp_ms,
                expires_at_ms=e.timestamp_ms + ttl_ms, score=e.score, scores=e.scores)
            for e in run)

    def _on_label(self, event: Label) -> None:
        if not self.pipelines[event.model].joins_labels:
            return  # counted, but nothing can be evaluated with it
        ttl_ms = int(self.pipelines[event.model].config.performance.label_ttl * 1000)
        self._pending_labels.append(PendingLabel(
            model=event.model, request_id=event.request_id, label=event.label,
            timestamp_ms=event.timestamp_ms, expires_at_ms=event.timestamp_ms + ttl_ms))

    # -- persistence: one transaction -------------------------------------------------------
    def persist(self, force: bool = False, *, commit_kafka: bool = True) -> list[WindowOutput]:
        """Write what is due in one transaction; ``commit_kafka=False`` inside rebalance
        callbacks, which run on kafka-python's IO thread and must not block on it."""
        with self.lock:
            written = self._write(force)
        if written is None:
            return []
        outputs, performance, n_pairs, by_model, positions = written
        self._export(outputs, performance, n_pairs, by_model)
        if commit_kafka:
            self._commit_kafka(positions, wait=force)
        return outputs

    def _write(self, force: bool) -> tuple[Any, ...] | None:
        """The transaction of ``persist``; None when nothing was due."""
        since = self.clock() - self._last_persist
        due = since >= self.config.kafka.commit_interval_seconds
        # closed windows are written at once, but not more than every WINDOW_PERSIST_SECONDS:
        # under load windows close many times a second, and each write also checkpoints the
        # open windows (a fifth of the consume rate at 5000-row windows)
        windows_due = bool(self._outputs) and since >= WINDOW_PERSIST_SECONDS
        buffered = len(self._pending_predictions) + len(self._pending_labels)
        if not (force or due or windows_due or buffered >= 50_000):
            return None
        if not (self._dirty_positions or self._outputs or force):
            self._last_persist = self.clock()
            return None
        self.dead_letters.flush()
        outputs = self._outputs
        performance: list[tuple[str, str, dict[str, Any]]] = []
        with self.store.transaction() as tx:
            for out in outputs:
                tx.put_window(out.model, out.version, out.key, out.index, out.result,
                              out.start_ms, out.end_ms)
            keys = [(p.model, p.request_id) for p in self._pending_predictions]
            keys += [(label.model, label.request_id) for label in self._pending_labels]
            if self._pending_predictions:
                tx.add_predictions(self._pending_predictions)
            if self._pending_labels:
                tx.add_labels(self._pending_labels)
            pairs = tx.join(keys) if keys else []
            latest = max((p.timestamp_ms for p in self._pending_predictions), default=None)
            if latest is not None and (self._event_time_ms is None
                                       or latest > self._event_time_ms):
                self._event_time_ms = latest
            expired: dict[str, Any] | None = None
            if self._event_time_ms is not None and \
                    self.clock() - self._last_expiry >= EXPIRY_SECONDS:
                # the TTL runs in event time (predictions' times), so a replay of old
                # data joins as it did live; rows past it will never join: drop them
                expired = tx.expire(self._event_time_ms)
                self._last_expiry = self.clock()
            by_model: dict[str, list[Any]] = {}
            for pair in pairs:
                by_model.setdefault(pair.model, []).append(pair)
            for model, model_pairs in by_model.items():
                for version, index, result in self.pipelines[model].add_pairs(model_pairs):
                    # the index makes the evidence's identity stable across replays
                    performance.append((model, version, {**result, "window": index}))
                tx.save_checkpoint(model, ALL_VERSIONS, PERFORMANCE_KIND,
                                   self.pipelines[model].performance_state(), {})
            for pipeline in self.pipelines.values():
                for (version, partition), stream in pipeline.streams.items():
                    if stream.dirty or force:
                        tx.save_checkpoint(pipeline.name, version, f"p{partition}",
                                           stream.checkpoint(), {})
            positions = self.commit_positions()
            if positions:
                tx.commit_offsets(self.group, positions)
            for (topic, partition), processed in self.processed.items():
                # the id read at assignment, not the current one: metadata may already
                # name a re-created topic while these offsets still count the old one
                tx.save_checkpoint(ALL_MODELS, topic, f"processed:p{partition}",
                                   {"processed": processed,
                                    "topic_id": self._topic_ids.get((topic, partition))}, {})
        n_pairs = len(pairs)
        if expired is not None:  # once a minute: the counts scan the join tables
            for model, counts in expired.items():
                self.metrics.count_expired(model, counts.predictions, counts.labels)
            for model, counts in self.store.pending_counts().items():
                self.metrics.set_join_pending(model, counts.predictions, counts.labels)
        self._outputs = []
        self._pending_predictions, self._pending_labels = [], []
        self._dirty_positions = False
        self._last_persist = self.clock()
        return outputs, performance, n_pairs, by_model, positions

    def _export(self, outputs: list[WindowOutput],
                performance: list[tuple[str, str, dict[str, Any]]],
                n_pairs: int, by_model: Mapping[str, list[Any]]) -> None:
        for out in outputs:
            self.metrics.observe_window(out.model, out.version, out.result)
            log.info("window %s/%s %s: %d rows, dataset drift %s (share %.2f)",
                     out.model, out.version, out.key, out.result.get("rows", 0),
                     out.result.get("dataset_drift"), out.result.get("drift_share") or 0.0)
        for model, version, result in performance:
            self.metrics.observe_performance(model, version, result)
        for model, model_pairs in by_model.items():
            self.metrics.count_joined(model, len(model_pairs))
        if self.reactor is not None:
            if outputs:
                self.reactor.on_windows(outputs)
            for model, version, result in performance:
                self.reactor.on_performance(model, version, result)

    def _commit_kafka(self, positions: Mapping[tuple[str, int], int], *, wait: bool) -> None:
        """Asynchronous while running (a round trip per window cost ~5% of the consume
        rate, and the store's offsets are the ones that count); blocking when forced, so
        a clean shutdown leaves Kafka's copy equal to the store's."""
        if not positions:
            return
        offsets = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                   for (t, p), o in positions.items()}
        try:
            if wait:
                self.consumer.commit(offsets)
            else:
                self.consumer.commit_async(offsets, callback=_log_commit_failure)
        except Exception as exc:  # the store holds the truth; Kafka's copy is for lag tools
            log.warning("kafka offset commit failed (the state store has them): %s", exc)


def _log_commit_failure(_offsets: Any, response: Any) -> None:
    if isinstance(response, Exception):
        log.warning("kafka offset commit failed (the state store has them): %s", response)


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
