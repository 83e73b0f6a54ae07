"""Registry moves and deploy hooks a canary decision asks for, as plain data.

A decision is persisted with its list of steps before anything is applied; a
later tick applies the steps that are not done yet and reports them done. So
every step is written to be applied twice safely:

- ``SetAlias``: point ``alias`` at ``version``. Read first: already there is a
  no-op. ``expect`` (when ``guarded``) is the version the alias must point to
  before the move (None: absent), so a move never clobbers an alias a person
  moved meanwhile; the adapter raises a conflict instead.
- ``DeleteAlias``: remove ``alias`` if it points to ``version`` (any version when
  None); absent is a no-op.
- ``TagVersion``: set tags on a model version; tags already equal are skipped.
- ``HookCall``: call the configured deploy hooks once (command, webhook, GitHub,
  Argo...), with ``idempotency_key`` for receivers that de-duplicate.

Each step carries a ``key`` unique within its decision, used to record it done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "STATUS_TAG",
    "DeleteAlias",
    "HookCall",
    "Move",
    "SetAlias",
    "Step",
    "TagVersion",
    "split_steps",
    "step_from_dict",
]

# the tags driftloop writes on model versions (prefix driftloop.canary.)
STATUS_TAG = "driftloop.canary.status"
HookEvent = Literal["start", "promote", "rollback", "abort", "revert"]


@dataclass(frozen=True)
class SetAlias:
    key: str
    model: str
    alias: str
    version: str
    expect: str | None = None
    guarded: bool = False

    def describe(self) -> str:
        return f"{self.model}@{self.alias} -> v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "set_alias", "key": self.key, "model": self.model, "alias": self.alias,
                "version": self.version, "expect": self.expect, "guarded": self.guarded}


@dataclass(frozen=True)
class DeleteAlias:
    key: str
    model: str
    alias: str
    version: str | None = None

    def describe(self) -> str:
        which = "" if self.version is None else f" (if on v{self.version})"
        return f"delete {self.model}@{self.alias}{which}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "delete_alias", "key": self.key, "model": self.model,
                "alias": self.alias, "version": self.version}


@dataclass(frozen=True)
class TagVersion:
    key: str
    model: str
    version: str
    tags: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        return f"tag {self.model} v{self.version} " + ", ".join(f"{k}={v[:40]}"
                                                               for k, v in self.tags[:2])

    def to_dict(self) -> dict[str, Any]:
        return {"type": "tag_version", "key": self.key, "model": self.model,
                "version": self.version, "tags": dict(self.tags)}


@dataclass(frozen=True)
class HookCall:
    """One notification of the deploy hooks; the payload a hook receives is ``to_dict()``.

    ``champion``: the version serving as champion once the decision is applied;
    ``challenger``: the version the canary judged; ``previous_champion``: the
    champion it replaced (promote) or that was rolled back (revert), else None.
    """

    key: str
    event: HookEvent
    model: str
    champion: str | None
    challenger: str | None
    previous_champion: str | None
    idempotency_key: str
    sentence: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.event} hook for {self.model} ({self.idempotency_key})"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "hook", "key": self.key, "event": self.event, "model": self.model,
                "champion": self.champion, "challenger": self.challenger,
                "previous_champion": self.previous_champion,
                "idempotency_key": self.idempotency_key, "sentence": self.sentence,
                "evidence": dict(self.evidence)}


Move = SetAlias | DeleteAlias | TagVersion
Step = Move | HookCall


def split_steps(steps: Iterable[Step]) -> tuple[tuple[Move, ...], tuple[HookCall, ...]]:
    """Registry moves (for ``registry.apply_moves``) and hook calls, each in order."""
    moves: list[Move] = []
    hooks: list[HookCall] = []
    for item in steps:
        if isinstance(item, HookCall):
            hooks.append(item)
        else:
            moves.append(item)
    return tuple(moves), tuple(hooks)


def step_from_dict(data: Mapping[str, Any]) -> Step:
    kind = data.get("type")
    if kind == "set_alias":
        return SetAlias(data["key"], data["model"], data["alias"], str(data["version"]),
                        data.get("expect"), bool(data.get("guarded", False)))
    if kind == "delete_alias":
        version = data.get("version")
        return DeleteAlias(data["key"], data["model"], data["alias"],
                           None if version is None else str(version))
    if kind == "tag_version":
        tags = tuple((str(k), str(v)) for k, v in dict(data["tags"]).items())
        return TagVersion(data["key"], data["model"], str(data["version"]), tags)
    if kind == "hook":
        return HookCall(data["key"], data["event"], data["model"], data.get("champion"),
                        data.get("challenger"), data.get("previous_champion"),
                        data["idempotency_key"], data.get("sentence", ""),
                        dict(data.get("evidence") or {}))
    raise ValueError(
        f"canary step type: got {kind!r}, expected set_alias, delete_alias, tag_version or hook"
    )
