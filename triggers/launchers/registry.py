"""Build a launcher from a plain mapping (a config section's fields).

``build_launcher(section.model_dump(), client=..., secret=...)``: the
``type`` key picks the class; ``*_env`` keys are dropped (the service resolves
them to ``secret`` with ``monitor.config.read_secret``); every other key is a
constructor argument of the same name. ``redact`` lists the service's secret
values (API token, HMAC secrets, launcher tokens, database password) that the
command launcher hides from the output tail it reports. Nothing is registered at import time:
the table below is the whole list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx

from triggers.launch import Launcher
from triggers.launchers.airflow import AirflowLauncher
from triggers.launchers.argo import ArgoLauncher
from triggers.launchers.command import CommandLauncher
from triggers.launchers.github import GithubLauncher
from triggers.launchers.kfp import KfpLauncher
from triggers.launchers.webhook import WebhookLauncher

__all__ = ["LAUNCHER_TYPES", "build_launcher"]

LAUNCHER_TYPES: dict[str, type[Any]] = {
    "command": CommandLauncher,
    "webhook": WebhookLauncher,
    "kfp": KfpLauncher,
    "argo": ArgoLauncher,
    "github": GithubLauncher,
    "airflow": AirflowLauncher,
}


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


def _plain(value: str | _Secret) -> str:
    return value if isinstance(value, str) else value.get_secret_value()


def build_launcher(
    fields: Mapping[str, Any],
    *,
    client: httpx.Client | None = None,
    secret: str | _Secret | None = None,
    max_attempts: int = 5,
    retry_wait_seconds: float = 0.5,
    redact: Sequence[str | _Secret] = (),
) -> Launcher:
    """A launcher for ``fields["type"]``; ValueError naming the type or key otherwise."""
    kind = fields.get("type")
    cls = LAUNCHER_TYPES.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown launcher type {kind!r}; known: {', '.join(LAUNCHER_TYPES)}")
    kwargs = {k: v for k, v in fields.items() if k != "type" and not k.endswith("_env")}
    if cls is CommandLauncher:
        kwargs["redact"] = tuple(_plain(value) for value in redact)
    else:
        kwargs.update(
            client=client, secret=None if secret is None else _plain(secret),
            max_attempts=max_attempts,
            retry_wait_seconds=retry_wait_seconds,
        )
    try:
        launcher: Launcher = cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{kind} launcher: {exc}") from None
    return launcher
