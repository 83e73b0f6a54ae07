"""Labels read in step with their predictions when both topics hold a backlog.

After downtime, a consumer-group reset or a pre-produced replay, both topics hold a
backlog, and the consumer's fetches serve the small label records far ahead of their
predictions (one fetch carries ~8x more labels than predictions). Every label then
waits in the state store (an INSERT) until its prediction takes it out again (a
DELETE ... RETURNING), instead of both pairing in memory within one persist
(:meth:`monitor.stream.persist.Persister._join`). Kafka Streams has the same problem
between the partitions of a task and solves it with stream-time synchronization; this
is that, for the labels topic against the predictions topic, on record timestamps
(the time each record was produced, so a backlog is read in the order it was written):

1. per poll, per predictions partition: its newest record timestamp polled, and whether
   it still has a backlog (the offset after its last record polled is below the broker's
   high-water mark, and it delivered records in one of the last few polls);
2. label records polled are held back in memory, and released, in offset order, as far
   as their timestamps are at most the *horizon*: the newest timestamp of the slowest
   predictions partition that still has a backlog, plus ``kafka.label_alignment_seconds``;
   with no predictions partition in backlog everything is released (the live case,
   where labels arrive after their predictions, is never held);
3. a labels partition with records held back is paused (``consumer.pause``), so at most
   one poll's worth waits per partition; it is resumed once nothing of it is held.

Invariants: a held record is not handled, so the processed mark (and every stored and
committed offset) stays below it; a restart, a rewind or a rebalance drops what is held
and the partition is read again from the stored offset (every such path seeks, or the
partition is gone). kafka-python (3.x, KAFKA-7548) keeps the already-fetched records of
a paused partition parked and returns them after ``resume``, so pausing neither loses
nor skips a record (its position does not move), and it drops the paused state of
revoked partitions with them. One defect of it is worked around (:func:`_unpark`).
Never held for ever: a predictions partition counts as in backlog only while records
below the broker's end are still to be read from it and it keeps delivering them (a
transaction marker at the end of a log occupies an offset no record is returned for).
(The offset after the last record polled stands for the position: kafka-python's
``position()`` may send requests.)
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Any

from kafka import TopicPartition

from monitor.config import KafkaConfig
from monitor.ingest import Consumer
from monitor.stream.partitions import TopicPartitionKey

__all__ = ["LabelAlignment"]

_TIMESTAMP = attrgetter("timestamp")
# a predictions partition that delivered nothing for this many polls is not in backlog
STALE_POLLS = 5


class LabelAlignment:
    """Holds back label records ahead of the predictions; one per service, on the consumer
    thread."""

    def __init__(self, predictions_topic: str, labels_topic: str, slack_seconds: float) -> None:
        self.predictions_topic = predictions_topic
        self.labels_topic = labels_topic
        self.slack_ms = int(slack_seconds * 1000)
        # per predictions partition: the newest record timestamp polled (ms since the
        # epoch), the offset after its last record polled, and polls since it delivered
        self.newest: dict[TopicPartitionKey, int] = {}
        self.next_offset: dict[TopicPartitionKey, int] = {}
        self.quiet: dict[TopicPartitionKey, int] = {}
        # label records polled but not released yet, per labels partition, in offset order
        self.held: dict[TopicPartitionKey, list[Any]] = {}

    @classmethod
    def of(cls, kafka: KafkaConfig, joins_labels: bool) -> LabelAlignment | None:
        """Only when a model joins labels (else they are only counted) and it is not
        turned off."""
        if kafka.label_alignment_seconds <= 0 or not joins_labels:
            return None
        return cls(kafka.predictions_topic, kafka.labels_topic, kafka.label_alignment_seconds)

    def take(self, batches: dict[Any, list[Any]], consumer: Consumer, *,
             hunting: bool) -> dict[Any, list[Any]]:
        """The records of one poll to handle now (:meth:`align`); a poison hunt, which
        reads one record at a time, gets everything held at once (:meth:`release`)."""
        if not hunting:
            return self.align(batches, consumer)
        released = self.release(consumer)
        return {tp: released.pop(tp, []) + batches.get(tp, [])
                for tp in batches.keys() | released.keys()}

    def align(self, batches: Mapping[Any, list[Any]], consumer: Consumer) -> dict[Any, list[Any]]:
        """The records of one poll to handle now: the poll's predictions, and the label
        records (held before, then polled now) up to the horizon. Pauses the labels
        partitions that still hold records and resumes the others."""
        out: dict[Any, list[Any]] = {}
        for tp, records in batches.items():
            if tp.topic == self.labels_topic:
                if records:
                    self.held.setdefault((tp.topic, tp.partition), []).extend(records)
                continue
            out[tp] = records
        self._observe(batches)
        horizon = self._horizon(consumer)
        for key, records in list(self.held.items()):
            cut = len(records) if horizon is None else \
                bisect_right(records, horizon, key=_TIMESTAMP)
            if cut:
                out[TopicPartition(*key)] = records[:cut]
            if cut == len(records):
                del self.held[key]
            else:
                self.held[key] = records[cut:]
        self._pause_held(consumer)
        _unpark(consumer)
        return out

    def release(self, consumer: Consumer) -> dict[Any, list[Any]]:
        """Everything held, at once, and every labels partition resumed (the poison hunt
        reads one record at a time and must see every partition)."""
        out = {TopicPartition(*key): records for key, records in self.held.items()}
        self.held.clear()
        self._pause_held(consumer)
        _unpark(consumer)
        return out

    def forget(self, partitions: Iterable[TopicPartitionKey]) -> None:
        """Partitions revoked, lost or rewound: what is held of them is read again from
        the stored offset (by whoever owns them)."""
        for key in partitions:
            for state in (self.held, self.newest, self.next_offset, self.quiet):
                state.pop(key, None)

    def clear(self) -> None:
        for state in (self.held, self.newest, self.next_offset, self.quiet):
            state.clear()

    @property
    def paused(self) -> int:
        """Labels partitions held back now."""
        return len(self.held)

    def _observe(self, batches: Mapping[Any, list[Any]]) -> None:
        for key in self.quiet:
            self.quiet[key] += 1
        for tp, records in batches.items():
            if records and tp.topic == self.predictions_topic:
                key = (tp.topic, tp.partition)
                self.newest[key] = records[-1].timestamp
                self.next_offset[key] = records[-1].offset + 1
                self.quiet[key] = 0

    def _horizon(self, consumer: Consumer) -> int | None:
        """Label records up to this timestamp may be handled; None: all of them."""
        behind: int | None = None
        for tp in consumer.assignment():
            key = (tp.topic, tp.partition)
            newest = self.newest.get(key)
            if newest is None or newest < 0 or self.quiet[key] >= STALE_POLLS:
                continue  # not a predictions partition, no timestamps, or not delivering
            end = consumer.highwater(tp)
            if end is None or self.next_offset[key] >= end:
                continue  # nothing left to read
            behind = newest if behind is None else min(behind, newest)
        return None if behind is None else behind + self.slack_ms

    def _pause_held(self, consumer: Consumer) -> None:
        """Paused exactly while something of it is held (kafka-python refuses partitions
        no longer assigned)."""
        assigned = consumer.assignment()
        paused = {tp for tp in consumer.paused() if tp.topic == self.labels_topic}
        wanted = {TopicPartition(*key) for key in self.held} & assigned
        if wanted - paused:
            consumer.pause(*(wanted - paused))
        if paused - wanted:
            consumer.resume(*((paused - wanted) & assigned))



def _unpark(consumer: Consumer) -> None:
    """Work around kafka-python 3.0.12 (unchanged on its main branch, 2026-07): the parsed
    records of a partition paused in the middle of a fetch are parked, and put back only
    while the fetcher's in-line slot is None; but a drained slot keeps an empty (falsy)
    record set, and a partition with parked records is never fetched, so a resumed labels
    partition would never be read again (seen: the service stuck in ``poll()`` with its
    labels at 40,000 of 100,000). An empty slot is set to None, which is what it means,
    before each poll."""
    fetcher = getattr(consumer, "_fetcher", None)
    slot = getattr(fetcher, "_next_partition_records", None)
    if slot is not None and not slot:
        fetcher._next_partition_records = None  # type: ignore[union-attr]
