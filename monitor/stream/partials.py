"""Partial window summaries (issue 15): what a replica publishes for a model's owner.

With ``kafka.partials`` on, a replica does not evaluate the event-time windows its
partitions close. Each closed window of a (model, version, partition) stream becomes a
:class:`Partial` on the internal topic ``kafka.partials_topic``, keyed by model, so one
partition of that topic, and the replica Kafka assigns it to, owns the model
(:mod:`monitor.stream.owner` merges). A partial carries its identity (model, version,
source topic and partition, window index), the window's bounds, the offset range it
covers, its rows, the late events its stream saw since its previous partial, the packed
window (``OpenWindow.to_dict(packed=True)``: counts over the baseline's bins, which
merge exactly) and the stream's watermark.

A partial's partition is the stream partition its window closed in: with
``kafka.kserve_split`` a KServe pair's window closes in the stream of its kserve
partition q, ``SPLIT_STREAMS + q``, and its partial names the kserve topic.

Heartbeats are partials without a window: per (model, source partition), the
partition's watermark for the model, so the model's watermark (the minimum over the
source partitions) advances also when a partition has no window to close. A partition
reports the lowest watermark of the model's streams on it (an idle stream's moves on
with the clock, as ``Stream.close_idle`` closes its windows); without a stream of the
model, the highest watermark of the partition's other streams (a partition's event
time moves for every model on it); without any, ``idle`` once the partition has been
held for the model's idle timeout with nothing on it.

Order: a replica publishes a window's partial before any heartbeat whose watermark
passes the window's end, on the same topic partition (the model's key), so the owner
has every partial of a window when the model's watermark passes it. Partials are
flushed before the persist that commits the offsets past their events
(publish-then-commit: at least once; the owner drops copies by identity).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka.partitioner.default import murmur2

from monitor.store.engine import pack_state, unpack_state
from monitor.stream.kserve_split import stream_source
from monitor.stream.pipeline import ModelPipeline
from monitor.stream.window_state import MAX_EXTRA_KEYS, ClosedWindow, OpenWindow
from monitor.stream.windows import Stream

__all__ = ["PARTIAL_FORMAT", "Partial", "PartialPublisher", "merge_windows", "owner_partition",
           "partition_report"]

PARTIAL_FORMAT = 1
KEEPALIVE_SECONDS = 5.0  # an unchanged report is sent again this often


@functools.lru_cache(maxsize=4096)
def owner_partition(model: str, partitions: int) -> int:
    """The partials-topic partition of ``model``: Kafka's default partitioner (murmur2 of
    the key), computed here so the owner knows which models its partitions hold. Cached:
    asked at every step (which models this replica owns) and murmur2 runs in Python."""
    return (murmur2(model.encode()) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class Partial:
    """One closed window of one source partition, or a heartbeat (``index`` None)."""

    model: str
    version: str  # "" for a heartbeat: it speaks for every version of the model
    topic: str
    partition: int
    watermark_ms: int | None
    idle: bool = False  # heartbeat: nothing of the model on the partition for a while
    index: int | None = None
    start_ms: int | None = None  # the window's bounds
    end_ms: int | None = None
    first_offset: int | None = None  # the source offsets the window's events lie in
    last_offset: int | None = None
    n_rows: int = 0
    late: int = 0
    window: Mapping[str, Any] | None = None  # OpenWindow.to_dict(packed=True)

    @property
    def identity(self) -> tuple[str, str, int, int | None]:
        return (self.model, self.version, self.partition, self.index)

    def encode(self) -> bytes:
        return pack_state({
            "format": PARTIAL_FORMAT, "model": self.model, "version": self.version,
            "topic": self.topic, "partition": self.partition,
            "watermark_ms": self.watermark_ms, "idle": self.idle, "index": self.index,
            "start_ms": self.start_ms, "end_ms": self.end_ms,
            "first_offset": self.first_offset, "last_offset": self.last_offset,
            "n_rows": self.n_rows, "late": self.late,
            "window": None if self.window is None else dict(self.window)})

    @classmethod
    def decode(cls, blob: bytes) -> Partial:
        data = unpack_state(blob)
        if not isinstance(data, dict) or data.get("format") != PARTIAL_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"partial window summary: got format {found!r}, expected "
                             f"{PARTIAL_FORMAT}")
        return cls(
            model=str(data["model"]), version=str(data["version"]), topic=str(data["topic"]),
            partition=int(data["partition"]), watermark_ms=_int(data["watermark_ms"]),
            idle=bool(data["idle"]), index=_int(data["index"]),
            start_ms=_int(data["start_ms"]), end_ms=_int(data["end_ms"]),
            first_offset=_int(data["first_offset"]), last_offset=_int(data["last_offset"]),
            n_rows=int(data["n_rows"]), late=int(data["late"]), window=data["window"])


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def merge_windows(a: OpenWindow, b: OpenWindow) -> OpenWindow:
    """One window of the rows of both (same index and baseline): counts add exactly, float
    sums up to their order of addition; associative and commutative."""
    if a.index != b.index or a.baseline != b.baseline:
        raise ValueError(f"window merge: got window {b.index} on baseline {b.baseline!r}, "
                         f"expected window {a.index} on {a.baseline!r}")
    confidence = a.confidence if b.confidence is None else (
        b.confidence if a.confidence is None else a.confidence.merge(b.confidence))
    merged = OpenWindow(
        index=a.index, summary=a.summary.merge(b.summary), first_offset=None,
        start_ms=_least(a.start_ms, b.start_ms, min), end_ms=_least(a.end_ms, b.end_ms, max),
        n_rows=a.n_rows + b.n_rows, baseline=a.baseline,
        extra_keys_beyond=a.extra_keys_beyond + b.extra_keys_beyond, confidence=confidence)
    names = a.extra_keys | b.extra_keys
    # the same names a single stream keeps for all of them: the first MAX_EXTRA_KEYS sorted
    merged.extra_keys = set(sorted(names)[:MAX_EXTRA_KEYS])
    merged.extra_keys_beyond += len(names) - len(merged.extra_keys)
    return merged


def _least(a: int | None, b: int | None, pick: Callable[[int, int], int]) -> int | None:
    if a is None or b is None:
        return b if a is None else a
    return pick(a, b)


def effective_watermark(stream: Stream, now_ms: int, idle_ms: int | None) -> int | None:
    """The stream's watermark as ``close_idle`` moves it: on with the clock once the stream
    has been without events for ``idle_ms``, but not past the close of a window it still
    holds open. Housekeeping closes idle windows once a second and heartbeats go out at
    every step: reported further, the owner would merge that window before this
    partition's partial of it came, and count the partial's rows as late."""
    if stream.watermark_ms is None:
        return None
    if idle_ms is None or stream.touched_ms is None or now_ms - stream.touched_ms < idle_ms:
        return stream.watermark_ms
    moved = stream.watermark_ms + (now_ms - stream.touched_ms)
    if stream.open and stream.duration_ms is not None:
        first_close = (min(stream.open) + 1) * stream.duration_ms + stream.lateness_ms
        moved = min(moved, max(stream.watermark_ms, first_close - 1))
    return moved


def partition_report(pipeline: ModelPipeline, others: Iterable[ModelPipeline], partition: int,
                     now_ms: int, held_since_ms: int) -> tuple[int | None, bool] | None:
    """(watermark, idle) of ``partition`` for ``pipeline``'s model, or None: not known yet
    (the module docstring says how)."""
    idle_ms = pipeline.idle_timeout_ms()
    own = [effective_watermark(s, now_ms, idle_ms)
           for (_, p), s in pipeline.streams.items() if p == partition]
    known = [w for w in own if w is not None]
    if own:
        return (min(known), False) if len(known) == len(own) else None
    marks = [effective_watermark(s, now_ms, other.idle_timeout_ms())
             for other in others for (_, p), s in other.streams.items() if p == partition]
    seen = [w for w in marks if w is not None]
    if seen:
        return max(seen), False
    if idle_ms is not None and now_ms - held_since_ms >= idle_ms:
        return None, True
    return None


@dataclass
class PartialPublisher:
    """Sends partials and heartbeats with the service's producer (set once connected)."""

    topic: str
    partitions: int  # of the partials topic
    source_topic: str
    heartbeat_seconds: float
    producer: Any = None
    clock: Callable[[], float] = time.time
    split_topic: str | None = None  # kafka.kserve_split: its partitions are sources too
    # (model, source partition) -> the last report sent, (watermark, idle), and when
    _sent: dict[tuple[str, int], tuple[tuple[int | None, bool], float]] = field(
        default_factory=dict)

    def window(self, closed: ClosedWindow, stream: Stream | None, last_offset: int | None
               ) -> Partial:
        window = closed.window
        assert closed.partition is not None
        late = 0
        if stream is not None:
            late, stream.late_rows = stream.late_rows, 0
        partial = Partial(
            model=closed.model, version=closed.version, topic=self._topic(closed.partition),
            partition=closed.partition,
            watermark_ms=None if stream is None else stream.watermark_ms, index=window.index,
            start_ms=closed.bounds_ms[0], end_ms=closed.bounds_ms[1],
            first_offset=window.first_offset, last_offset=last_offset, n_rows=window.n_rows,
            late=late, window=window.to_dict(packed=True))
        self._send(partial)
        return partial

    def heartbeats(self, pipelines: Mapping[str, ModelPipeline], held: Mapping[int, int],
                   now_ms: int) -> int:
        """Report each held source partition's watermark to the owner of each event-time
        model, when it moved (at most every ``heartbeat_seconds``, at once past a window
        boundary) or every KEEPALIVE_SECONDS; ``held``: partition -> held since (ms)."""
        sent = 0
        now = self.clock()
        timed = [p for p in pipelines.values() if p.config.window.duration is not None]
        for pipeline in timed:
            duration_ms = int(1000 * (pipeline.config.window.duration or 1))
            others = [p for p in timed if p is not pipeline]
            for partition, since_ms in held.items():
                report = partition_report(pipeline, others, partition, now_ms, since_ms)
                if report is None:
                    continue
                last = self._sent.get((pipeline.name, partition))
                if last is not None:
                    (before, _), sent_s = last
                    crossed = (report[0] is not None and before is not None
                               and report[0] // duration_ms != before // duration_ms)
                    if report == last[0] and now - sent_s < KEEPALIVE_SECONDS:
                        continue
                    if report != last[0] and not crossed and now - sent_s < \
                            self.heartbeat_seconds:
                        continue
                self._sent[(pipeline.name, partition)] = (report, now)
                self._send(Partial(model=pipeline.name, version="", topic=self._topic(partition),
                                   partition=partition, watermark_ms=report[0],
                                   idle=report[1]))
                sent += 1
        return sent

    def forget(self, partitions: Iterable[int] | None) -> None:
        """Source partitions no longer held (None: all): reported afresh when held again."""
        if partitions is None:
            self._sent.clear()
            return
        gone = set(partitions)
        for key in [k for k in self._sent if k[1] in gone]:
            del self._sent[key]

    def _topic(self, stream_partition: int) -> str:
        return stream_source(stream_partition, self.source_topic, self.split_topic)[0]

    def _send(self, partial: Partial) -> None:
        assert self.producer is not None, "partials: not connected"
        # one partition per model, so a model's partials keep their order: a window's partial
        # before the heartbeat that passes its end (kafka-python's idempotent producer, on by
        # default, keeps the order through retries)
        self.producer.send(self.topic, key=partial.model.encode(), value=partial.encode(),
                           partition=owner_partition(partial.model, self.partitions))

    def flush(self) -> None:
        if self.producer is not None:
            self.producer.flush()
