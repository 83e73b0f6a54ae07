"""The state store: window results, checkpoints, offsets, join, trigger and canary state.

SQLAlchemy Core on SQLite (the default; WAL and a busy timeout so the HTTP
thread reads while the consumer writes) or PostgreSQL (``postgresql+psycopg://``).
The schema is created and migrated at construction (``monitor.store.migrations``).

Every method of :class:`Store` runs in its own short transaction. For the
exactly-once effect of design section 9, the consumer writes closed-window
results, the open windows' checkpoints and the consumer offsets in one unit
of work::

    with store.transaction() as tx:
        tx.put_window("carloan", "3", "rows:7", 7, result, start, end)
        tx.save_checkpoint("carloan", "3", "predictions", partial, {("predictions", 0): 4242})
        tx.commit_offsets("driftloop", {("predictions", 0): 4242})

A :class:`Transaction` has every method of the store. Inside one, use ``tx``
only: a ``store.*`` call there opens a second connection and, on SQLite, waits
for the first one's write lock.

Errors: :class:`~monitor.store_base.StoreError` (a value cannot be stored),
:class:`~monitor.migrations.SchemaError` (the database's schema is unusable);
driver errors (``sqlalchemy.exc.OperationalError``) pass through.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, Engine, delete, func, select, text
from sqlalchemy.engine import make_url

from monitor.store import schema
from monitor.store.actions import (
    TriggerOps,
)
from monitor.store.canary import CanaryOps
from monitor.store.engine import (
    StoreError,
    create_store_engine,
    dumps_json,
    pack_state,
    to_ms,
    unpack_state,
    upsert,
)
from monitor.store.join import JoinOps
from monitor.store.migrations import MIGRATIONS, Migration, migrate
from monitor.store.ownership import OwnershipOps
from monitor.store.shipping import ShippingOps

__all__ = ["Checkpoint", "Store", "Transaction"]

Offsets = Mapping[tuple[str, int], int]
Timestamp = int | float | datetime | str | None


@dataclass(frozen=True)
class Checkpoint:
    """The serialized open window of one stream and the offsets it covers.

    ``offsets`` maps (topic, partition) to the next offset to consume. ``state`` is the
    dict that was saved, whether it was stored as MessagePack (the default) or as JSON
    (rows written before MessagePack; still read); raw bytes saved as such stay bytes.
    """

    model: str
    version: str
    kind: str
    state: bytes | dict[str, Any]
    offsets: dict[tuple[str, int], int]
    updated_at_ms: int


def _decode(encoding: str, blob: bytes) -> bytes | dict[str, Any]:
    if encoding == "msgpack":
        state = unpack_state(blob)
        if not isinstance(state, dict):
            raise StoreError(f"checkpoint: got MessagePack {type(state).__name__}, expected a map")
        return state
    if encoding == "json":
        return orjson.loads(blob)
    return blob


class _Ops(JoinOps, TriggerOps, CanaryOps, OwnershipOps, ShippingOps):
    """Window results, checkpoints and offsets; the join, trigger, canary, ownership and
    shipping groups are mixed in."""

    # -- window results -----------------------------------------------------------
    def put_window(
        self,
        model: str,
        version: str,
        window_key: str,
        window_index: int,
        result: Mapping[str, Any],
        start: Timestamp = None,
        end: Timestamp = None,
    ) -> None:
        """Store a closed window's result (design 6.1); a replay of the same key overwrites."""
        row = {
            "model": model,
            "version": str(version),
            "window_key": window_key,
            "window_index": int(window_index),
            "start_ms": to_ms(start, f"window {model}/{version}/{window_key} start"),
            "end_ms": to_ms(end, f"window {model}/{version}/{window_key} end"),
            "result": dict(result),
            "updated_at_ms": self._now_ms(),
        }
        with self._conn() as conn:
            upsert(conn, schema.windows, [row], ("model", "version", "window_key"))

    def windows(
        self, model: str, limit: int = 100, version: str | None = None
    ) -> list[dict[str, Any]]:
        """The model's window results, newest (first stored) first."""
        t = schema.windows
        query = select(t.c.result).where(t.c.model == model).order_by(t.c.id.desc()).limit(limit)
        if version is not None:
            query = query.where(t.c.version == str(version))
        with self._conn(write=False) as conn:
            return [row.result for row in conn.execute(query).all()]

    def last_window_index(self, model: str, version: str) -> int | None:
        t = schema.windows
        query = select(func.max(t.c.window_index)).where(
            t.c.model == model, t.c.version == str(version)
        )
        with self._conn(write=False) as conn:
            found = conn.execute(query).scalar_one()
        return int(found) if found is not None else None

    # -- checkpoints of open windows ----------------------------------------------
    def save_checkpoint(
        self,
        model: str,
        version: str,
        kind: str,
        state: bytes | Mapping[str, Any],
        offsets: Offsets,
        encoding: Literal["msgpack", "json"] = "msgpack",
    ) -> int:
        """Store one stream's state (upsert); returns the bytes of state written.

        A dict is stored as MessagePack (``encoding="json"``: as JSON, the format of
        checkpoints before MessagePack, which is still read); one MessagePack cannot hold
        (a tuple as a key) falls back to JSON. Bytes are stored as they are.
        """
        blob: bytes
        if isinstance(state, bytes | bytearray | memoryview):
            encoding_, blob = "bytes", bytes(state)
        elif isinstance(state, Mapping):
            encoding_, blob = encoding, b""
            if encoding == "msgpack":
                try:
                    blob = pack_state(state)
                except TypeError:
                    encoding_ = "json"
            if encoding_ == "json":
                blob = dumps_json(dict(state)).encode()
        else:
            raise StoreError(
                f"checkpoint {model}/{version}/{kind}: got state of type {type(state).__name__}, "
                "expected bytes or a dict"
            )
        row = {
            "model": model,
            "version": str(version),
            "kind": kind,
            "encoding": encoding_,
            "state": blob,
            "offsets": [
                [topic, int(part), int(nxt)] for (topic, part), nxt in sorted(offsets.items())
            ],
            "updated_at_ms": self._now_ms(),
        }
        with self._conn() as conn:
            upsert(conn, schema.checkpoints, [row], ("model", "version", "kind"))
        return len(blob)

    def load_checkpoints(self) -> list[Checkpoint]:
        t = schema.checkpoints
        query = select(t).order_by(t.c.model, t.c.version, t.c.kind)
        with self._conn(write=False) as conn:
            rows = conn.execute(query).all()
        return [
            Checkpoint(
                model=r.model,
                version=r.version,
                kind=r.kind,
                state=_decode(r.encoding, bytes(r.state)),
                offsets={(topic, int(part)): int(nxt) for topic, part, nxt in r.offsets},
                updated_at_ms=r.updated_at_ms,
            )
            for r in rows
        ]

    def delete_checkpoint(self, model: str, version: str, kind: str) -> None:
        t = schema.checkpoints
        cond = (t.c.model == model, t.c.version == str(version), t.c.kind == kind)
        with self._conn() as conn:
            conn.execute(delete(t).where(*cond))

    # -- consumer offsets -----------------------------------------------------------
    def commit_offsets(self, group: str, offsets: Offsets) -> None:
        """Record the next offset to consume per (topic, partition); last write wins."""
        now = self._now_ms()
        rows = [
            {
                "group_id": group,
                "topic": topic,
                "partition": int(part),
                "next_offset": int(nxt),
                "updated_at_ms": now,
            }
            for (topic, part), nxt in sorted(offsets.items())
        ]
        with self._conn() as conn:
            upsert(conn, schema.consumer_offsets, rows, ("group_id", "topic", "partition"))

    def offsets(self, group: str) -> dict[tuple[str, int], int]:
        t = schema.consumer_offsets
        query = select(t.c.topic, t.c.partition, t.c.next_offset).where(t.c.group_id == group)
        with self._conn(write=False) as conn:
            return {(r.topic, int(r.partition)): int(r.next_offset) for r in conn.execute(query)}


class Transaction(_Ops):
    """A unit of work: every write commits together when the ``with`` block ends."""

    def __init__(self, conn: Connection, clock: Callable[[], float]) -> None:
        self._connection = conn
        self._clock = clock

    def _conn(self, write: bool = True) -> AbstractContextManager[Connection]:
        return nullcontext(self._connection)


class Store(_Ops):
    """``Store(url)``: opens (and creates or migrates) the state store at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self.url = url
        self._clock = clock
        self._engine = create_store_engine(url, busy_timeout_seconds)
        try:
            with self._engine.begin() as conn:
                self.applied_migrations = migrate(conn, migrations, clock)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @contextmanager
    def _conn(self, write: bool = True) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(driftloop_write=write)
            with conn.begin():
                yield conn

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Commit everything written through the yielded ``tx`` at once, or nothing."""
        with self._conn(write=True) as conn:
            yield Transaction(conn, self._clock)

    def schema_version(self) -> int:
        with self._conn(write=False) as conn:
            return int(conn.execute(select(func.max(schema.schema_version.c.version))).scalar_one())

    def ping(self) -> bool:
        """True when the database answers (for readiness); never raises."""
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({make_url(self.url).render_as_string(hide_password=True)!r})"
