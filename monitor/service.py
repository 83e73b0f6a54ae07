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
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from monitor.codecs import DecodeError, Decoder
from monitor.config import Config
from monitor.deadletter import DeadLetterWriter
from monitor.events import Label, Prediction
from monitor.metrics import Metrics
from monitor.pipeline import ModelPipeline, WindowOutput
from monitor.store import PendingLabel, PendingPrediction, Store

__all__ = ["Reactor", "Service", "StepStats"]

log = logging.getLogger("driftloop.service")

PERFORMANCE_KIND = "performance"
ALL_VERSIONS = "*"
ALL_MODELS = "*"  # checkpoint rows of a partition rather than of a model


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


class Service:
    def __init__(
        self,
        config: Config,
        pipelines: Mapping[str, ModelPipeline],
        store: Store,
        metrics: Metrics,
        decoder: Decoder,
        consumer: Any,
        dead_letters: DeadLetterWriter,
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
        self._restored_partitions: set[tuple[str, int]] = set()

    # -- start-up and rebalances --------------------------------------------------------
    def restore(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Load the checkpoints of newly assigned partitions; returns offsets to seek to."""
        wanted = set(partitions) - self._restored_partitions
        if not wanted:
            return {}
        stored = self.store.offsets(self.group)
        predictions_topic = self.config.kafka.predictions_topic
        wanted_prediction_partitions = {p for t, p in wanted if t == predictions_topic}
        first_restore = not self._restored_partitions
        for checkpoint in self.store.load_checkpoints():
            if not isinstance(checkpoint.state, dict):
                continue
            if checkpoint.model == ALL_MODELS:
                tp = (checkpoint.version, int(checkpoint.kind.removeprefix("processed:p")))
                if tp in wanted:
                    self.processed[tp] = int(checkpoint.state["processed"])
                continue
            pipeline = self.pipelines.get(checkpoint.model)
            if pipeline is None:
                continue
            if checkpoint.kind == PERFORMANCE_KIND:
                if first_restore:
                    pipeline.restore_performance(checkpoint.state)
                continue
            partition = int(checkpoint.kind.lstrip("p"))
            if partition in wanted_prediction_partitions:
                pipeline.stream(checkpoint.version, partition).restore(checkpoint.state)
        self._restored_partitions |= wanted
        seeks = {tp: offset for tp, offset in stored.items() if tp in wanted}
        for tp, offset in seeks.items():
            self.processed.setdefault(tp, offset)
        return seeks

    def revoke(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Persist everything before partitions leave; forget their streams."""
        self.persist(force=True, commit_kafka=False)
        gone = set(partitions)
        topic = self.config.kafka.predictions_topic
        for pipeline in self.pipelines.values():
            for key in [k for k in pipeline.streams if (topic, k[1]) in gone]:
                del pipeline.streams[key]
        for tp in gone:
            self.processed.pop(tp, None)
        self.decoder.joiner.drop_partitions(gone)
        self._restored_partitions -= gone
        self.metrics.forget_partitions(gone)

    def rewind(self, assigned: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Forget everything not persisted and reload from the store, as a restart would.

        Used after a failed step (store or broker trouble half-way): the stored state
        and offsets are consistent, memory may not be. Returns offsets to seek to.
        """
        for pipeline in self.pipelines.values():
            pipeline.streams.clear()
            pipeline.restore_performance({})
        assigned = set(assigned)
        self.decoder.joiner.drop_partitions(assigned | set(self.processed))
        self.processed.clear()
        self._pending_predictions, self._pending_labels, self._outputs = [], [], []
        self._dirty_positions = False
        self._restored_partitions = set()
        return self.restore(assigned)

    # -- one pass -----------------------------------------------------------------------
    def step(self, timeout_ms: int = 200) -> StepStats:
        stats = StepStats()
        batches = self.consumer.poll(timeout_ms=timeout_ms,
                                     max_records=self.config.kafka.poll_max_records)
        events: Counter[tuple[str, str, str]] = Counter()
        invalid: Counter[str] = Counter()
        labels_topic = self.config.kafka.labels_topic
        for tp, records in batches.items():
            if not records:
                continue
            key = (tp.topic, tp.partition)
            # records below this offset were handled before a restart; a KServe half
            # among them is fed to the joiner again, but nothing is emitted twice
            handled = self.processed.get(key, -1)
            is_labels = tp.topic == labels_topic
            for record in records:
                replayed = record.offset < handled
                stats.records += 1
                try:
                    if is_labels:
                        label = self.decoder.decode_label(record)
                        if not replayed:
                            self._on_label(label)
                            events[(label.model, "", "label")] += 1
                            stats.labels += 1
                    else:
                        for prediction in self.decoder.decode_prediction(record):
                            if replayed:
                                continue
                            self._on_prediction(prediction)
                            events[(prediction.model, prediction.version, "prediction")] += 1
                            stats.predictions += 1
                except DecodeError as error:
                    if not replayed:
                        invalid[error.reason] += 1
                        self.dead_letters.write(record, error)
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

    def _on_prediction(self, event: Prediction) -> None:
        pipeline = self.pipelines[event.model]
        for closed in pipeline.add(event):
            started = time.perf_counter()
            self._outputs.append(pipeline.evaluate(closed))
            self.metrics.observe_evaluation(event.model, time.perf_counter() - started)
        ttl_ms = int(pipeline.config.performance.label_ttl * 1000)
        self._pending_predictions.append(PendingPrediction(
            model=event.model, request_id=event.request_id, version=event.version,
            prediction=event.prediction, timestamp_ms=event.timestamp_ms,
            expires_at_ms=event.timestamp_ms + ttl_ms, score=event.score, scores=event.scores))

    def _on_label(self, event: Label) -> None:
        ttl_ms = int(self.pipelines[event.model].config.performance.label_ttl * 1000)
        self._pending_labels.append(PendingLabel(
            model=event.model, request_id=event.request_id, label=event.label,
            timestamp_ms=event.timestamp_ms, expires_at_ms=event.timestamp_ms + ttl_ms))

    # -- persistence: one transaction -------------------------------------------------------
    def persist(self, force: bool = False, *, commit_kafka: bool = True) -> list[WindowOutput]:
        """Write what is due in one transaction; ``commit_kafka=False`` inside rebalance
        callbacks, which run on kafka-python's IO thread and must not block on it."""
        due = (self.clock() - self._last_persist) >= self.config.kafka.commit_interval_seconds
        buffered = len(self._pending_predictions) + len(self._pending_labels)
        if not (force or due or self._outputs or buffered >= 50_000):
            return []
        if not (self._dirty_positions or self._outputs or force):
            self._last_persist = self.clock()
            return []
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
            by_model: dict[str, list[Any]] = {}
            for pair in pairs:
                by_model.setdefault(pair.model, []).append(pair)
            for model, model_pairs in by_model.items():
                for version, _index, result in self.pipelines[model].add_pairs(model_pairs):
                    performance.append((model, version, result))
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
                tx.save_checkpoint(ALL_MODELS, topic, f"processed:p{partition}",
                                   {"processed": processed}, {})
        n_pairs = len(pairs)
        self._outputs = []
        self._pending_predictions, self._pending_labels = [], []
        self._dirty_positions = False
        self._last_persist = self.clock()
        self._export(outputs, performance, n_pairs, by_model)
        if commit_kafka:
            self._commit_kafka(positions)
        return outputs

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

    def _commit_kafka(self, positions: Mapping[tuple[str, int], int]) -> None:
        if not positions:
            return
        try:
            self.consumer.commit({
                TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                for (t, p), o in positions.items()
            })
        except Exception as exc:  # the store holds the truth; Kafka's copy is for lag tools
            log.warning("kafka offset commit failed (the state store has them): %s", exc)
