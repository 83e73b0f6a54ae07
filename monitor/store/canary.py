"""Canary state of the state store: one row per model, the whole state machine in ``state``.

The canary reactor keeps ``triggers.canary_state.CanaryState.to_dict()`` whole in
the JSON column ``state`` (step 2 of ``monitor.store.migrations``), so a restart
(even ``kill -9``) resumes exactly where it stopped: phase, counters, the decision
still being applied and which of its steps are done. The older columns (phase,
versions, counters, evidence) are filled from the same document on every write:
they are a view for the read routes and the page, never read back by the reactor.

This module knows the document's key names, not its type: the store imports
nothing of ``triggers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from monitor.store import schema
from monitor.store.engine import StoreError, StoreOps, upsert

__all__ = ["CanaryOps", "CanaryState"]


@dataclass(frozen=True)
class CanaryState:
    """The view columns of a model's canary row (the whole state is ``document``)."""

    model: str
    phase: str
    champion: str | None = None
    challenger: str | None = None
    passed: int = 0
    failed_checks: int = 0
    evidence: Mapping[str, Any] = field(default_factory=dict)
    updated_at_ms: int = 0  # set by the store on write
    document: Mapping[str, Any] | None = None  # the state machine's whole state, if stored


class CanaryOps(StoreOps):
    def get_canary(self, model: str) -> CanaryState | None:
        return self.canary_states(model).get(model)

    def canary_states(self, model: str | None = None) -> dict[str, CanaryState]:
        """Canary state per model (all models, or the one named)."""
        t = schema.canary_state
        query = select(t) if model is None else select(t).where(t.c.model == model)
        with self._conn(write=False) as conn:
            rows = conn.execute(query).all()
        return {
            r.model: CanaryState(r.model, r.phase, r.champion, r.challenger, r.passed,
                                 r.failed_checks, r.evidence, r.updated_at_ms, r.state)
            for r in rows
        }

    def put_canary(self, state: CanaryState) -> None:
        """Write the view columns (and ``document`` as ``state`` when given)."""
        row: dict[str, Any] = {
            "model": state.model,
            "phase": state.phase,
            "champion": state.champion,
            "challenger": state.challenger,
            "passed": state.passed,
            "failed_checks": state.failed_checks,
            "evidence": dict(state.evidence),
            "updated_at_ms": self._now_ms(),
        }
        if state.document is not None:
            row["state"] = dict(state.document)
        with self._conn() as conn:
            upsert(conn, schema.canary_state, [row], ("model",))

    def load_canary_document(self, model: str) -> dict[str, Any] | None:
        """The state machine's state as last saved, or None (no canary, or a row written
        before step 2 of the migrations, which holds no whole state)."""
        t = schema.canary_state
        with self._conn(write=False) as conn:
            found = conn.execute(select(t.c.state).where(t.c.model == model)).scalar()
        return dict(found) if isinstance(found, Mapping) else None

    def save_canary_document(self, document: Mapping[str, Any]) -> None:
        """Store ``CanaryState.to_dict()`` whole, and its view columns beside it."""
        try:
            view = CanaryState(
                str(document["model"]), str(document["phase"]), _text(document.get("champion")),
                _text(document.get("challenger")), int(document.get("passed") or 0),
                int(document.get("failed_checks") or 0), dict(document.get("evidence") or {}),
                document=document)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"canary state: got {sorted(document)[:12]} ({exc}), expected "
                             "a CanaryState.to_dict() document") from None
        self.put_canary(view)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
