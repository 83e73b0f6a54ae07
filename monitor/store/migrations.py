"""Versioned schema migrations of the state store.

``MIGRATIONS`` is an ordered list of steps; the table ``driftloop_schema_version``
holds one row per step applied. At start, ``migrate`` applies every missing step,
in order, in one transaction, so a crash mid-way leaves the previous version.
Two processes starting together are serialized (PostgreSQL: an advisory lock
taken in the transaction; SQLite: the write lock of ``BEGIN IMMEDIATE``).

Rules for later steps:
- append, never edit or reorder an applied step;
- step 1 creates the tables of ``monitor.store.schema``; before a later step alters
  one of those tables, copy its v1 definition into step 1 so a fresh database still
  goes through the same states as an upgraded one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    text,
)

from monitor.store import schema

__all__ = ["MIGRATIONS", "Migration", "SchemaError", "current_version", "migrate"]

# pg_advisory_xact_lock key: any constant unique to driftloop ("dl" in hex, padded)
_PG_LOCK_KEY = 0x646C_0001


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this driftloop."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


_V1_TABLES = ("windows", "checkpoints", "consumer_offsets", "pending_predictions",
              "pending_labels", "trigger_state", "retrain_runs", "alerts", "canary_state",
              "decisions")

# tables as step 1 created them, where a later step altered them
_V1 = MetaData()
_CANARY_STATE_V1 = Table(
    "canary_state",
    _V1,
    Column("model", String(200), primary_key=True),
    Column("phase", String(50), nullable=False),
    Column("champion", String(200)),
    Column("challenger", String(200)),
    Column("passed", Integer, nullable=False),
    Column("failed_checks", Integer, nullable=False),
    Column("evidence", JSON(none_as_null=True), nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)
_ALTERED_LATER = {_CANARY_STATE_V1.name}


def _v1_initial(conn: Connection) -> None:
    tables = [t for t in schema.metadata.sorted_tables
              if t.name in _V1_TABLES and t.name not in _ALTERED_LATER]
    schema.metadata.create_all(conn, tables=tables, checkfirst=True)
    _V1.create_all(conn, checkfirst=True)


def _v2_partition_owners(conn: Connection) -> None:
    schema.partition_owners.create(conn, checkfirst=True)


def _v3_canary_state_document(conn: Connection) -> None:
    # the JSON type as this dialect spells it (JSON on both SQLite and PostgreSQL)
    column_type = schema.canary_state.c.state.type.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE canary_state ADD COLUMN state {column_type}"))


def _v4_shipped_to_owners(conn: Connection) -> None:
    schema.shipped_pairs.create(conn, checkfirst=True)
    schema.shipped_arms.create(conn, checkfirst=True)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "windows, checkpoints, offsets, label join, triggers, retrain runs, alerts, canary, "
        "decisions",
        _v1_initial,
    ),
    Migration(2, "partition owners and their fencing epochs", _v2_partition_owners),
    Migration(3, "canary state machine kept whole (canary_state.state)",
              _v3_canary_state_document),
    Migration(4, "joined pairs and canary arms on their way to the model's owner",
              _v4_shipped_to_owners),
)


def current_version(conn: Connection) -> int:
    """The highest applied step, 0 for an empty database."""
    schema.schema_version.create(conn, checkfirst=True)
    return int(
        conn.execute(
            select(func.coalesce(func.max(schema.schema_version.c.version), 0))
        ).scalar_one()
    )


def migrate(
    conn: Connection,
    migrations: Sequence[Migration] = MIGRATIONS,
    clock: Callable[[], float] = time.time,
) -> list[int]:
    """Apply the missing steps on ``conn`` (inside the caller's transaction).

    Returns the versions applied, empty when the schema was current.
    """
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise SchemaError(
            f"migration steps: got versions {versions}, expected 1, 2, 3, ... in order"
        )
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    found = current_version(conn)
    if found > len(migrations):
        raise SchemaError(
            f"state store schema version {found} is newer than this driftloop knows "
            f"(up to {len(migrations)}); upgrade driftloop or point state.url elsewhere"
        )
    applied = []
    for step in migrations[found:]:
        step.apply(conn)
        conn.execute(
            insert(schema.schema_version).values(
                version=step.version,
                description=step.description,
                applied_at_ms=int(clock() * 1000),
            )
        )
        applied.append(step.version)
    return applied
