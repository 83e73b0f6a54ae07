"""What the consumer loop knows per consumed partition, and how a restart gets it back.

Per (topic, partition) the loop keeps the *processed mark* (the offset after the
last record handled), the broker's id of the topic incarnation being read, and
whether this process owns the partition (restored at assignment, forgotten at
revocation). The marks are stored as checkpoint rows of the pseudo-model ``*``
(``version`` = topic, ``kind`` = ``processed:p<partition>``) in the same
transaction as the windows they cover.

A re-created topic (deleted and created again; a broker without durable storage,
such as Tansu's memory engine, restarts with empty topics) starts again at offset
0 under a new topic id. The stored offsets count records of the old log, so a
partition whose stored topic id differs from the broker's is read from its start
(its open windows carry on). Without the id check the seek would land past
records of the new log, or out of range, where kafka-python's
``auto_offset_reset`` rewinds to 0 and the records below the old position would be
skipped as already handled: lost either way. Brokers that send no topic ids
(before metadata v10) keep the old behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ALL_MODELS", "PartitionMark", "Partitions", "Replay", "TopicPartitionKey",
           "topic_id"]

log = logging.getLogger("driftloop.service")

TopicPartitionKey = tuple[str, int]
ALL_MODELS = "*"  # checkpoint rows of a partition rather than of a model
_MARK_PREFIX = "processed:p"


def topic_id(consumer: Any, topic: str) -> str | None:
    """The broker's id of ``topic`` (KIP-516) from the consumer's metadata, or None.

    kafka-python keeps topic ids in its cluster metadata without a public accessor;
    brokers before metadata v10 send none (or the zero id).
    """
    try:
        found = consumer._client.cluster.topic_id(topic)
    except AttributeError:
        return None
    return str(found) if found is not None and getattr(found, "int", 1) != 0 else None


@dataclass(frozen=True)
class PartitionMark:
    """A stored processed mark: the next offset to handle, the topic incarnation, the
    KServe halves of the partition still waiting for their partner, and what a restart
    re-reads to rebuild the streams whose state was not written since it changed:
    ``replay_from``, the lowest offset to read again (None: ``processed``, as a mark
    written before snapshots were has it), and ``fresh``, the (model, version, first
    offset) of the partition's streams that have no stored checkpoint at all.
    ``forwarded`` (a partition of the kserve topic, issue 15): (source partition, the
    highest source offset handled, the source topic's id or "") of the forwarded halves
    below ``processed``."""

    processed: int
    topic_id: str | None
    pending: tuple[str, ...] = ()
    replay_from: int | None = None
    fresh: tuple[tuple[str, str, int], ...] = ()
    forwarded: tuple[tuple[int, int, str], ...] = ()

    @staticmethod
    def kind(partition: int) -> str:
        return f"{_MARK_PREFIX}{partition}"

    @staticmethod
    def partition_of(kind: str) -> int | None:
        return int(kind.removeprefix(_MARK_PREFIX)) if kind.startswith(_MARK_PREFIX) else None

    @property
    def replay_start(self) -> int:
        """The lowest offset a restart must read again for the partition's streams."""
        return self.processed if self.replay_from is None else self.replay_from

    def to_dict(self) -> dict[str, Any]:
        return {"processed": self.processed, "topic_id": self.topic_id,
                "pending": list(self.pending), "replay_from": self.replay_from,
                "fresh": [list(f) for f in self.fresh],
                **({"forwarded": [list(f) for f in self.forwarded]} if self.forwarded else {})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartitionMark:
        replay_from = data.get("replay_from")
        return cls(int(data["processed"]), data.get("topic_id"),
                   tuple(str(i) for i in data.get("pending") or ()),
                   None if replay_from is None else int(replay_from),
                   tuple((str(m), str(v), int(o)) for m, v, o in data.get("fresh") or ()),
                   tuple((int(p), int(o), str(i)) for p, o, i in data.get("forwarded") or ()))


@dataclass
class Replay:
    """What a restart must read again of one partition to rebuild its streams: from
    ``start``, and the streams to rebuild from nothing, (model, version, first offset)."""

    start: int
    fresh: list[tuple[str, str, int]]


class Partitions:
    """Processed marks, topic ids and ownership of the partitions this process consumes."""

    def __init__(self) -> None:
        # the offset after the last record handled, per owned partition
        self.processed: dict[TopicPartitionKey, int] = {}
        # the broker's id of the topic incarnation read since assignment
        self.topic_ids: dict[TopicPartitionKey, str | None] = {}
        self.owned: set[TopicPartitionKey] = set()
        # the fencing token of each owned partition (monitor.store.ownership)
        self.epochs: dict[TopicPartitionKey, int] = {}
        self.dirty = False

    def owns(self, tp: TopicPartitionKey) -> bool:
        return tp in self.owned

    def handled(self, tp: TopicPartitionKey) -> int:
        """Records below this offset were handled before (a replay after a restart)."""
        return self.processed.get(tp, -1)

    def advance(self, tp: TopicPartitionKey, next_offset: int) -> None:
        """Offsets only move forward within a checkpoint."""
        self.processed[tp] = max(self.handled(tp), next_offset)
        self.dirty = True

    def adopt(
        self,
        wanted: Iterable[TopicPartitionKey],
        stored_offsets: Mapping[TopicPartitionKey, int],
        marks: Mapping[TopicPartitionKey, PartitionMark],
        current_ids: Mapping[TopicPartitionKey, str | None],
        epochs: Mapping[TopicPartitionKey, int],
    ) -> dict[TopicPartitionKey, int]:
        """Take ownership of newly assigned partitions; returns the offsets to seek to."""
        wanted = set(wanted)
        self.epochs.update({tp: epochs[tp] for tp in wanted if tp in epochs})
        seeks = {tp: offset for tp, offset in stored_offsets.items() if tp in wanted}
        for tp in wanted:
            mark = marks.get(tp)
            current = current_ids.get(tp)
            if mark is not None and mark.topic_id and current and mark.topic_id != current:
                log.warning("topic %s partition %d was re-created (topic id changed): reading "
                            "it from the start instead of the stored offset %s", tp[0], tp[1],
                            seeks.get(tp))
                seeks[tp] = 0
                self.processed[tp] = 0
            elif mark is not None:
                self.processed[tp] = mark.processed
            if tp in seeks:
                self.processed.setdefault(tp, seeks[tp])
            self.topic_ids[tp] = current
        self.owned |= wanted
        return seeks

    def forget(self, gone: Iterable[TopicPartitionKey]) -> None:
        for tp in gone:
            self.processed.pop(tp, None)
            self.topic_ids.pop(tp, None)
            self.epochs.pop(tp, None)
            self.owned.discard(tp)

    def clear(self) -> None:
        self.processed.clear()
        self.topic_ids.clear()
        self.owned.clear()
        self.epochs.clear()
        self.dirty = False

    def marks(self, pending: Mapping[TopicPartitionKey, list[str]] | None = None,
              replays: Mapping[TopicPartitionKey, Replay] | None = None,
              forwarded: Mapping[TopicPartitionKey, Mapping[int, tuple[int, str]]] | None = None
              ) -> dict[TopicPartitionKey, PartitionMark]:
        """What to store: the id read at assignment, not the current one (metadata may
        already name a re-created topic while these offsets still count the old one);
        ``replays``: what a restart must read again per partition (none: nothing);
        ``forwarded``: per kserve-topic partition, source partition -> (highest offset,
        source topic id)."""
        pending, replays, forwarded = pending or {}, replays or {}, forwarded or {}
        marks = {}
        for tp, offset in self.processed.items():
            replay = replays.get(tp)
            marks[tp] = PartitionMark(
                offset, self.topic_ids.get(tp), tuple(pending.get(tp, ())),
                None if replay is None else min(offset, replay.start),
                () if replay is None else tuple(sorted(replay.fresh)),
                tuple(sorted((p, o, i) for p, (o, i) in forwarded.get(tp, {}).items())))
        return marks

    def commit_positions(
        self, held_back: Mapping[TopicPartitionKey, int]
    ) -> dict[TopicPartitionKey, int]:
        """Next offsets safe to commit: never past an offset ``held_back`` (a KServe half
        still waiting for its partner)."""
        positions = dict(self.processed)
        for tp, lowest in held_back.items():
            if tp in positions:
                positions[tp] = min(positions[tp], lowest)
        return positions
