"""Scale-out glue (issue 15, ``kafka.partials``): what :class:`monitor.stream.Service` asks
of the partial summaries (:mod:`monitor.stream.partials`) and the model owner
(:mod:`monitor.stream.owner`).

One consumer, one group: the service subscribes to the partials topic next to the
predictions and labels topics, so Kafka's group assignment picks each model's owner,
and the partials partitions go through the same restore / fencing epoch / persist /
commit path as every other partition (their offsets and the owner's checkpoint rows are
written in the same transaction as the merged windows' results, and refused with it
when another member took the partition). The price: a change of owner rebalances the
predictions partitions too (the group has one assignment).

With ``kafka.kserve_split`` on too, the KServe pairs count in the streams of the kserve
topic's partitions (stream partition ``SPLIT_STREAMS + q``): their windows are published
as partials like those of the predictions topic's partitions, and a model's sources are
the stream partitions of both topics (``held`` and the heartbeats cover the partitions
of both that this replica holds; the owner waits for a report from each).

The realized performance of a model with event-time windows is kept by its owner too:
the joined pairs are shipped to it through the store (:mod:`monitor.stream.shipping`),
and its performance checkpoint is restored with the model's partials partition.

A model's canary is judged by its owner only (``owns``, asked by the canary job): the
other replicas ship their share of the arms' interval statistics to it through the
store (``ship_arms``), and the owner sums them with its own at the interval's end.

Count windows (``window.rows``) keep their per-partition streams: their boundaries
would need the owner to number rows across partitions, which is not built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from monitor.config import KafkaConfig
from monitor.store import Store
from monitor.stream.arms import ArmAccumulator, pack_arms
from monitor.stream.kserve_split import SPLIT_STREAMS, stream_partitions
from monitor.stream.owner import OWNER_KIND, ModelOwner
from monitor.stream.partials import Partial, PartialPublisher
from monitor.stream.performance import PERFORMANCE_KIND
from monitor.stream.pipeline import ModelPipeline
from monitor.stream.window_state import ClosedWindow

__all__ = ["OWNER_KIND", "ScaleOut"]

log = logging.getLogger("driftloop.service")

TopicPartitionKey = tuple[str, int]

ARMS_SHIP_SECONDS = 1.0  # canary arms of models owned elsewhere go out at most this often


class ScaleOut:
    def __init__(self, kafka: KafkaConfig, pipelines: Mapping[str, ModelPipeline],
                 on_late: Callable[[str, int], None], clock: Callable[[], float]) -> None:
        self.topic = kafka.partials_topic_name
        self.source_topic = kafka.predictions_topic
        # the kserve topic, whose partitions are sources too (kafka.kserve_split)
        self.split_topic = kafka.kserve_topic_name if kafka.kserve_split else None
        self.pipelines = pipelines
        self.clock = clock
        self.publisher = PartialPublisher(self.topic, kafka.partials_partitions,
                                          self.source_topic, kafka.partials_heartbeat_seconds,
                                          clock=clock, split_topic=self.split_topic)
        self.owner = ModelOwner(pipelines, kafka.partials_partitions, on_late)
        self.held: dict[int, int] = {}  # source stream partitions held -> since when (ms)
        self.owned: set[int] = set()  # partials partitions held: their models are ours
        self._arms_shipped = float("-inf")  # when canary arms were last shipped
        self.source_partitions = 0  # of the predictions topic; 0 until known
        self.split_partitions = 0  # of the kserve topic; 0 until known (or no split)
        self.invalid = 0  # partials records that could not be decoded

    def connected(self, consumer: Any, producer: Any) -> None:
        """The Kafka clients are there: the topics' partition counts come from metadata."""
        self.publisher.producer = producer
        found = _partitions_for(consumer, self.topic)
        if found:
            self.publisher.partitions = self.owner.partitions = found

    def publishes(self, pipeline: ModelPipeline) -> bool:
        """Whether the model's closed windows go to its owner instead of being evaluated."""
        return pipeline.config.window.duration is not None

    def owns(self, model: str) -> bool:
        """Whether this replica owns ``model`` now (holds its partials partition). The
        canary job asks from its own thread: one set lookup, safe while the consumer
        thread changes the set."""
        return self.owner.partition_of(model) in self.owned

    def ship_arms(self, arms: ArmAccumulator, store: Store) -> int:
        """The canary arms of the models another replica owns, shipped to it through the
        store (at most every ARMS_SHIP_SECONDS); returns the models shipped. Arms are
        interval statistics: a share the store refuses is lost, with a warning."""
        now = self.clock()
        if now - self._arms_shipped < ARMS_SHIP_SECONDS:
            return 0
        self._arms_shipped = now
        shipped = 0
        for model in arms.specs:
            if self.owns(model):
                continue  # the canary job here takes them itself
            share = arms.take(model)
            if not share:
                continue
            try:
                store.ship_arms(model, pack_arms(share))
                shipped += 1
            except Exception as exc:
                log.warning("canary %s: this replica's interval statistics could not be "
                            "shipped to the model's owner (%s: %s); they are lost",
                            model, type(exc).__name__, exc)
        return shipped

    def ships(self, model: str) -> bool:
        """Whether the model's joined pairs go to its owner (:mod:`monitor.stream.shipping`):
        those of a model whose windows are merged there, and that joins labels."""
        pipeline = self.pipelines.get(model)
        return pipeline is not None and self.publishes(pipeline) and pipeline.joins_labels

    def owned_performance(self) -> set[str]:
        """The models whose realized performance this replica keeps now."""
        return self._performance_of(self.owned)

    def _performance_of(self, partitions: set[int]) -> set[str]:
        """The models of these partials partitions whose realized performance is kept by
        their owner (``ships``)."""
        if not partitions:
            return set()
        return {name for name in self.pipelines
                if self.owner.partition_of(name) in partitions and self.ships(name)}

    def publish(self, pipeline: ModelPipeline, closed: ClosedWindow,
                last_offset: int | None) -> None:
        stream = None if closed.partition is None else \
            pipeline.streams.get((closed.version, closed.partition))
        self.publisher.window(closed, stream, last_offset)

    def on_records(self, records: Iterable[Any], handled: int) -> None:
        """Records of a partials partition (all of them: the owner drops copies)."""
        for record in records:
            try:
                partial = Partial.decode(record.value)
            except Exception as exc:
                self.invalid += 1
                log.warning("%s[%d] offset %d: not a partial window summary (%s); skipped",
                            record.topic, record.partition, record.offset, exc)
                continue
            self.owner.add(partial, record.offset, read_before=record.offset < handled)

    def due(self, consumer: Any) -> list[ClosedWindow]:
        if not self.owner.models:
            return []
        return self.owner.due(self.sources(consumer))

    def sources(self, consumer: Any) -> Sequence[int]:
        """The source stream partitions of every model: the predictions topic's, and with
        the split the kserve topic's past SPLIT_STREAMS; empty until both are known."""
        if not self.source_partitions:
            self.source_partitions = _partitions_for(consumer, self.source_topic)
        if self.split_topic is None:
            return range(self.source_partitions)
        if not self.split_partitions:
            self.split_partitions = _partitions_for(consumer, self.split_topic)
        if not (self.source_partitions and self.split_partitions):
            return ()
        return [*range(self.source_partitions),
                *range(SPLIT_STREAMS, SPLIT_STREAMS + self.split_partitions)]

    def heartbeats(self, now_ms: int) -> int:
        return self.publisher.heartbeats(self.pipelines, self.held, now_ms)

    def held_back(self) -> dict[TopicPartitionKey, int]:
        return {(self.topic, p): o for p, o in self.owner.held_back().items()}

    def take(self, partitions: Iterable[TopicPartitionKey], now_ms: int) -> set[int]:
        """Newly held partitions; returns the partials partitions among them."""
        taken = set(partitions)
        for stream in self._streams(taken):
            self.held.setdefault(stream, now_ms)
        owned = {p for t, p in taken if t == self.topic}
        self.owned |= owned
        return owned

    def restore(self, checkpoints: Iterable[tuple[str, str, Any]], owned: set[int]) -> None:
        """Owner states and performance checkpoints (model, kind, state) of the models of
        the partials partitions just taken; a model with no stored state starts empty."""
        for name in self._performance_of(owned):
            self.pipelines[name].restore_performance({})
        for model, kind, state in checkpoints:
            if not isinstance(state, dict) or self.owner.partition_of(model) not in owned:
                continue
            if kind == OWNER_KIND:
                self.owner.restore(model, state)
            elif kind == PERFORMANCE_KIND and self.ships(model):
                self.pipelines[model].restore_performance(state)

    def forget(self, partitions: Iterable[TopicPartitionKey]) -> None:
        gone = set(partitions)
        sources = self._streams(gone)
        for partition in sources:
            self.held.pop(partition, None)
        self.publisher.forget(sources)
        lost = {p for t, p in gone if t == self.topic}
        self.owner.drop(lost)
        for name in self._performance_of(lost):
            self.pipelines[name].restore_performance({})  # its next owner carries on
        self.owned -= lost

    def _streams(self, partitions: Iterable[TopicPartitionKey]) -> set[int]:
        """The source stream partitions among ``partitions``."""
        return stream_partitions(partitions, self.source_topic, self.split_topic)

    def clear(self) -> None:
        self.held.clear()
        self.owned.clear()
        self.owner.clear()
        self.publisher.forget(None)


def _partitions_for(consumer: Any, topic: str) -> int:
    if consumer is None:
        return 0
    try:
        found = consumer.partitions_for_topic(topic)
    except Exception:  # metadata not there yet: asked again later
        return 0
    return len(found) if found else 0
