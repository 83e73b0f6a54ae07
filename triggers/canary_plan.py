"""The registry moves and hooks of each canary decision, and their idempotency keys.

A decision id is derived only from the model, the challenger version, the decision
and the start time of its canary, so a replay derives the same id, and a version
canaried again later (after an abort, say) gets new ones. Every step's key is
``<decision id>/<n>``.

Promote: ``previous_champion`` <- champion, ``champion`` <- challenger (guarded:
only from the champion the canary was judged against), ``challenger`` removed if
still on the challenger, both versions tagged. Roll back or abort: ``challenger``
removed, the version tagged ``rejected`` / ``aborted`` with the evidence. Revert a
promotion: ``champion`` <- the previous champion (guarded), ``previous_champion``
removed, both versions tagged. Hooks come last, once the registry says what they
announce.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from triggers.moves import STATUS_TAG, DeleteAlias, HookCall, HookEvent, SetAlias, Step, TagVersion

__all__ = ["MAX_TAG_CHARS", "Aliases", "canary_key", "plan_steps"]

# MLflow allows longer tag values on some backends; 4000 fits every store
MAX_TAG_CHARS = 4000
_TAG = "driftloop.canary."
_TAG_STATUS = {"promote": "promoted", "rollback": "rejected", "abort": "aborted",
               "revert": "reverted", "start": "progressing"}


@dataclass(frozen=True)
class Aliases:
    """The three alias names a canary moves."""

    champion: str = "champion"
    challenger: str = "challenger"
    previous_champion: str = "previous_champion"


def canary_key(model: str, challenger: str, decision: str, started_at: datetime) -> str:
    """``<model>-v<version>-<decision>-<12 hex>``: at most 63 characters of [a-z0-9-]."""
    identity = f"{model}\x00{challenger}\x00{decision}\x00{started_at.isoformat()}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    model_slug = _slug(model, 19) or "model"
    version_slug = _slug(challenger, 12) or "x"
    return f"{model_slug}-v{version_slug}-{decision}-{digest}"


def plan_steps(
    event: HookEvent, decision_id: str, *, model: str, champion: str, challenger: str,
    aliases: Aliases, sentence: str, score: float | None, evidence: Mapping[str, Any],
    superseded: str | None = None,
) -> tuple[Step, ...]:
    """Every step of one decision, registry moves first, the hook last.

    ``superseded``: on start, the challenger of a running canary this one replaces
    (tagged ``superseded``; its alias already moved to the new challenger)."""
    steps: list[Step] = []

    def key() -> str:
        return f"{decision_id}/{len(steps)}"

    def tags(status: str, **extra: str) -> tuple[tuple[str, str], ...]:
        values = {STATUS_TAG: status, f"{_TAG}decision": decision_id,
                  f"{_TAG}reason": sentence[:MAX_TAG_CHARS], **extra}
        if score is not None:
            values[f"{_TAG}score"] = f"{score:.0f}"
        return tuple(values.items())

    status = _TAG_STATUS[event]
    evidence_tag = {f"{_TAG}evidence": _json(evidence)} if evidence else {}
    if event == "start":
        steps.append(SetAlias(key(), model, aliases.challenger, challenger))
        steps.append(TagVersion(key(), model, challenger,
                                tags(status, **{f"{_TAG}champion": champion})))
        if superseded is not None:
            steps.append(TagVersion(key(), model, superseded,
                                    tags("superseded", **{f"{_TAG}superseded_by": challenger})))
    elif event == "promote":
        steps.append(SetAlias(key(), model, aliases.previous_champion, champion))
        steps.append(SetAlias(key(), model, aliases.champion, challenger, champion, True))
        steps.append(DeleteAlias(key(), model, aliases.challenger, challenger))
        steps.append(TagVersion(key(), model, challenger, tags(status, **evidence_tag)))
        steps.append(TagVersion(key(), model, champion,
                                tags("replaced", **{f"{_TAG}replaced_by": challenger})))
    elif event in ("rollback", "abort"):
        steps.append(DeleteAlias(key(), model, aliases.challenger, challenger))
        steps.append(TagVersion(key(), model, challenger, tags(status, **evidence_tag)))
    elif event == "revert":
        steps.append(SetAlias(key(), model, aliases.champion, champion, challenger, True))
        steps.append(DeleteAlias(key(), model, aliases.previous_champion, champion))
        steps.append(TagVersion(key(), model, challenger, tags(status)))
        steps.append(TagVersion(key(), model, champion, tags("restored")))
    else:
        raise ValueError(f"canary decision: got {event!r}, expected one of {sorted(_TAG_STATUS)}")
    # the hook hears the champion serving after the decision and the version judged
    serving, replaced = (challenger, champion) if event == "promote" else (champion, None)
    if event == "revert":
        replaced = challenger
    steps.append(HookCall(key(), event, model, serving, challenger, replaced, decision_id,
                          sentence, dict(evidence)))
    return tuple(steps)


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")


def _json(evidence: Mapping[str, Any]) -> str:
    text = orjson.dumps(evidence, option=orjson.OPT_SORT_KEYS).decode()
    if len(text) <= MAX_TAG_CHARS:
        return text
    # too long for a tag: keep the headline and each check's outcome
    checks = [{"name": c.get("name"), "outcome": c.get("outcome"),
               "statistic": c.get("statistic"), "threshold": c.get("threshold")}
              for c in evidence.get("checks") or ()]
    short = {"outcome": evidence.get("outcome"), "score": evidence.get("score"),
             "reason": str(evidence.get("reason", ""))[:1000], "checks": checks,
             "truncated": True}
    return orjson.dumps(short, option=orjson.OPT_SORT_KEYS).decode()[:MAX_TAG_CHARS]
