"""``POST /api/v1/mlflow/webhook``: MLflow registry webhooks in (MLflow 3.x).

Order of work, so that nothing is read from an unverified body: the app-wide guard
(403 foreign Origin, 415 not JSON) -> read at most ``max_body_bytes`` (413) -> verify
``X-MLflow-Signature`` (``v1,`` base64 HMAC-SHA256 of ``"{delivery id}.{timestamp}.
{body}"`` under the secret named by ``mlflow.webhook_secret_env``), the timestamp
within 300 s of now, and a delivery id not accepted before (``ReplayMemory``): any
failure is a 401 with the reason -> parse (400 with the reason) -> hand events of a
model with a canary to the canary reactor, which reads the registry at its next tick
(run at once) -> 200.

A delivery is only "look now": the registry is the truth (see
``monitor.react.canary_versions``). Events of other models and other entities
answer 200 with ``"action": "ignored"``, so MLflow does not retry them. Without a
configured secret every delivery is refused: an unsigned webhook could be anyone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, SecretStr

from monitor.api.bodies import json_body
from monitor.api.errors import json_response
from monitor.api.guards import read_body
from monitor.api.signatures import ReplayMemory
from monitor.react import CanaryReactor
from triggers.mlflow_webhook import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    MlflowWebhookError,
    parse_mlflow_webhook,
    verify_mlflow_signature,
)
from triggers.text import printable

__all__ = ["MAX_SKEW_SECONDS", "MlflowWebhookAnswer", "create_mlflow_webhook_router"]

log = logging.getLogger("driftloop.api")

MAX_SKEW_SECONDS = 300.0
_PAYLOAD_SCHEMA = {
    "type": "object", "required": ["entity", "action", "data"],
    "description": "MLflow registry webhook body; signed with X-MLflow-Signature",
    "properties": {"entity": {"type": "string"}, "action": {"type": "string"},
                   "timestamp": {"type": "string"}, "data": {"type": "object"}},
}


class MlflowWebhookAnswer(BaseModel):
    event: str
    model: str | None
    action: str  # "poll": the canary reads the registry now; "ignored"
    sentence: str


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_mlflow_webhook_router(
    reactor: CanaryReactor | None, secret: SecretStr | None, *,
    max_body_bytes: int = 1_048_576, clock: Callable[[], datetime] = _utcnow,
) -> APIRouter:
    """The route for ``app.include_router``; ``secret``: the value of
    ``mlflow.webhook_secret_env`` (None: every delivery is refused)."""
    router = APIRouter(prefix="/api/v1", tags=["triggers"])
    seen = ReplayMemory(2 * MAX_SKEW_SECONDS)

    @router.post("/mlflow/webhook", response_model=MlflowWebhookAnswer,
                 responses={400: {}, 401: {}, 403: {}, 413: {}, 415: {}},
                 openapi_extra={
                     **json_body(_PAYLOAD_SCHEMA, required=True),
                     "parameters": [{"name": name, "in": "header", "required": True,
                                     "schema": {"type": "string"}} for name in
                                    (SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_ID_HEADER)],
                 })
    async def mlflow_webhook(request: Request) -> Response:
        """MLflow registry webhooks (``model_version.created``, alias created/deleted):
        401 with the reason unless ``X-MLflow-Signature`` verifies under the secret of
        ``mlflow.webhook_secret_env``, ``X-MLflow-Timestamp`` is within 300 s and the
        delivery id is new; then 200, and a model with a canary reads the registry at
        once (``action: poll``); other events answer 200 ``ignored``."""
        body = await read_body(request, max_body_bytes)
        headers = request.headers
        delivery = headers.get(DELIVERY_ID_HEADER)
        now = clock()
        check = verify_mlflow_signature(
            "" if secret is None else secret.get_secret_value(), delivery,
            headers.get(TIMESTAMP_HEADER), body, headers.get(SIGNATURE_HEADER), now,
            MAX_SKEW_SECONDS)
        if not check:
            log.warning("MLflow webhook refused: %s", check.reason)
            raise HTTPException(401, f"MLflow webhook refused: {check.reason}; expected a "
                                "delivery signed with the secret named by "
                                "mlflow.webhook_secret_env")
        if not seen.first_time(delivery, now.timestamp()):
            raise HTTPException(401, f"MLflow webhook refused: {DELIVERY_ID_HEADER} "
                                f"{printable(str(delivery), 80)} was already received; "
                                "expected a new delivery (a replayed request)")
        try:
            event = parse_mlflow_webhook(body, max_body_bytes)
        except MlflowWebhookError as exc:
            raise HTTPException(exc.status_code, exc.reason) from None
        model = getattr(event, "model", None)
        if event.event.startswith("model_version_tag."):
            action, why = "ignored", "tag changes do not start or move a canary"
        elif model is None:
            action, why = "ignored", "not a model version or alias event"
        elif reactor is not None and reactor.look_now(model):
            action, why = "poll", f"the canary of {model} reads the registry now"
        else:
            action, why = "ignored", f"model {printable(model, 80)} has no canary"
        sentence = f"MLflow {event.event}: {why}"
        log.info("%s", sentence)
        return json_response({"event": event.event, "model": model, "action": action,
                              "sentence": sentence})

    return router
