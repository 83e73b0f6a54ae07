"""Canary routes: the state and verdict, operator actions, and Flagger's webhook gates.

- ``GET /api/v1/models/{model}/canary`` (a read: ``protect_reads``): the state, the
  last verdict's evidence, and a top-level ``verdict`` (``pass | fail |
  inconclusive``) for an Argo Rollouts ``web`` metric (``monitor.api.canary_views``).
- ``POST /api/v1/models/{model}/canary/{action}`` (bearer token): ``abort``,
  ``promote`` or ``rollback`` (of a running canary, or of a completed promotion).
  202 with the decision sentence (the registry moves follow at the canary job's
  next tick, run at once); 200 when the same request id was handled before; 409 with
  the sentence when the state machine refuses now; 404 for a model without a canary
  or an unknown action.
- ``POST /api/v1/canary/flagger/{gate}``: Flagger's webhook (body ``{name,
  namespace, phase, checksum, metadata}``; the model is ``metadata.model``, else the
  canary's ``name``). ``confirm-promotion`` answers 200 only once driftloop promotes
  (promoting, succeeded); ``rollback`` answers 200 ("roll back now") once driftloop
  rolls back, aborts or fails, or when the last check failed. A closed gate answers
  403 with the reason. The gate changes nothing in driftloop: it is a read guarded
  like one (``protect_reads``; Flagger sends no headers of its own choosing).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from monitor.api.bodies import json_body
from monitor.api.canary_views import (
    FAILED_PHASES,
    PASSED_PHASES,
    CanaryActionResponse,
    CanaryResponse,
    GateResponse,
    canary_payload,
    verdict_of,
)
from monitor.api.errors import json_response, shown
from monitor.api.guards import protect_reads, read_body, require_model, require_token
from monitor.react import CanaryReactor
from triggers.text import printable

__all__ = ["ACTIONS", "GATES", "CanaryActionBody", "FlaggerBody", "create_canary_router"]

ACTIONS = ("abort", "promote", "rollback")
GATES = ("confirm-promotion", "rollback")
MAX_REQUEST_ID_CHARS = 200


class CanaryActionBody(BaseModel):
    """Optional body of an operator action; ``request_id`` makes a retry idempotent."""

    model_config = ConfigDict(extra="forbid")

    request_id: Annotated[str, Field(min_length=1, max_length=MAX_REQUEST_ID_CHARS)] | None = None
    requested_by: Annotated[str, Field(max_length=200)] = ""
    note: Annotated[str, Field(max_length=1000)] = ""


class FlaggerBody(BaseModel):
    """Flagger's webhook payload; unknown keys are ignored, as Flagger may add some."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: Annotated[str, Field(max_length=253)] = ""
    phase: Annotated[str, Field(max_length=100)] = ""
    checksum: Annotated[str, Field(max_length=200)] | None = None
    metadata: dict[str, str] = {}


def create_canary_router(reactor: CanaryReactor | None, *, max_body_bytes: int = 1_048_576
                         ) -> APIRouter:
    """Routes for ``app.include_router`` on an app of ``monitor.api.create_app``;
    ``reactor`` None: no model has a canary (every canary route answers 404)."""
    router = APIRouter(prefix="/api/v1", tags=["canary"])

    def reactor_for(model: str) -> CanaryReactor:
        if reactor is None or model not in reactor.policies:
            raise HTTPException(404, f"model {shown(model)} has no canary section in the "
                                "config; expected models.<name>.canary")
        return reactor

    @router.get("/models/{model}/canary", response_model=CanaryResponse,
                responses={404: {}, 503: {}}, dependencies=[Depends(protect_reads)])
    def get_canary(model: Annotated[str, Depends(require_model)]) -> Response:
        """The model's canary: phase, versions, counters against their limits, the last
        verdict's evidence, the decision pending (if any) and the running interval's
        events per version. ``verdict`` (``pass | fail | inconclusive``) is what an Argo
        Rollouts web metric reads (``successCondition: result.verdict == "pass"``): pass
        once driftloop promotes, fail once it rolls back, aborts or fails, else the last
        check's outcome. 200 with ``phase: null`` before any canary; 404 for a model
        without a canary section."""
        found = reactor_for(model)
        try:
            state = found.state(model)
        except SQLAlchemyError:
            raise _unavailable() from None
        return json_response(canary_payload(model, state, found.policies[model],
                                            found.interval(model),
                                            found.registry_error.get(model)))

    @router.post(
        "/models/{model}/canary/{action}", status_code=202,
        response_model=CanaryActionResponse, dependencies=[Depends(require_token)],
        responses={200: {"model": CanaryActionResponse}, 400: {}, 401: {}, 403: {}, 404: {},
                   409: {"model": CanaryActionResponse}, 413: {}, 415: {}, 422: {}, 503: {}},
        openapi_extra={
            **json_body(CanaryActionBody.model_json_schema(), required=False),
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "maxLength": MAX_REQUEST_ID_CHARS}}],
        },
    )
    async def canary_action(request: Request, model: Annotated[str, Depends(require_model)],
                            action: str) -> Response:
        """An operator's ``abort``, ``promote`` or ``rollback`` (of a running canary, or of
        a completed promotion: the champion goes back to the previous one). The request id
        is the body's ``request_id``, else the ``Idempotency-Key`` header, else a new one.
        202 with the decision sentence (its registry moves are applied by the canary job at
        once); 200 when that request id was handled before; 409 with the sentence when the
        canary's phase does not allow the action; 404 for an unknown action or a model
        without a canary."""
        if action not in ACTIONS:
            raise HTTPException(404, f"canary action {shown(action)}: expected one of "
                                f"{', '.join(ACTIONS)}")
        found = reactor_for(model)
        key = request.headers.get("idempotency-key")
        if key is not None and len(key) > MAX_REQUEST_ID_CHARS:
            raise HTTPException(400, f"Idempotency-Key header: got {len(key)} characters, "
                                f"expected at most {MAX_REQUEST_ID_CHARS}")
        raw = await read_body(request, max_body_bytes)
        try:
            body = CanaryActionBody.model_validate_json(raw) if raw.strip() \
                else CanaryActionBody()
        except ValidationError as exc:
            raise HTTPException(422, _reason("canary request", exc)) from None
        request_id = body.request_id or key or uuid.uuid4().hex
        try:
            outcome = await run_in_threadpool(found.request, model, action, request_id,
                                              body.requested_by, body.note)
        except SQLAlchemyError:
            raise _unavailable() from None
        payload = {**outcome.to_dict(), "request_id": request_id}
        if outcome.kind == "refuse":
            return json_response({"detail": outcome.sentence, **payload}, 409)
        return json_response(payload, 202 if outcome.changed else 200)

    @router.post(
        "/canary/flagger/{gate}", response_model=GateResponse,
        dependencies=[Depends(protect_reads)],
        responses={400: {}, 401: {}, 403: {"model": GateResponse}, 404: {}, 413: {}, 415: {},
                   422: {}, 503: {}},
        openapi_extra=json_body(FlaggerBody.model_json_schema(), required=True),
    )
    async def flagger_gate(request: Request, gate: str) -> Response:
        """Flagger's webhook gates, with Flagger's body (``name``, ``namespace``,
        ``phase``, ``checksum``, ``metadata``); the model is ``metadata.model``, else
        ``name``, and ``metadata.version`` (optional) must be the version driftloop
        judges. ``confirm-promotion``: 200 once driftloop promotes, else 403.
        ``rollback``: 200 ("roll back now") once driftloop rolls back, aborts or fails,
        or when its last check failed; else 403. The answer changes nothing."""
        if gate not in GATES:
            raise HTTPException(404, f"Flagger gate {shown(gate)}: expected one of "
                                f"{', '.join(GATES)}")
        raw = await read_body(request, max_body_bytes)
        try:
            body = FlaggerBody.model_validate_json(raw)
        except ValidationError as exc:
            raise HTTPException(422, _reason("Flagger webhook", exc)) from None
        model = body.metadata.get("model") or body.name
        known: list[str] = request.app.state.models
        if model not in known:
            raise HTTPException(404, f"Flagger canary {shown(body.name)}: no model named "
                                f"{shown(model)} (set metadata.model); configured: "
                                f"{', '.join(known) or 'none'}")
        found = reactor_for(model)
        try:
            state = await run_in_threadpool(found.state, model)
        except SQLAlchemyError:
            raise _unavailable() from None
        verdict = verdict_of(state)
        wanted = body.metadata.get("version")
        who = f"{model} v{state.challenger}" if state is not None else model
        if state is None:
            opened, why = False, f"no canary of {model} has run"
        elif wanted is not None and wanted != state.challenger:
            opened, why = False, (f"driftloop's canary of {model} judges v{state.challenger}, "
                                  f"not v{printable(wanted, 40)}")
        elif gate == "confirm-promotion":
            opened = state.phase in PASSED_PHASES
            why = f"canary {who} is {state.phase}" + ("" if opened else ": not promoted yet")
        else:
            opened = state.phase in FAILED_PHASES or (
                state.phase == "progressing" and state.last_outcome == "fail")
            why = f"canary {who} is {state.phase}, last check {state.last_outcome or 'none'}"
        answer = {"gate": gate, "model": model, "open": opened, "verdict": verdict,
                  "phase": None if state is None else state.phase, "sentence": why,
                  "checksum": body.checksum}
        return json_response(answer, 200 if opened else 403)

    return router


def _unavailable() -> HTTPException:
    return HTTPException(503, "state store unavailable; nothing was changed, retry later",
                         headers={"Retry-After": "5"})


def _reason(what: str, exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        loc = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{what} {loc}: got {shown(error.get('input'), 60)}, expected "
                     f"{str(error['msg']).lower()}")
    return "; ".join(parts)
