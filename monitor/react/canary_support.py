"""What the canary reactor needs around it: config -> policies and deploy hooks, a hook
call -> a launch request, the stored document <-> the state machine's state, and the
answer the HTTP routes give.

Kept apart from ``monitor.react.canary`` so that module reads as the tick's steps only.

Deploy hooks reuse the retrain launchers (``triggers.launchers``): a hook call becomes a
``LaunchRequest`` whose placeholders are ``{model}``, ``{version}`` = the challenger (the
version the canary judged), ``{reason}`` = the decision (start, promote, rollback, abort,
revert), ``{idempotency_key}`` = the decision id (the same on every retry of that
decision, and across restarts), ``{window_start}`` / ``{window_end}`` empty. Targets
with a JSON body (webhook, GitHub, Airflow) also get ``details``: the champion serving
after the decision, the challenger, the previous champion, the decision and its
evidence (``triggers.moves.HookCall.to_dict()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from detectors import ArmStats
from monitor.config import Config, ModelConfig, read_secret
from monitor.react.support import known_secrets
from monitor.store import Store
from triggers.canary import CanaryPolicy
from triggers.canary_state import CanaryState
from triggers.launch import Launcher, LaunchRequest
from triggers.launchers.registry import build_launcher
from triggers.moves import HookCall

__all__ = [
    "HOOK_ATTEMPTS",
    "RUN_TAG",
    "CanaryOutcome",
    "aligned_arms",
    "build_hooks",
    "canary_policies",
    "describe",
    "hook_request",
    "load_state",
]

# the MLflow run tag a retrain launched by driftloop carries: its launch's idempotency
# key ({idempotency_key}, or DRIFTLOOP_IDEMPOTENCY_KEY in a command's environment)
RUN_TAG = "driftloop.idempotency_key"
# attempts of one hook call within a tick; a retryable failure is tried again next tick
HOOK_ATTEMPTS = 2


@dataclass(frozen=True)
class CanaryOutcome:
    """What a request to the canary led to (the HTTP routes answer with it).

    ``kind``: the decision kind of ``triggers.canary`` (promote, rollback, abort,
    revert, ignore, refuse...); ``changed``: whether the state moved."""

    model: str
    action: str
    kind: str
    sentence: str
    changed: bool
    phase: str | None = None
    decision_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "action": self.action, "decision": self.kind,
                "sentence": self.sentence, "changed": self.changed, "phase": self.phase,
                "decision_id": self.decision_id}


def canary_policies(config: Config) -> dict[str, CanaryPolicy]:
    """The policy of every model with a ``canary`` section; ValueError names a bad one."""
    policies: dict[str, CanaryPolicy] = {}
    for name, model in config.models.items():
        if model.canary is None:
            continue
        try:
            policies[name] = _policy(model)
        except ValueError as exc:
            raise ValueError(f"models.{name}.canary: {exc}") from None
    if policies and not config.mlflow.tracking_uri:
        raise ValueError(f"models.{next(iter(policies))}.canary: needs the MLflow registry; "
                         "expected mlflow.tracking_uri to be set")
    return policies


def _policy(model: ModelConfig) -> CanaryPolicy:
    assert model.canary is not None
    return CanaryPolicy.from_config(model.canary.policy_section(), model.performance.metric)


def build_hooks(config: Config, client: httpx.Client | None = None) -> dict[str, Launcher]:
    """One launcher per model with ``canary.hook`` set; ValueError names a bad one."""
    hooks: dict[str, Launcher] = {}
    redact = known_secrets(config)
    for name, model in config.models.items():
        section = None if model.canary is None else model.canary.hook
        if section is None:
            continue
        fields = section.model_dump()
        secret_env = next((v for k, v in fields.items() if k.endswith("_env") and v), None)
        http = client or httpx.Client(timeout=getattr(section, "timeout", 10.0))
        try:
            hooks[name] = build_launcher(fields, client=http, secret=read_secret(secret_env),
                                         max_attempts=HOOK_ATTEMPTS, redact=redact)
        except ValueError as exc:
            raise ValueError(f"models.{name}.canary.hook: {exc}") from None
    return hooks


def hook_request(hook: HookCall) -> LaunchRequest:
    """The launch contract's request for one hook call (see the module docstring)."""
    details = hook.to_dict()
    for internal in ("type", "key"):
        details.pop(internal, None)
    return LaunchRequest(hook.model, hook.challenger, hook.event, None, None,
                         hook.idempotency_key, hook.sentence, details=details)


def load_state(store: Store, model: str) -> CanaryState | None:
    """The model's canary as last persisted (None: none yet)."""
    document = store.load_canary_document(model)
    return None if document is None else CanaryState.from_dict(document)


def describe(state: CanaryState | None, policy: CanaryPolicy) -> Mapping[str, Any]:
    """Counters against their limits, for people."""
    if state is None:
        return {}
    return {"passed": state.passed, "iterations": policy.iterations,
            "failed_checks": state.failed_checks, "threshold": policy.threshold,
            "inconclusive_in_a_row": state.inconclusive_in_a_row,
            "max_inconclusive": policy.max_inconclusive, "checks": state.checks}


def aligned_arms(champion: ArmStats, challenger: ArmStats) -> tuple[ArmStats, ArmStats]:
    """An arm that saw no prediction gets empty bins like the other's (the judge compares
    histograms over the same bins)."""
    cp, ch = champion.prediction_counts, challenger.prediction_counts
    if cp and not ch:
        challenger = ArmStats(challenger.n_events, challenger.n_invalid, (0,) * len(cp),
                              challenger.loss, challenger.latency, challenger.estimated)
    elif ch and not cp:
        champion = ArmStats(champion.n_events, champion.n_invalid, (0,) * len(ch),
                            champion.loss, champion.latency, champion.estimated)
    return champion, challenger
