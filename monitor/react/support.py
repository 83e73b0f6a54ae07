"""What the retrain reactor needs around it: config -> policy and launchers, the mapping
between the policy's state and the store's trigger row, and the reactor's answer.

Kept apart from ``monitor.react.reactor`` so that module reads as the decide-persist-act
steps only.
"""

from __future__ import annotations

import re
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
from triggers.redact import MIN_SECRET_CHARS, url_secrets
from triggers.state import TriggerState

__all__ = [
    "Outcome",
    "build_launchers",
    "known_secrets",
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
        use_estimate=model.performance.use_estimate,
    )


# kafka-python settings that hold credentials (sasl_plain_password, ssl_password, ...)
_SECRET_SETTING = re.compile(r"password|secret|token", re.IGNORECASE)
# launcher keys that hold a URL, whose userinfo and query may carry credentials
_URL_KEYS = ("url", "host", "api_url")


def known_secrets(config: Config) -> tuple[str, ...]:
    """Every secret value the service holds, for masking: the API token, the Grafana and
    MLflow HMAC secrets, each launcher's and canary hook's ``*_env`` secret, the password
    and query values of configured URLs (state store, MLflow, launchers, hooks) and Kafka
    credential settings.

    Values shorter than ``triggers.redact.MIN_SECRET_CHARS`` are left out (masking them
    would garble every message and protects nothing).
    """
    names = [config.server.auth_token_env, config.server.grafana_hmac_secret_env,
             config.mlflow.webhook_secret_env]
    values: list[str] = [*url_secrets(config.state.url)]
    if config.mlflow.tracking_uri:
        values += url_secrets(config.mlflow.tracking_uri)
    sections = [s for model in config.models.values()
                for s in (model.retrain.launcher, model.canary and model.canary.hook) if s]
    for section in sections:
        fields = section.model_dump()
        names += [v for k, v in fields.items() if k.endswith("_env") and isinstance(v, str)]
        values += [found for key in _URL_KEYS if isinstance(fields.get(key), str)
                   for found in url_secrets(fields[key])]
    for settings in (config.kafka.consumer, config.kafka.producer):
        values += [v for k, v in settings.items()
                   if _SECRET_SETTING.search(k) and isinstance(v, str)]
    for name in names:
        secret = read_secret(name)
        if secret is not None:
            values.append(secret.get_secret_value())
    return tuple(dict.fromkeys(v for v in values if len(v) >= MIN_SECRET_CHARS))


def build_launchers(config: Config, client: httpx.Client | None = None) -> dict[str, Launcher]:
    """One launcher per model with ``retrain.launcher`` set; ValueError names a bad one.

    Every launcher learns :func:`known_secrets` (the command launcher masks them in the
    output it reports).
    """
    launchers: dict[str, Launcher] = {}
    redact = known_secrets(config)
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
                max_attempts=model.retrain.max_attempts, redact=redact,
            )
        except ValueError as exc:
            raise ValueError(f"models.{name}.retrain.launcher: {exc}") from None
    return launchers


def ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def window_id(result: Mapping[str, Any]) -> str:
    # windows are numbered per (version, partition): the partition belongs in the identity;
    # a window merged from partial summaries (partition null) has its own key, "m"
    partition = result.get("partition", 0)
    stream = "m" if partition is None else f"p{partition}"
    return f"{result.get('version')}:{stream}:{result.get('window')}"


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
