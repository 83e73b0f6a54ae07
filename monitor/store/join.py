"""Label-join state: predictions waiting for their label and labels waiting for
their prediction, keyed (model, request_id), with an expiry (the label TTL).

Kept in the state store so joins survive a restart (design 3.2). Writes are
bulk: the service hands over a poll's worth of rows (thousands) per call.
A replayed row overwrites its earlier copy, so a replay after a crash never
duplicates a pending row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple

from sqlalchemy import JSON, Connection, Table, and_, delete, func, select, text

from monitor.store import schema
from monitor.store.engine import StoreOps, bulk_upsert, chunks, loads_json

__all__ = ["JoinCounts", "JoinOps", "JoinedPair", "PendingLabel", "PendingPrediction"]

# request ids per statement, far under SQLite's 32766 bound-parameter limit; a power of
# two, so a full chunk needs no padding (_padded)
_KEYS_PER_STATEMENT = 1024
# at most this many labels of a model waiting: a take reads them all rather than probing
# the index once per request id asked about
_FEW_WAITING = 4096


# The three rows of the join are NamedTuples, not frozen dataclasses: one is built per
# event and per pair on the hot path, where a frozen dataclass costs 3.5x more to build.
class PendingPrediction(NamedTuple):
    model: str
    request_id: str
    version: str
    prediction: Any
    timestamp_ms: int
    expires_at_ms: int
    score: float | None = None
    scores: Mapping[str, float] | None = None


class PendingLabel(NamedTuple):
    model: str
    request_id: str
    label: Any
    timestamp_ms: int
    expires_at_ms: int


class JoinedPair(NamedTuple):
    model: str
    request_id: str
    version: str
    prediction: Any
    score: float | None
    scores: Mapping[str, float] | None
    label: Any
    prediction_timestamp_ms: int
    label_timestamp_ms: int


@dataclass(frozen=True)
class JoinCounts:
    predictions: int = 0
    labels: int = 0


def _padded(ids: Sequence[str]) -> list[str]:
    """``ids`` with its last repeated up to the next power of two (a duplicate in an IN
    list changes nothing): a request-id lookup takes one of 11 statement texts, not one
    per list length. The drivers prepare a statement per text and keep it (the SQLite
    driver up to 128 per pooled connection, ~100 kB each at 1000 ids): a soak at 20k ev/s
    grew SQLite's memory from 3 to 24 MB in 10 minutes with one per length."""
    if not ids:
        return []
    size = 1 << (len(ids) - 1).bit_length()
    return [*ids, *repeat(ids[-1], size - len(ids))]


def _decoded(row: tuple[Any, ...], json_at: list[int]) -> tuple[Any, ...]:
    cells = list(row)
    for i in json_at:
        if cells[i] is not None:
            cells[i] = loads_json(cells[i])
    return tuple(cells)


def _by_model(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, dict[str, None]] = {}
    for model, request_id in keys:
        grouped.setdefault(model, {})[request_id] = None
    return {model: list(ids) for model, ids in grouped.items()}


def _join_chunk(
    conn: Connection, model: str, ids: Sequence[str], now_ms: int | None
) -> list[JoinedPair]:
    # Two primary-key lookups matched here rather than one SQL join: on fresh rows
    # (no table statistics yet) PostgreSQL plans the join as a nested loop over all
    # pending labels per prediction, 100x slower at a few thousand rows.
    p, lab = schema.pending_predictions, schema.pending_labels
    label_query = select(lab.c.request_id, lab.c.label, lab.c.timestamp_ms).where(
        lab.c.model == model, lab.c.request_id.in_(_padded(ids))
    )
    if now_ms is not None:
        label_query = label_query.where(lab.c.expires_at_ms > now_ms)
    labels = {r.request_id: r for r in conn.execute(label_query)}
    if not labels:
        return []
    prediction_query = select(
        p.c.request_id, p.c.version, p.c.prediction, p.c.score, p.c.scores, p.c.timestamp_ms
    ).where(p.c.model == model, p.c.request_id.in_(_padded(list(labels))))
    if now_ms is not None:
        prediction_query = prediction_query.where(p.c.expires_at_ms > now_ms)
    return [
        JoinedPair(
            model,
            r.request_id,
            r.version,
            r.prediction,
            r.score,
            r.scores,
            labels[r.request_id].label,
            r.timestamp_ms,
            labels[r.request_id].timestamp_ms,
        )
        for r in conn.execute(prediction_query)
    ]


def _lock_key(model: str) -> int:
    """A signed 64-bit advisory lock key of the model's join, stable across processes."""
    digest = hashlib.blake2b(f"driftloop.join:{model}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class JoinOps(StoreOps):
    def add_predictions(self, rows: Iterable[PendingPrediction]) -> int:
        """Store predictions awaiting labels; returns the number of rows given."""
        values = [(r.model, r.request_id, r.version, r.prediction, r.score,
                   None if r.scores is None else dict(r.scores), r.timestamp_ms,
                   r.expires_at_ms) for r in rows]
        with self._conn() as conn:
            bulk_upsert(conn, schema.pending_predictions, values, ("model", "request_id"))
        return len(values)

    def add_labels(self, rows: Iterable[PendingLabel]) -> int:
        """Store labels awaiting predictions; returns the number of rows given."""
        values = [(r.model, r.request_id, r.label, r.timestamp_ms, r.expires_at_ms)
                  for r in rows]
        with self._conn() as conn:
            bulk_upsert(conn, schema.pending_labels, values, ("model", "request_id"))
        return len(values)

    def join(
        self,
        keys: Iterable[tuple[str, str]] | None = None,
        *,
        now_ms: int | None = None,
        now_by_model: Mapping[str, int] | None = None,
    ) -> list[JoinedPair]:
        """Match pending predictions with pending labels, remove the matches, return them.

        ``keys``: only these (model, request_id) pairs are looked at, typically the
        rows just added (only they can have found a partner); None joins everything.
        ``now_ms``: a side already expired at this time does not join; ``now_by_model``
        gives each model its own clock (models replay or backfill at their own pace).
        Pairs come ordered by (model, prediction time, request_id).
        """
        p, lab = schema.pending_predictions, schema.pending_labels
        pairs: list[JoinedPair] = []
        with self._conn() as conn:
            if keys is None:
                query = select(
                    p.c.model,
                    p.c.request_id,
                    p.c.version,
                    p.c.prediction,
                    p.c.score,
                    p.c.scores,
                    lab.c.label,
                    p.c.timestamp_ms,
                    lab.c.timestamp_ms.label("label_timestamp_ms"),
                ).join(lab, and_(p.c.model == lab.c.model, p.c.request_id == lab.c.request_id))
                if now_ms is not None:
                    query = query.where(p.c.expires_at_ms > now_ms, lab.c.expires_at_ms > now_ms)
                pairs.extend(JoinedPair(*row) for row in conn.execute(query).all())
            else:
                for model, ids in _by_model(keys).items():
                    now = now_by_model.get(model, now_ms) if now_by_model else now_ms
                    for chunk in chunks(ids, _KEYS_PER_STATEMENT):
                        pairs.extend(_join_chunk(conn, model, chunk, now))
            matched = _by_model((pair.model, pair.request_id) for pair in pairs)
            for table in (p, lab):
                for model, ids in matched.items():
                    for chunk in chunks(ids, _KEYS_PER_STATEMENT):
                        conn.execute(
                            delete(table).where(
                                table.c.model == model, table.c.request_id.in_(_padded(chunk))
                            )
                        )
        pairs.sort(key=lambda pair: (pair.model, pair.prediction_timestamp_ms, pair.request_id))
        return pairs

    def lock_join(self, model: str) -> None:
        """Serialize the joins of ``model`` until this transaction ends. Replicas join the
        same model through one store: on PostgreSQL (read committed) two overlapping
        persists, one storing a prediction to wait and one its label, would not see each
        other's uncommitted row and both rows would wait for a partner already there. A
        transaction-level advisory lock makes the second wait for the first's commit and
        then take its row. SQLite needs none: a write transaction (``BEGIN IMMEDIATE``)
        holds the database's one write lock from its start."""
        with self._conn() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": _lock_key(model)})

    def waiting_labels(self, model: str) -> bool:
        """Whether any label of ``model`` waits in the store (one index probe: a persist
        whose predictions all found their labels in memory asks no more)."""
        t = schema.pending_labels
        with self._conn() as conn:
            return conn.execute(select(t.c.request_id).where(t.c.model == model).limit(1)
                                ).first() is not None

    def take_labels(self, model: str, request_ids: Sequence[str],
                    now_ms: int | None) -> dict[str, tuple[Any, int]]:
        """Remove the pending labels of these requests that have not expired at ``now_ms``
        and return them: request_id -> (label, timestamp_ms). One statement per chunk does
        the lookup and the removal (``DELETE ... RETURNING``), so a prediction whose label
        already waits is joined without ever being stored itself; when few labels wait,
        only the ids among them are looked up (``_few_waiting``)."""
        waiting = self._few_waiting(schema.pending_labels, model)
        if waiting is not None:  # few wait (the usual case): look up only those asked
            request_ids = [rid for rid in request_ids if rid in waiting]
            if not request_ids:
                return {}
        rows = self._take(schema.pending_labels, model, request_ids, now_ms,
                          ("label", "timestamp_ms"))
        return {rid: (label, stamp) for rid, label, stamp in rows}

    def _few_waiting(self, table: Table, model: str) -> set[str] | None:
        """The request ids of ``model``'s rows in ``table`` when there are at most
        ``_FEW_WAITING`` (one index range read), else None. A label waits only when it
        came before its prediction, so usually few do, and one read of them costs less
        than an index probe for each of the thousands of predictions a persist asks
        about. The rows cannot change in between: the persist holds the model's join
        (``lock_join``; SQLite: the write lock)."""
        with self._conn() as conn:
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            quote = conn.dialect.identifier_preparer.quote
            ids = [row[0] for row in conn.exec_driver_sql(
                f"SELECT request_id FROM {quote(table.name)} WHERE model = {mark} "
                f"LIMIT {_FEW_WAITING + 1}", (model,))]
        return set(ids) if len(ids) <= _FEW_WAITING else None

    def take_predictions(self, model: str, request_ids: Sequence[str],
                         now_ms: int | None) -> dict[str, PendingPrediction]:
        """Remove the pending predictions of these requests that have not expired at
        ``now_ms`` and return them by request id (see :meth:`take_labels`)."""
        rows = self._take(schema.pending_predictions, model, request_ids, now_ms,
                          ("version", "prediction", "score", "scores", "timestamp_ms",
                           "expires_at_ms"))
        return {rid: PendingPrediction(model, rid, version, prediction, stamp, expires, score,
                                       scores)
                for rid, version, prediction, score, scores, stamp, expires in rows}

    def _take(self, table: Table, model: str, request_ids: Sequence[str],
              now_ms: int | None, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """(request_id, *columns) of the rows removed, through the driver as it is (see
        :func:`~monitor.store.engine.bulk_upsert`): at thousands of ids per persist,
        SQLAlchemy's statement building and row processing cost more than the delete."""
        found: list[tuple[Any, ...]] = []
        with self._conn() as conn:
            quote = conn.dialect.identifier_preparer.quote
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            returning = ", ".join(quote(c) for c in ("request_id", *columns))
            decode = conn.dialect.name == "sqlite"
            for chunk in chunks(request_ids, _KEYS_PER_STATEMENT):
                ids = _padded(chunk)
                sql = (f"DELETE FROM {quote(table.name)} WHERE model = {mark} "
                       f"AND request_id IN ({', '.join([mark] * len(ids))})"
                       + ("" if now_ms is None else f" AND expires_at_ms > {mark}")
                       + f" RETURNING {returning}")
                params = (model, *ids) if now_ms is None else (model, *ids, now_ms)
                found.extend(map(tuple, conn.exec_driver_sql(sql, params)))
        # the SQLite driver gives JSON columns back as their text (or as a number: the
        # column has numeric affinity); psycopg gives them decoded already
        if found and decode:
            json_at = [i + 1 for i, c in enumerate(columns)
                       if isinstance(table.c[c].type, JSON)]
            found = [_decoded(row, json_at) for row in found] if json_at else found
        return found

    def expire(self, now_by_model: Mapping[str, int]) -> dict[str, JoinCounts]:
        """Drop each model's pending rows whose expiry is at or before that model's clock
        (event time: one model's clock never expires another's rows); counts per model."""
        counted: dict[str, dict[str, int]] = {}
        with self._conn() as conn:
            for kind, table in (
                ("predictions", schema.pending_predictions),
                ("labels", schema.pending_labels),
            ):
                for model, now_ms in sorted(now_by_model.items()):
                    expired = (table.c.model == model) & (table.c.expires_at_ms <= now_ms)
                    n = conn.execute(delete(table).where(expired)).rowcount
                    if n:
                        counted.setdefault(model, {})[kind] = int(n)
        return {model: JoinCounts(**kinds) for model, kinds in sorted(counted.items())}

    def cap_pending(self, model: str, max_rows: int) -> JoinCounts:
        """Keep at most ``max_rows`` pending predictions and labels of ``model``, dropping the
        oldest (by event time) first; returns how many were dropped."""
        dropped: dict[str, int] = {}
        with self._conn() as conn:
            for kind, table in (
                ("predictions", schema.pending_predictions),
                ("labels", schema.pending_labels),
            ):
                n = int(conn.execute(select(func.count()).where(table.c.model == model))
                        .scalar_one())
                if n <= max_rows:
                    continue
                # the timestamp of the newest row beyond the cap, oldest first
                cutoff = conn.execute(
                    select(table.c.timestamp_ms, table.c.request_id)
                    .where(table.c.model == model)
                    .order_by(table.c.timestamp_ms, table.c.request_id)
                    .offset(n - max_rows - 1).limit(1)).one()
                older = (table.c.model == model) & (
                    (table.c.timestamp_ms < cutoff.timestamp_ms)
                    | ((table.c.timestamp_ms == cutoff.timestamp_ms)
                       & (table.c.request_id <= cutoff.request_id)))
                dropped[kind] = int(conn.execute(delete(table).where(older)).rowcount)
        return JoinCounts(**dropped)

    def pending_counts(self) -> dict[str, JoinCounts]:
        """Rows waiting per model (for the ``driftloop_label_join_pending`` gauges)."""
        counted: dict[str, dict[str, int]] = {}
        with self._conn(write=False) as conn:
            for kind, table in (
                ("predictions", schema.pending_predictions),
                ("labels", schema.pending_labels),
            ):
                query = select(table.c.model, func.count()).group_by(table.c.model)
                for model, n in conn.execute(query).all():
                    counted.setdefault(model, {})[kind] = int(n)
        return {model: JoinCounts(**kinds) for model, kinds in sorted(counted.items())}
