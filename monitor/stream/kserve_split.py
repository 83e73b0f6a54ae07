"""KServe halves split across replicas (issue 15, ``kafka.kserve_split``).

The two halves of a KServe call (request and response CloudEvents sharing an id) may
land on partitions of the predictions topic that different replicas own, where they
would never meet. With the split on, Kafka brings them together: a replica does not
pair the halves it reads from the predictions topic; it forwards each, value and
headers unchanged, to the internal kserve topic (``kafka.kserve_topic``), keyed by its
CloudEvents id, so both halves of an id land on one partition of that topic. The
replica assigned that partition (one consumer group for every topic) reads it through
the joiner and decoder as before, and its pairs count in windows of their own streams:
partition ``q`` of the kserve topic is stream partition ``SPLIT_STREAMS + q``, which
no partition of the predictions topic reaches.

Delivery, per the design's section 9:

- forward, then commit: :meth:`KServeSplit.flush` returns only once every forward is
  acknowledged, and the service flushes before the persist that stores the source
  offsets past the forwarded records (a failed forward fails the step, which rewinds
  to the stored offsets and forwards again);
- a crash (or rewind) between the forward and that persist forwards the records again.
  Each forward carries its source partition, offset and topic id (when the broker
  sends ids) in headers, and the forwards of one source partition reach each kserve
  partition in source order (one producer per replica, with ``acks=all`` and
  idempotence, kafka-python's default, keeping the order of retries). So per kserve
  partition, the highest source offset handled per source partition tells a copy: a
  record at or below it is dropped, unless it comes from another incarnation of the
  topic (deleted and created again: its offsets count from 0 again). That map is kept
  in the kserve partition's processed mark (``PartitionMark.forwarded``), written in
  the same transaction as its offsets, so a restart or the next owner keeps dropping.

A record the forward cannot route (not a CloudEvent, or one without an id, empty or
over ``kafka.max_record_bytes``) is decoded where it was read: native events count
there, bad records are dead letters with their reason. A forwarded half that is bad
is a dead letter of the replica that reads it from the kserve topic.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from kafka.errors import KafkaError, KafkaTimeoutError

from monitor.config import KafkaConfig
from monitor.stream.partitions import PartitionMark, TopicPartitionKey

__all__ = [
    "FORWARDED_OFFSET",
    "FORWARDED_PARTITION",
    "FORWARDED_TOPIC_ID",
    "SPLIT_STREAMS",
    "ForwardError",
    "KServeSplit",
    "cloudevent_id",
    "forwarded_from",
    "stream_partition",
    "stream_partitions",
    "stream_source",
]

SPLIT_STREAMS = 1_000_000  # stream partition of kserve partition q: SPLIT_STREAMS + q
FORWARDED_PARTITION = "driftloop_forwarded_partition"
FORWARDED_OFFSET = "driftloop_forwarded_offset"
FORWARDED_TOPIC_ID = "driftloop_forwarded_topic_id"
_FORWARD_HEADERS = (FORWARDED_PARTITION, FORWARDED_OFFSET, FORWARDED_TOPIC_ID)
_STRUCTURED = b"application/cloudevents+json"

log = logging.getLogger("driftloop.service")


class ForwardError(RuntimeError):
    """Forwards the broker did not acknowledge: do not store offsets past their records."""


def cloudevent_id(record: Any, max_record_bytes: int) -> bytes | None:
    """The CloudEvents id a KServe half is forwarded under, or None when the record is
    not one to forward (decoded where it was read, as the decoder tells a CloudEvent:
    ``ce_*`` headers, a CloudEvents content type, or a JSON object with ``specversion``
    and no ``model``)."""
    value = record.value
    if not value or len(value) > max_record_bytes:
        return None
    structured = binary = False
    for key, raw in record.headers or ():
        name = key.lower()
        if name == "ce_id":
            return raw or None
        binary = binary or name.startswith("ce_")
        if name == "content-type" and (raw or b"").lower().startswith(_STRUCTURED):
            structured = True
    if binary:
        return None  # binary mode without an id: a dead letter where it was read
    if not structured and b"specversion" not in value:
        return None  # the usual native record: not parsed here
    try:
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(envelope) is not dict or "specversion" not in envelope \
            or (not structured and "model" in envelope):
        return None
    event_id = envelope.get("id")
    return str(event_id).encode("utf-8") if event_id else None


def forwarded_from(record: Any) -> tuple[int, int, str] | None:
    """(source partition, source offset, source topic id or "") of a forwarded record,
    None without the partition and offset."""
    found: dict[str, int] = {}
    topic_id = ""
    for key, raw in record.headers or ():
        if key == FORWARDED_TOPIC_ID:
            topic_id = (raw or b"").decode("ascii", "replace")
        elif key in _FORWARD_HEADERS:
            try:
                found[key] = int(raw)
            except (TypeError, ValueError):
                return None
    if len(found) != 2:
        return None
    return found[FORWARDED_PARTITION], found[FORWARDED_OFFSET], topic_id


class KServeSplit:
    """The forward (predictions topic side) and the copy filter (kserve topic side)."""

    def __init__(self, kafka: KafkaConfig, producer: Any = None) -> None:
        self.topic = kafka.kserve_topic_name
        self.source_topic = kafka.predictions_topic
        self.max_record_bytes = kafka.max_record_bytes
        self.producer = producer  # set once the Kafka clients are connected
        self._sent: list[Any] = []  # futures of forwards not flushed yet
        # kserve partition -> source partition -> (highest source offset handled, topic id)
        self.seen: dict[int, dict[int, tuple[int, str]]] = {}
        # since start: halves forwarded, copies dropped, records not forwarded by a replica
        self.forwarded = self.copies = self.strays = 0

    # -- the predictions topic's side ----------------------------------------------------
    def forward(self, records: Iterable[Any], handled: int,
                topic_id: str | None = None) -> list[Any]:
        """Records of a predictions partition: the KServe halves at or past ``handled``
        go to the kserve topic; returns the others, to decode here. Halves below
        ``handled`` (a replay) are neither: they were flushed before the mark moved.
        ``topic_id``: the broker's id of the predictions topic read (None: unknown)."""
        incarnation = [(FORWARDED_TOPIC_ID, topic_id.encode("ascii"))] if topic_id else []
        local: list[Any] = []
        for record in records:
            ce_id = cloudevent_id(record, self.max_record_bytes)
            if ce_id is None:
                local.append(record)
            elif record.offset >= handled:
                headers = [(k, v) for k, v in record.headers or () if k not in _FORWARD_HEADERS]
                headers += [(FORWARDED_PARTITION, str(record.partition).encode("ascii")),
                            (FORWARDED_OFFSET, str(record.offset).encode("ascii")),
                            *incarnation]
                timestamp = record.timestamp if record.timestamp is not None \
                    and record.timestamp >= 0 else None
                self._sent.append(self.producer.send(
                    self.topic, key=ce_id, value=record.value, headers=headers,
                    timestamp_ms=timestamp))
        return local

    def flush(self, timeout_seconds: float = 30.0) -> int:
        """Wait until every forward is acknowledged; returns how many were. Raises
        :class:`ForwardError` otherwise (the caller must not store the source offsets;
        the records are read and forwarded again, and the copies dropped)."""
        if not self._sent:
            return 0
        with contextlib.suppress(KafkaTimeoutError):
            self.producer.flush(timeout=timeout_seconds)
        sent, self._sent = self._sent, []
        failures = [exc for exc in map(_failure, sent) if exc is not None]
        if failures:
            raise ForwardError(f"kserve topic {self.topic!r}: {len(failures)} of {len(sent)} "
                               f"forwarded halves not acknowledged: {failures[0]}")
        self.forwarded += len(sent)
        return len(sent)

    # -- the kserve topic's side ---------------------------------------------------------
    def admit(self, partition: int, records: Iterable[Any], handled: int) -> list[Any]:
        """Records of a kserve partition to decode: those below ``handled`` (a replay,
        which rebuilds the joiner's parked halves) and every forward not seen before;
        a copy is at or below the highest source offset seen of its source partition, in
        the same incarnation of the topic (an unknown id matches any). A record without
        the forward's headers was not written by a replica: skipped."""
        seen = self.seen.setdefault(partition, {})
        admitted: list[Any] = []
        copies = self.copies
        for record in records:
            source = forwarded_from(record)
            if source is None:
                self.strays += 1
                log.warning("%s[%d] offset %d: not a forwarded KServe half (no %s and %s "
                            "headers); skipped", record.topic, record.partition, record.offset,
                            FORWARDED_PARTITION, FORWARDED_OFFSET)
                continue
            partition_read, offset, topic_id = source
            if record.offset >= handled:
                last = seen.get(partition_read)
                if last is not None and offset <= last[0] \
                        and (last[1] == topic_id or not last[1] or not topic_id):
                    self.copies += 1
                    continue
                seen[partition_read] = (offset, topic_id)
            admitted.append(record)
        if self.copies > copies:
            log.info("%s[%d]: %d halves forwarded again dropped (their source offsets were "
                     "handled)", self.topic, partition, self.copies - copies)
        return admitted

    def marks(self) -> dict[TopicPartitionKey, dict[int, tuple[int, str]]]:
        """What each held kserve partition's processed mark stores."""
        return {(self.topic, p): dict(seen) for p, seen in self.seen.items()}

    def restore(self, marks: Mapping[TopicPartitionKey, PartitionMark],
                taken: Iterable[TopicPartitionKey],
                current_ids: Mapping[TopicPartitionKey, str | None] | None = None) -> None:
        """The copy filters of kserve partitions just taken: empty when never stored, or
        when the topic was created again since (``current_ids``: the broker's topic ids;
        its partitions are read from their start, see monitor.stream.partitions)."""
        for tp in taken:
            if tp[0] != self.topic:
                continue
            mark = marks.get(tp)
            current = (current_ids or {}).get(tp)
            recreated = mark is not None and bool(mark.topic_id) and bool(current) \
                and mark.topic_id != current
            self.seen[tp[1]] = {} if mark is None or recreated else \
                {p: (o, i) for p, o, i in mark.forwarded}

    def forget(self, partitions: Iterable[TopicPartitionKey] | None = None) -> None:
        """Kserve partitions no longer held (None: all, and the forwards not flushed)."""
        if partitions is None:
            self.seen.clear()
            self._sent = []
            return
        for topic, partition in partitions:
            if topic == self.topic:
                self.seen.pop(partition, None)


def stream_partition(tp: TopicPartitionKey, source_topic: str,
                     split_topic: str | None) -> int | None:
    """The stream partition of ``tp``: the predictions topic's as it is, the kserve
    topic's past SPLIT_STREAMS; None for another topic (labels, partials)."""
    topic, partition = tp
    if topic == source_topic:
        return partition
    if topic == split_topic:
        return SPLIT_STREAMS + partition
    return None


def stream_partitions(partitions: Iterable[TopicPartitionKey], source_topic: str,
                      split_topic: str | None) -> set[int]:
    found = (stream_partition(tp, source_topic, split_topic) for tp in partitions)
    return {p for p in found if p is not None}


def stream_source(stream_partition: int, source_topic: str,
                  split_topic: str | None) -> TopicPartitionKey:
    """The (topic, partition) a stream's events come from."""
    if split_topic is not None and stream_partition >= SPLIT_STREAMS:
        return (split_topic, stream_partition - SPLIT_STREAMS)
    return (source_topic, stream_partition)


def _failure(future: Any) -> BaseException | None:
    if not future.is_done:
        return KafkaError("no acknowledgement before the flush timeout")
    return future.exception if future.failed() else None
