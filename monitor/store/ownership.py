"""Partition ownership with a store-side fencing epoch.

A consumer that is assigned a partition *takes* it: the partition's epoch in
``partition_owners`` goes up by one and the new value is the taker's token. Every
persist then *checks* the tokens of the partitions it writes for, inside its own
transaction (rows locked on PostgreSQL; SQLite serializes writers anyway): a
partition whose epoch moved on belongs to another member now, and the whole
transaction is refused (:class:`StaleOwnership`), so a member that lost a
partition in a rebalance can never overwrite the new owner's checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select, tuple_

from monitor.store import schema
from monitor.store.engine import StoreOps

__all__ = ["OwnershipOps", "StaleOwnership"]

TopicPartition = tuple[str, int]


class StaleOwnership(RuntimeError):
    """Partitions whose epoch moved on: another member owns them now."""

    def __init__(self, partitions: Iterable[TopicPartition]) -> None:
        self.partitions = sorted(set(partitions))
        named = ", ".join(f"{topic}[{partition}]" for topic, partition in self.partitions)
        super().__init__(f"partitions {named} were taken over by another member; "
                         "their state is dropped without writing")


class OwnershipOps(StoreOps):
    def take_partitions(self, group: str, partitions: Iterable[TopicPartition],
                        owner: str) -> dict[TopicPartition, int]:
        """Bump the epoch of each partition for ``owner``; returns the new epochs."""
        t = schema.partition_owners
        wanted = sorted(set(partitions))
        if not wanted:
            return {}
        now = self._now_ms()
        with self._conn() as conn:
            query = select(t.c.topic, t.c.partition, t.c.epoch).where(
                t.c.group_id == group, tuple_(t.c.topic, t.c.partition).in_(wanted))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            current = {(r.topic, int(r.partition)): int(r.epoch) for r in conn.execute(query)}
            epochs = {tp: current.get(tp, 0) + 1 for tp in wanted}
            for (topic, partition), epoch in epochs.items():
                values = {"epoch": epoch, "owner": owner[:200], "updated_at_ms": now}
                if (topic, partition) in current:
                    conn.execute(t.update().where(
                        t.c.group_id == group, t.c.topic == topic,
                        t.c.partition == partition).values(**values))
                else:
                    conn.execute(t.insert().values(group_id=group, topic=topic,
                                                   partition=partition, **values))
        return epochs

    def check_partitions(self, group: str, epochs: Mapping[TopicPartition, int]) -> None:
        """Raise StaleOwnership for partitions whose stored epoch is not ours; inside a
        transaction the rows stay locked until it ends (PostgreSQL)."""
        if not epochs:
            return
        t = schema.partition_owners
        with self._conn() as conn:
            query = select(t.c.topic, t.c.partition, t.c.epoch).where(
                t.c.group_id == group, tuple_(t.c.topic, t.c.partition).in_(sorted(epochs)))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            stored = {(r.topic, int(r.partition)): int(r.epoch) for r in conn.execute(query)}
        stale = [tp for tp, epoch in epochs.items() if stored.get(tp) != epoch]
        if stale:
            raise StaleOwnership(stale)
