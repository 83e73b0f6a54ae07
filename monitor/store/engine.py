"""What the state store's operation groups share: the connection seam and helpers.

Each group of operations (windows and offsets, label join, triggers) is a mixin
over :class:`StoreOps`, whose only seam is ``_conn``: a ``Store`` opens a new
short transaction per call, a ``Transaction`` hands out its one open connection,
so the same method writes alone or as part of a unit of work.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeVar

import msgspec
import numpy as np
import orjson
from sqlalchemy import JSON, Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

__all__ = [
    "StoreError",
    "StoreOps",
    "bulk_upsert",
    "chunks",
    "create_store_engine",
    "dumps_json",
    "insert_ignore",
    "loads_json",
    "pack_state",
    "to_ms",
    "unpack_state",
    "upsert",
]

T = TypeVar("T")


class StoreError(RuntimeError):
    """A state store operation was given something it cannot store."""


class StoreOps:
    """Base of the operation mixins; subclasses provide ``_conn`` and ``_clock``."""

    _clock: Callable[[], float]

    def _conn(self, write: bool = True) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, as one executemany for all rows.

    ``update`` names the columns a conflicting row takes from the new one
    (default: every non-key column of the first row).
    """
    if not rows:
        return
    name = conn.dialect.name
    if name == "postgresql":
        stmt: Any = postgresql.insert(table)
    elif name == "sqlite":
        stmt = sqlite.insert(table)
    else:
        raise StoreError(
            f"state store dialect {name!r}: not supported; expected sqlite or postgresql"
        )
    columns = list(update) if update is not None else [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns}
    )
    conn.execute(stmt, [dict(r) for r in rows])


def bulk_upsert(conn: Connection, table: Table, rows: Sequence[Sequence[Any]],
                keys: Sequence[str]) -> None:
    """As :func:`upsert` for ``rows`` given as tuples in the table's column order (every
    column), handed to the driver's ``executemany`` as they are, but for JSON columns
    (written with :func:`dumps_json`; None is SQL NULL). For the label join's thousands
    of rows per persist: SQLAlchemy's per-row parameter processing cost 3x the
    database's own work there."""
    if not rows:
        return
    columns = [c.name for c in table.columns]
    json_at = [i for i, c in enumerate(table.columns) if isinstance(c.type, JSON)]
    if json_at:
        rows = [_json_cells(row, json_at) for row in rows]
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    key_names = {quote(k) for k in keys}
    names = [quote(c) for c in columns]
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(names)}) "
           f"VALUES ({', '.join([mark] * len(names))}) "
           f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET "
           + ", ".join(f"{n} = excluded.{n}" for n in names if n not in key_names))
    conn.exec_driver_sql(sql, [tuple(row) for row in rows])


def _json_cells(row: Sequence[Any], json_at: list[int]) -> tuple[Any, ...]:
    cells = list(row)
    for i in json_at:
        if cells[i] is not None:
            cells[i] = dumps_json(cells[i])
    return tuple(cells)


def insert_ignore(conn: Connection, table: Table, row: Mapping[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when the row was inserted."""
    name = conn.dialect.name
    stmt: Any = postgresql.insert(table) if name == "postgresql" else sqlite.insert(table)
    # RETURNING tells inserted from skipped on both dialects (rowcount does not on psycopg)
    first_key = next(iter(table.primary_key.columns))
    result = conn.execute(stmt.on_conflict_do_nothing().values(**row).returning(first_key))
    return result.first() is not None


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Slices of at most ``size`` items; keeps bound-parameter counts under SQLite's limit."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def to_ms(value: int | float | datetime | str | None, what: str) -> int | None:
    """Epoch milliseconds from epoch ms (number), an aware datetime or an RFC 3339 string."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise StoreError(
            f"{what}: got {value!r}, expected epoch milliseconds, a datetime or RFC 3339"
        )
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise StoreError(f"{what}: got {value!r}, expected an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        raise StoreError(f"{what}: got naive datetime {value.isoformat()}, expected a timezone")
    return int(value.timestamp() * 1000)


def dumps_json(value: Any) -> str:
    # orjson writes NaN/inf as null (PostgreSQL's json rejects NaN) and numpy scalars as numbers
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def loads_json(value: Any) -> Any:
    # SQLite gives JSON numbers back as numbers: its JSON column has numeric affinity
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _numpy_value(value: Any) -> Any:
    # as dumps_json: numpy scalars as numbers, arrays as lists
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise NotImplementedError(f"got {type(value).__name__}")


_PACK = msgspec.msgpack.Encoder(enc_hook=_numpy_value)
_UNPACK = msgspec.msgpack.Decoder()


def pack_state(value: Mapping[str, Any]) -> bytes:
    """A checkpoint's state as MessagePack: bytes stay bytes and floats stay float64
    (NaN and infinities included), so a state round-trips exactly; TypeError for what
    MessagePack cannot hold (the caller falls back to JSON)."""
    return _PACK.encode(value)


def unpack_state(blob: bytes) -> Any:
    return _UNPACK.decode(blob)


def _enable_wal(cursor: Any, timeout_seconds: float) -> None:
    # WAL is a property of the database file, set once. Switching to it needs an
    # exclusive lock, and SQLite reports "database is locked" at once, without its
    # busy handler, when several connections switch a new file together: retry.
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            mode = str(cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
            continue
        if mode.lower() != "wal":
            raise StoreError(f"state store: SQLite journal mode stays {mode!r}, expected 'wal'")
        return


def create_store_engine(url: str, busy_timeout_seconds: float) -> Engine:
    """An engine for ``sqlite:///...`` (WAL, busy timeout) or ``postgresql+psycopg://...``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    common: dict[str, Any] = {"json_serializer": dumps_json, "json_deserializer": loads_json}
    if backend == "postgresql":
        # pre-ping: a PostgreSQL restart must not leave dead pooled connections behind
        return create_engine(url, pool_pre_ping=True, **common)
    if backend != "sqlite":
        raise StoreError(
            f"state.url {parsed.render_as_string(hide_password=True)!r}: unsupported database "
            f"{backend!r}; expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        )
    in_memory = parsed.database in (None, "", ":memory:")
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_seconds, "check_same_thread": False},
        # one shared connection, or each connection would see its own empty database
        **({"poolclass": StaticPool} if in_memory else {}),
        **common,
    )
    busy_ms = int(busy_timeout_seconds * 1000)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own implicit BEGIN is turned off; "begin" below emits ours
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        if not in_memory:
            _enable_wal(cursor, busy_timeout_seconds)
        # in WAL, NORMAL loses no committed transaction on a process crash (kill -9),
        # only on a power loss, and never corrupts: results and offsets stay together
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        # writers take the lock up front: a deferred reader upgrading to a writer in
        # WAL fails at once with SQLITE_BUSY instead of waiting out the busy timeout
        write = conn.get_execution_options().get("driftloop_write", True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
