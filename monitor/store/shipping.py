"""What replicas ship to a model's owner through the store (issue 15, ``kafka.partials``).

Two tables of the same shape, (id, model, payload): ``shipped_pairs``, the joined pairs
of one model and persist (``monitor.stream.shipping``), and ``shipped_arms``, a
replica's share of a canary interval's arm statistics (``monitor.stream.arms``). A
replica adds a row; the owner takes its models' rows, deleting them as it reads
(``DELETE ... RETURNING``, so a row is taken once), in the order they were stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table, delete, select

from monitor.store import schema
from monitor.store.engine import StoreOps

__all__ = ["ShippingOps"]


class ShippingOps(StoreOps):
    # -- joined pairs -----------------------------------------------------------------------
    def ship_pairs(self, model: str, payload: bytes, rows: int) -> None:
        """Store one persist's joined pairs of ``model`` for its owner to take."""
        self._ship(schema.shipped_pairs, model, payload, rows=rows)

    def take_shipped(self, models: Sequence[str]) -> list[tuple[str, bytes]]:
        """Remove the shipped pairs of ``models`` and return them, (model, payload) in the
        order they were stored; a row another transaction is taking is not returned."""
        return self._take_shipped(schema.shipped_pairs, models)

    # -- canary arm statistics --------------------------------------------------------------
    def ship_arms(self, model: str, payload: bytes) -> None:
        """Store a replica's share of the running interval's arm statistics of ``model``."""
        self._ship(schema.shipped_arms, model, payload)

    def take_arms(self, model: str) -> list[bytes]:
        """Remove the shipped arm statistics of ``model`` and return them, oldest first."""
        return [payload for _, payload in self._take_shipped(schema.shipped_arms, [model])]

    def peek_arms(self, model: str) -> list[bytes]:
        """The shipped arm statistics of ``model``, left in place (for the read routes)."""
        t = schema.shipped_arms
        with self._conn(write=False) as conn:
            rows = conn.execute(select(t.c.payload).where(t.c.model == model)
                                .order_by(t.c.id)).all()
        return [bytes(row.payload) for row in rows]

    # -- helpers ----------------------------------------------------------------------------
    def _ship(self, table: Table, model: str, payload: bytes, **extra: int) -> None:
        with self._conn() as conn:
            conn.execute(table.insert().values(model=model, payload=payload,
                                               created_at_ms=self._now_ms(), **extra))

    def _take_shipped(self, table: Table, models: Sequence[str]) -> list[tuple[str, bytes]]:
        if not models:
            return []
        with self._conn() as conn:
            rows = conn.execute(delete(table).where(table.c.model.in_(sorted(models)))
                                .returning(table.c.id, table.c.model, table.c.payload)).all()
        return [(str(model), bytes(payload)) for _, model, payload in sorted(rows)]
