"""Acting on what the detectors found: when to retrain, and what a canary decides.

Pure modules (no clock, no I/O; exported here):

- ``triggers.policy``: ``decide(state, evidence, now, policy) -> Decision`` (retrain).
- ``triggers.state``: ``TriggerState`` and the retrain transition table.
- ``triggers.evidence``: window results, alerts, manual requests, run outcomes.
- ``triggers.alerts``: Alertmanager v4 / Grafana v1 webhook payloads and signatures.
- ``triggers.canary``: ``start(...)`` and ``step(state, event, now, policy)`` of a
  canary; ``canary_state`` holds ``CanaryState`` and the canary transition table,
  ``canary_policy`` its settings and events, ``canary_plan`` the registry moves and
  hooks of each decision, ``moves`` those steps as data.
- ``triggers.mlflow_webhook``: MLflow registry webhook signature and payloads.
- ``triggers.launch``: the launch contract (request, run reference, status, error,
  placeholder pattern) every launcher shares.
- ``triggers.text`` / ``triggers.redact``: untrusted text escaped for log lines, URLs and
  secret values kept out of what is stored and shown.

Adapters, imported explicitly so the pure modules load without httpx or MLflow:

- ``triggers.launchers``: command, webhook, KFP, Argo, GitHub, Airflow launchers.
- ``triggers.registry``: ``ModelRegistry``, ``MlflowRegistry``, ``apply_moves``.

This package may import ``detectors`` but never ``monitor``.
"""

from __future__ import annotations

from triggers.alerts import (
    AlertBatch,
    AlertPayloadError,
    AlertTrigger,
    parse_alert_payload,
    retrain_requests,
    verify_grafana_signature,
)
from triggers.canary import (
    CanaryDecision,
    CanaryEvent,
    CanaryPolicy,
    Judged,
    OperatorRequest,
    StepsDone,
    StepsFailed,
    start,
    step,
)
from triggers.canary_state import TRANSITIONS as CANARY_TRANSITIONS
from triggers.canary_state import CanaryPhase, CanaryState
from triggers.evidence import (
    AlertEvidence,
    Evidence,
    ManualRequest,
    Policy,
    RunFinished,
    WindowEvidence,
)
from triggers.mlflow_webhook import (
    MlflowEvent,
    MlflowWebhookError,
    SignatureCheck,
    parse_mlflow_webhook,
    verify_mlflow_signature,
)
from triggers.moves import DeleteAlias, HookCall, Move, SetAlias, Step, TagVersion, split_steps
from triggers.policy import Decision, decide, idempotency_key
from triggers.state import TRANSITIONS, TriggerState

__all__ = [
    "CANARY_TRANSITIONS",
    "TRANSITIONS",
    "AlertBatch",
    "AlertEvidence",
    "AlertPayloadError",
    "AlertTrigger",
    "CanaryDecision",
    "CanaryEvent",
    "CanaryPhase",
    "CanaryPolicy",
    "CanaryState",
    "Decision",
    "DeleteAlias",
    "Evidence",
    "HookCall",
    "Judged",
    "ManualRequest",
    "MlflowEvent",
    "MlflowWebhookError",
    "Move",
    "OperatorRequest",
    "Policy",
    "RunFinished",
    "SetAlias",
    "SignatureCheck",
    "Step",
    "StepsDone",
    "StepsFailed",
    "TagVersion",
    "TriggerState",
    "WindowEvidence",
    "decide",
    "idempotency_key",
    "parse_alert_payload",
    "parse_mlflow_webhook",
    "retrain_requests",
    "split_steps",
    "start",
    "step",
    "verify_grafana_signature",
    "verify_mlflow_signature",
]
