"""Which version should be the challenger now: read from the registry, never from a webhook.

Webhook deliveries (``POST /api/v1/mlflow/webhook``) only say "look now": they can
arrive late, twice or out of order, and driftloop's own alias moves send them too.
The registry is the truth, read by :func:`find_candidate`:

1. the challenger alias points at a version that is not the champion and not the
   challenger of the current canary: an operator chose it (``source="alias"``). A
   version whose canary ended (rolled back, aborted, reverted) is judged again when
   the alias points at it again (driftloop removed the alias when that canary ended,
   so someone set it since). A version whose canary ``failed`` (its moves could not be
   applied) is not restarted on its own: move the alias to another version, or fix
   the cause and use the operator routes;
2. else, the newest version registered by a run carrying ``driftloop.idempotency_key``
   = the key of one of the model's recent retrain runs (``source="retrain"``), newer
   than the champion and never canaried (no ``driftloop.canary.status`` tag).

``triggers.canary.start`` then decides whether it starts (a running canary is not
superseded by a retrain, only by an alias).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from triggers.canary import CanaryPolicy
from triggers.canary_state import CanaryState
from triggers.moves import STATUS_TAG
from triggers.registry import ModelRegistry

__all__ = ["RECENT_RUNS", "Candidate", "find_candidate"]

# retrain runs of a model whose versions are looked for, newest first
RECENT_RUNS = 5


@dataclass(frozen=True)
class Candidate:
    version: str
    source: Literal["alias", "retrain"]
    champion: str | None


def find_candidate(registry: ModelRegistry, model: str, policy: CanaryPolicy,
                   state: CanaryState | None, run_keys: list[str],
                   run_tag: str) -> Candidate | None:
    """The version to start a canary of, or None; raises ``RegistryError``."""
    champion = registry.get_alias(model, policy.champion_alias)
    aliased = registry.get_alias(model, policy.challenger_alias)
    if aliased is not None and aliased != champion:
        if state is None or state.challenger != aliased:
            return Candidate(aliased, "alias", champion)
        if state.terminal and state.phase != "failed":
            return Candidate(aliased, "alias", champion)
    if not run_keys:
        return None
    found: set[str] = set()
    for key in run_keys[:RECENT_RUNS]:
        found.update(registry.find_versions_by_run_tag(model, run_tag, key))
    if not found:
        return None
    tags = {v.version: v.tags for v in registry.list_versions(model)}
    fresh = [v for v in found
             if STATUS_TAG not in tags.get(v, {}) and _newer(v, champion)
             and (state is None or v != state.challenger)]
    if not fresh:
        return None
    return Candidate(max(fresh, key=_number), "retrain", champion)


def _number(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def _newer(version: str, champion: str | None) -> bool:
    if champion is None or not (version.isdigit() and champion.isdigit()):
        return version != champion
    return int(version) > int(champion)
