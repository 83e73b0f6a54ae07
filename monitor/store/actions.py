"""Trigger, retrain, alert and decision records of the state store (canary: ``canary``).

They live here, not in memory, so a restart (even ``kill -9``) neither fires a
retrain twice nor forgets a cooldown or a canary's progress (design section 9).
Uniqueness does the de-duplication: a retrain run's ``idempotency_key`` and an
alert's (fingerprint, starts_at) are UNIQUE, and inserting a duplicate reports
False instead of raising.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update

from monitor.store import schema
from monitor.store.engine import StoreOps, insert_ignore, upsert

__all__ = [
    "AlertRecord",
    "DecisionRecord",
    "RetrainRun",
    "TriggerOps",
    "TriggerState",
]


@dataclass(frozen=True)
class TriggerState:
    model: str
    consecutive: Mapping[str, int] = field(default_factory=dict)
    last_trigger_ms: int | None = None
    cooldown_until_ms: int | None = None
    running_run_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    updated_at_ms: int = 0  # set by the store on write


@dataclass(frozen=True)
class RetrainRun:
    id: str
    model: str
    reason: str
    idempotency_key: str
    launcher: str
    status: str
    started_at_ms: int
    finished_at_ms: int | None = None
    external_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRecord:
    fingerprint: str
    starts_at: str
    model: str | None
    status: str
    payload: Mapping[str, Any]
    received_at_ms: int


@dataclass(frozen=True)
class DecisionRecord:
    model: str
    at_ms: int
    kind: str
    sentence: str


_RUN_COLUMNS = (
    "id",
    "model",
    "reason",
    "idempotency_key",
    "launcher",
    "status",
    "started_at_ms",
    "finished_at_ms",
    "external_id",
    "detail",
)


def _run(row: Any) -> RetrainRun:
    return RetrainRun(**{name: getattr(row, name) for name in _RUN_COLUMNS})


class TriggerOps(StoreOps):
    # -- trigger state ----------------------------------------------------------
    def get_trigger_state(self, model: str) -> TriggerState | None:
        return self.trigger_states(model).get(model)

    def trigger_states(self, model: str | None = None) -> dict[str, TriggerState]:
        """Trigger state per model (all models, or the one named)."""
        t = schema.trigger_state
        query = select(t) if model is None else select(t).where(t.c.model == model)
        with self._conn(write=False) as conn:
            rows = conn.execute(query).all()
        return {
            r.model: TriggerState(
                r.model,
                r.consecutive,
                r.last_trigger_ms,
                r.cooldown_until_ms,
                r.running_run_id,
                r.extra,
                r.updated_at_ms,
            )
            for r in rows
        }

    def put_trigger_state(self, state: TriggerState) -> None:
        row = {
            "model": state.model,
            "consecutive": dict(state.consecutive),
            "last_trigger_ms": state.last_trigger_ms,
            "cooldown_until_ms": state.cooldown_until_ms,
            "running_run_id": state.running_run_id,
            "extra": dict(state.extra),
            "updated_at_ms": self._now_ms(),
        }
        with self._conn() as conn:
            upsert(conn, schema.trigger_state, [row], ("model",))

    # -- retrain runs -----------------------------------------------------------
    def create_run(self, run: RetrainRun) -> bool:
        """Record a run before launching it; False when its id or idempotency key exists."""
        row = {name: getattr(run, name) for name in _RUN_COLUMNS}
        row["detail"] = dict(run.detail)
        with self._conn() as conn:
            return insert_ignore(conn, schema.retrain_runs, row)

    def update_run(
        self,
        run_id: str,
        *,
        status: str,
        finished_at_ms: int | None = None,
        external_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> bool:
        """Set a run's status (and what is given); False when no such run."""
        t = schema.retrain_runs
        values: dict[str, Any] = {"status": status}
        if finished_at_ms is not None:
            values["finished_at_ms"] = finished_at_ms
        if external_id is not None:
            values["external_id"] = external_id
        if detail is not None:
            values["detail"] = dict(detail)
        with self._conn() as conn:
            result = conn.execute(update(t).where(t.c.id == run_id).values(**values))
        return bool(result.rowcount == 1)

    def claim_launch(self, run_id: str, attempts: int, lease_until_ms: int) -> bool:
        """Take the next launch attempt of a run still launching or retrying, if nobody
        took one since it was read with ``attempts`` attempts (compare-and-set, the row
        locked on PostgreSQL); the run is ``launching`` until ``lease_until_ms``."""
        t = schema.retrain_runs
        with self._conn() as conn:
            row = conn.execute(select(t.c.status, t.c.detail).where(t.c.id == run_id)
                               .with_for_update()).first()
            detail = dict(row.detail or {}) if row is not None else {}
            if row is None or row.status not in ("launching", "retrying") \
                    or int(detail.get("attempts") or 0) != attempts:
                return False
            conn.execute(update(t).where(t.c.id == run_id).values(
                status="launching",
                detail={**detail, "attempts": attempts + 1, "next_attempt_ms": lease_until_ms}))
        return True

    def get_run(self, run_id: str) -> RetrainRun | None:
        t = schema.retrain_runs
        with self._conn(write=False) as conn:
            row = conn.execute(select(t).where(t.c.id == run_id)).first()
        return _run(row) if row is not None else None

    def run_by_key(self, idempotency_key: str) -> RetrainRun | None:
        t = schema.retrain_runs
        with self._conn(write=False) as conn:
            row = conn.execute(select(t).where(t.c.idempotency_key == idempotency_key)).first()
        return _run(row) if row is not None else None

    def runs(
        self, model: str | None = None, *, status: str | None = None, limit: int = 20
    ) -> list[RetrainRun]:
        """Runs newest first, optionally of one model and/or in one status."""
        t = schema.retrain_runs
        query = select(t).order_by(t.c.started_at_ms.desc(), t.c.id.desc()).limit(limit)
        if model is not None:
            query = query.where(t.c.model == model)
        if status is not None:
            query = query.where(t.c.status == status)
        with self._conn(write=False) as conn:
            return [_run(row) for row in conn.execute(query).all()]

    def prune_runs(self, model: str, *, keep: int, statuses: Collection[str]) -> int:
        """Delete the model's runs in ``statuses`` (the finished ones) beyond the newest
        ``keep`` of them; runs in any other status are never touched. Returns how many."""
        t = schema.retrain_runs
        finished = (t.c.model == model) & t.c.status.in_(sorted(statuses))
        older = (select(t.c.id).where(finished)
                 .order_by(t.c.started_at_ms.desc(), t.c.id.desc()).offset(keep))
        with self._conn() as conn:
            result = conn.execute(delete(t).where(t.c.id.in_(older.scalar_subquery())))
        return int(result.rowcount or 0)

    # -- alerts -----------------------------------------------------------------
    def record_alert(
        self,
        fingerprint: str,
        starts_at: str,
        *,
        status: str,
        payload: Mapping[str, Any],
        model: str | None = None,
        received_at_ms: int | None = None,
    ) -> bool:
        """Persist a received alert; False when (fingerprint, starts_at) was seen before.

        The first copy is kept: a repeat or a later "resolved" for the same
        (fingerprint, starts_at) changes nothing and reports False.
        """
        row = {
            "fingerprint": fingerprint,
            "starts_at": starts_at,
            "model": model,
            "status": status,
            "payload": dict(payload),
            "received_at_ms": self._now_ms() if received_at_ms is None else received_at_ms,
        }
        with self._conn() as conn:
            return insert_ignore(conn, schema.alerts, row)

    def alerts(self, model: str | None = None, *, limit: int = 100) -> list[AlertRecord]:
        """Alerts newest first."""
        t = schema.alerts
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        if model is not None:
            query = query.where(t.c.model == model)
        with self._conn(write=False) as conn:
            rows = conn.execute(query).all()
        return [
            AlertRecord(r.fingerprint, r.starts_at, r.model, r.status, r.payload, r.received_at_ms)
            for r in rows
        ]

    # -- decision log -----------------------------------------------------------
    def log_decision(self, model: str, kind: str, sentence: str, at_ms: int | None = None) -> None:
        row = {
            "model": model,
            "kind": kind,
            "sentence": sentence,
            "at_ms": self._now_ms() if at_ms is None else at_ms,
        }
        with self._conn() as conn:
            conn.execute(schema.decisions.insert().values(**row))

    def decisions(self, model: str, *, limit: int = 20) -> list[DecisionRecord]:
        """The model's decisions, newest first."""
        t = schema.decisions
        query = select(t).where(t.c.model == model).order_by(t.c.id.desc()).limit(limit)
        with self._conn(write=False) as conn:
            rows = conn.execute(query).all()
        return [DecisionRecord(r.model, r.at_ms, r.kind, r.sentence) for r in rows]
