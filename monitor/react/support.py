"""What the retrain reactor needs around it: config -> policy and launchers, the mapping
between the policy's state and the store's trigger row, and the reactor's answer.

Kept apart from ``monitor.react.reactor`` so that module reads as the decide-persist-act
steps only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from monitor.config import Config, ModelConfig, read_secret
from monitor.store import TriggerState as StoredTriggerState
from triggers.evidence import Policy
from triggers.launch import Launcher, LaunchRequest
from triggers.launchers.registry import build_launcher
from triggers.state import TriggerState

__all__ = [
    "Outcome",
    "build_launchers",
    "launch_request_from_dict",
    "ms",
    "policy_for",
    "state_from_row",
    "state_to_row",
    "window_id",
]


@dataclass(frozen=True)
class Outcome:
    """What one piece of evidence led to (the HTTP routes answer with it)."""

    model: str
    action: str
    reason: str
    sentence: str
    idempotency_key: str | None = None
    launch: str | None = None  # started, retrying, failed, duplicate
    run: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "action": self.action,
            "reason": self.reason,
            "sentence": self.sentence,
            "idempotency_key": self.idempotency_key,
            "launch": self.launch,
            "run": dict(self.run) if self.run is not None else None,
        }


def policy_for(model: ModelConfig) -> Policy:
    retrain = model.retrain
    return Policy(
        on=frozenset(retrain.on),
        consecutive_windows=retrain.consecutive_windows,
        cooldown_seconds=retrain.cooldown,
        drift_share=model.drift.share,
    )


def build_launchers(config: Config, client: httpx.Client | None = None) -> dict[str, Launcher]:
    """One launcher per model with ``retrain.launcher`` set; ValueError names a bad one."""
    launchers: dict[str, Launcher] = {}
    for name, model in config.models.items():
        section = model.retrain.launcher
        if section is None:
            continue
        fields = section.model_dump()
        secret_env = next((v for k, v in fields.items() if k.endswith("_env") and v), None)
        http = client or httpx.Client(timeout=getattr(section, "timeout", 10.0))
        try:
            launchers[name] = build_launcher(
                fields, client=http, secret=read_secret(secret_env),
                max_attempts=model.retrain.max_attempts,
            )
        except ValueError as exc:
            raise ValueError(f"models.{name}.retrain.launcher: {exc}") from None
    return launchers


def ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def window_id(result: Mapping[str, Any]) -> str:
    # windows are numbered per (version, partition): the partition belongs in the identity
    return f"{result.get('version')}:p{result.get('partition', 0)}:{result.get('window')}"


def state_from_row(model: str, row: StoredTriggerState | None) -> TriggerState:
    """The policy's state is kept whole in the row's ``extra``; the columns are a view."""
    if row is None or "policy" not in row.extra:
        return TriggerState(model)
    return TriggerState.from_dict(dict(row.extra["policy"]))


def state_to_row(state: TriggerState) -> StoredTriggerState:
    return StoredTriggerState(
        model=state.model,
        consecutive={
            "dataset_drift": state.drift_windows,
            "performance_drop": state.performance_windows,
            "estimated_performance_drop": state.estimated_windows,
            "quality": state.quality_windows,
        },
        last_trigger_ms=ms(state.last_launch_at),
        cooldown_until_ms=ms(state.cooldown_until),
        running_run_id=state.running_key,
        extra={"policy": state.to_dict()},
    )


def launch_request_from_dict(data: Mapping[str, Any]) -> LaunchRequest:
    def when(value: Any) -> datetime | None:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None

    return LaunchRequest(
        str(data["model"]), data.get("version") or None, str(data["reason"]),
        when(data.get("window_start")), when(data.get("window_end")),
        str(data["idempotency_key"]), str(data.get("sentence", "")),
    )
