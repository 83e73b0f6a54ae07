"""HTTP routes that start retraining: the alert webhook and the manual request.

``POST /api/v1/alerts`` takes Alertmanager (payload version 4) and Grafana
(version 1) webhooks. Order of work, so that a 2xx means "safely received":
the app-wide guard (403 foreign Origin, 415 not JSON) -> authenticate (bearer
token, or Grafana's timestamped HMAC when a secret is configured, see
``monitor.api.signatures``) -> read at most ``max_body_bytes`` (413) -> parse
(400 with the reason) ->
persist every alert (deduplicated on fingerprint and startsAt) -> hand the
firing ``action="retrain"`` alerts of known models to the reactor -> 200.
A state store failure answers 503 so Alertmanager retries; every other
problem is a 4xx, which Alertmanager drops. Resolved alerts are recorded but
never retrain.

``POST /api/v1/models/{model}/retrain`` is a manual request: 202 with the
decision sentence and the run when a retrain started, 409 with the sentence
when the policy held it back (a run in flight, ``manual`` not in
``retrain.on``, the same request id again); an ``Idempotency-Key`` longer than
``MAX_IDEMPOTENCY_KEY_CHARS`` is a 400.

Text from callers (alert names, a note) reaches logs and sentences escaped
(``triggers.text.printable``); no answer carries a secret (``monitor.api.errors``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from monitor.api.bodies import ALERT_PAYLOAD_SCHEMA, json_body
from monitor.api.guards import read_body, require_model, require_token
from monitor.api.signatures import (
    GRAFANA_SIGNATURE_HEADER,
    GRAFANA_TIMESTAMP_HEADER,
    GrafanaVerifier,
)
from monitor.react import Outcome, RetrainReactor
from monitor.store import Store
from triggers.alerts import (
    Alert,
    AlertBatch,
    AlertPayloadError,
    parse_alert_payload,
    retrain_requests,
)
from triggers.evidence import ManualRequest
from triggers.text import printable

__all__ = [
    "GRAFANA_SIGNATURE_HEADER",
    "MAX_IDEMPOTENCY_KEY_CHARS",
    "ManualRetrainBody",
    "create_trigger_router",
]

log = logging.getLogger("driftloop.api")

# the body's request_id has the same bound
MAX_IDEMPOTENCY_KEY_CHARS = 200


class ManualRetrainBody(BaseModel):
    """Optional body of a manual request; ``request_id`` makes a retry idempotent."""

    model_config = ConfigDict(extra="forbid")

    request_id: (
        Annotated[str, Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS)] | None) = None
    requested_by: Annotated[str, Field(max_length=200)] = ""
    note: Annotated[str, Field(max_length=1000)] = ""
    version: Annotated[str, Field(max_length=200)] | None = None


def _json(payload: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code, media_type="application/json")


def _unavailable(exc: Exception) -> HTTPException:
    # SQLAlchemy's message spans lines (statement, parameters): the cause is the first
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
    log.warning("state store unavailable: %s", printable(cause[0], 300))
    return HTTPException(
        503,
        f"state store unavailable ({type(exc).__name__}); nothing was lost, retry later",
        headers={"Retry-After": "5"},
    )


def _alert_record(batch: AlertBatch, alert: Alert) -> dict[str, Any]:
    return {
        "source": batch.source,
        "receiver": batch.receiver,
        "group_key": batch.group_key,
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        "generator_url": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }


def create_trigger_router(
    store: Store,
    reactor: RetrainReactor,
    *,
    models: Sequence[str],
    max_body_bytes: int = 1_048_576,
    grafana_secret: SecretStr | None = None,
    grafana_timestamp_header: str | None = GRAFANA_TIMESTAMP_HEADER,
    alert_names: Collection[str] = (),
    clock: Callable[[], datetime] | None = None,
) -> APIRouter:
    """Routes for ``app.include_router``; the app must come from ``monitor.api.create_app``
    (its ``auth_token`` and ``models`` state back ``require_token`` and ``require_model``,
    and its app-wide ``guard_mutation`` covers these routes).
    ``alert_names``: alertnames that ask for a retrain even without ``action="retrain"``.
    ``grafana_timestamp_header``: ``server.grafana_timestamp_header``; ``clock``: now (UTC)
    for the Grafana timestamp check.
    """
    router = APIRouter(prefix="/api/v1", tags=["triggers"])
    known = set(models)
    grafana = None if grafana_secret is None else GrafanaVerifier(
        grafana_secret, grafana_timestamp_header, clock=clock or _utcnow)

    async def authenticated_body(request: Request) -> bytes:
        signature = request.headers.get(GRAFANA_SIGNATURE_HEADER)
        if grafana is not None and signature is not None:
            body = await read_body(request, max_body_bytes)
            grafana.verify(request.headers, body)
            return body
        if grafana_secret is not None and request.app.state.auth_token is None:
            raise HTTPException(
                401, f"missing {GRAFANA_SIGNATURE_HEADER}: this receiver verifies Grafana's HMAC"
            )
        require_token(request, None)
        return await read_body(request, max_body_bytes)

    @router.post("/alerts", responses={400: {}, 401: {}, 403: {}, 413: {}, 415: {}, 503: {}},
                 openapi_extra=json_body(ALERT_PAYLOAD_SCHEMA, required=True))
    # a plain default, not Annotated: the dependency is local to this factory and
    # postponed annotations cannot see it
    def receive_alerts(body: bytes = Depends(authenticated_body)) -> Response:
        try:
            batch = parse_alert_payload(body, max_body_bytes)
        except AlertPayloadError as exc:
            raise HTTPException(exc.status_code, exc.reason) from None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # a payload shape the parser did not foresee is still bad input, not a 500;
            # logged with the trace so the parser gets fixed
            log.warning("alert payload the parser could not handle", exc_info=True)
            raise HTTPException(
                400,
                f"alert payload: not understood ({type(exc).__name__}); expected an "
                "Alertmanager (version '4') or Grafana (version '1') webhook body",
            ) from None
        try:
            new = 0
            for alert in batch.alerts:
                starts_at = alert.starts_at.astimezone(UTC).isoformat()
                new += store.record_alert(
                    alert.fingerprint, starts_at, status=alert.status,
                    payload=_alert_record(batch, alert), model=alert.labels.get("model"),
                )
            decisions: list[dict[str, Any]] = []
            ignored: list[str] = []
            # repeats go to the policy too: it remembers handled alerts, and a repeat is how
            # an alert recorded just before a crash still reaches the policy
            for trigger in retrain_requests(batch, alert_names):
                if trigger.model not in known:
                    ignored.append(
                        f"alert {trigger.alertname}: unknown model '{printable(trigger.model)}'"
                        f"; configured: {', '.join(sorted(known)) or 'none'}"
                    )
                    continue
                outcome = reactor.on_alert(trigger)
                decisions.append({"alertname": trigger.alertname, **outcome.to_dict()})
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return _json(
            {
                "received": len(batch.alerts),
                "new": new,
                "duplicates": len(batch.alerts) - new,
                "decisions": decisions,
                "ignored": ignored,
            }
        )

    @router.post(
        "/models/{model}/retrain",
        dependencies=[Depends(require_token)],
        status_code=202,
        responses={400: {}, 401: {}, 403: {}, 404: {}, 409: {}, 413: {}, 415: {}, 422: {},
                   503: {}},
        openapi_extra={
            **json_body(ManualRetrainBody.model_json_schema(), required=False),
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string",
                                       "maxLength": MAX_IDEMPOTENCY_KEY_CHARS}}],
        },
    )
    async def manual_retrain(
        request: Request, model: Annotated[str, Depends(require_model)]
    ) -> Response:
        key = request.headers.get("idempotency-key")
        if key is not None and len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
            raise HTTPException(
                400, f"Idempotency-Key header: got {len(key)} characters, expected at most "
                f"{MAX_IDEMPOTENCY_KEY_CHARS}")
        raw = await read_body(request, max_body_bytes)
        try:
            empty = not raw.strip()
            body = ManualRetrainBody() if empty else ManualRetrainBody.model_validate_json(raw)
        except ValidationError as exc:
            raise HTTPException(422, _reason(exc)) from None
        request_id = body.request_id or key or None
        manual = ManualRequest(
            request_id=request_id or _new_id(),
            requested_by=body.requested_by,
            note=body.note,
            version=body.version,
        )
        try:
            outcome: Outcome = await run_in_threadpool(reactor.on_manual, model, manual)
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        payload = {"request_id": manual.request_id, **outcome.to_dict()}
        if outcome.action != "retrain":
            return _json({"detail": outcome.sentence, **payload}, 409)
        return _json(payload, 202)

    return router


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        loc = ".".join(str(p) for p in error["loc"]) or "body"
        got = repr(error.get("input"))
        got = got if len(got) <= 60 else got[:57] + "..."
        parts.append(f"retrain request {loc}: got {got}, expected {_expected(error)}")
    return "; ".join(parts)


def _expected(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "one of " + ", ".join(ManualRetrainBody.model_fields)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "a JSON object (or an empty body)"
    if kind == "json_invalid":
        return f"a JSON object, not invalid JSON ({ctx.get('error', 'unparsable')})"
    if kind == "string_type":
        return "a string"
    if kind == "string_too_short":
        return f"text of at least {ctx.get('min_length')} character(s)"
    if kind == "string_too_long":
        return f"text of at most {ctx.get('max_length')} characters"
    return str(error["msg"]).lower()
