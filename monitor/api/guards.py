"""Guards of the HTTP API: bearer auth, body-size limit, bind check, error handling.

Exported through ``monitor.api.app`` for the routes that mutate (alerts, retrain,
webhooks). They read their settings from ``app.state`` (``auth_token``,
``max_body_bytes``, ``models``), which ``monitor.api.create_app`` sets.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import uuid
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "check_bind",
    "install_error_handling",
    "json_response",
    "limited_body",
    "read_body",
    "require_model",
    "require_token",
]

logger = logging.getLogger("driftloop.api")


def json_response(
    payload: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code, headers, media_type="application/json")


# -- auth and body limit (exported for later routes) ------------------------------
_bearer = HTTPBearer(auto_error=False, description="driftloop API token (server.auth_token_env)")


def _unauthorized(reason: str, error: str = "invalid_token") -> HTTPException:
    return HTTPException(
        401, reason, headers={"WWW-Authenticate": f'Bearer realm="driftloop", error="{error}"'}
    )


def require_token(
    request: Request, _scheme: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Bearer auth against ``app.state.auth_token``; no token configured: open."""
    token: SecretStr | None = request.app.state.auth_token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    if not header:
        raise _unauthorized(
            "missing bearer token: send 'Authorization: Bearer <token>'", "invalid_request"
        )
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise _unauthorized(
            f"authorization scheme {scheme!r}: expected 'Bearer <token>'", "invalid_request"
        )
    # hashing first makes the comparison constant-time whatever the lengths
    seen = hashlib.sha256(given.strip().encode()).digest()
    wanted = hashlib.sha256(token.get_secret_value().encode()).digest()
    if not hmac.compare_digest(seen, wanted):
        raise _unauthorized("invalid bearer token")


async def read_body(request: Request, max_bytes: int | None = None) -> bytes:
    """The raw body, or 413 when it is (or announces to be) longer than ``max_bytes``."""
    limit = int(max_bytes if max_bytes is not None else request.app.state.max_body_bytes)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(
            413, f"request body of {declared} bytes: expected at most {limit} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(
                413, f"request body over {limit} bytes: expected at most {limit} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def limited_body(request: Request) -> bytes:
    """Dependency form of :func:`read_body` with the app's ``max_body_bytes``."""
    return await read_body(request)


def check_bind(host: str, auth_token: SecretStr | None) -> None:
    """Refuse (ValueError) to serve mutating routes unauthenticated on a non-loopback address."""
    if auth_token is not None:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"server.host {host!r}: mutating routes need a token on a non-loopback address; "
            "set the variable named by server.auth_token_env or bind 127.0.0.1"
        )


def require_model(request: Request, model: str) -> str:
    """The path's model when it is configured, else 404 naming the configured ones."""
    known: list[str] = request.app.state.models
    if model not in known:
        raise HTTPException(
            404, f"unknown model {_shown(model)}; configured: {', '.join(known) or 'none'}"
        )
    return model


def _shown(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters: a reason echoes input, not all of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- error handling ---------------------------------------------------------------
class _CatchAll:
    """Outermost guard: an unhandled exception becomes a logged 500 without a trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            logger.exception("error %s on %s %s", error_id, scope.get("method"), scope.get("path"))
            if started:
                return
            reason = f"internal error {error_id}; the service log has the details"
            await json_response({"detail": reason}, 500)(scope, receive, send)


_EXPECTED_TYPE = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "missing": "a value (this is required)",
}


def _expected(error: Any) -> str:
    """What pydantic wanted, phrased for people ("an integer of at least 1")."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind in _EXPECTED_TYPE:
        return _EXPECTED_TYPE[kind]
    bounds = {"greater_than_equal": ("ge", "of at least"), "less_than_equal": ("le", "of at most"),
              "greater_than": ("gt", "above"), "less_than": ("lt", "below")}
    if kind in bounds and bounds[kind][0] in ctx:
        key, words = bounds[kind]
        return f"a number {words} {ctx[key]}"
    expected = str(error.get("msg", "a valid value"))
    for prefix in ("Input should be ", "Value error, "):
        expected = expected.removeprefix(prefix)
    return expected


def _validation_reason(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = " ".join(str(p) for p in error.get("loc", ()))
        got = _shown(error.get("input"))
        expected = _expected(error)
        parts.append(f"{where}: got {got}, expected {expected}")
    return "; ".join(parts) or "invalid request"


def install_error_handling(app: FastAPI) -> None:
    """Validation errors answer 422 with one sentence, a state store that cannot be
    reached 503 (a client retries later), anything unexpected a logged 500."""
    app.add_middleware(_CatchAll)

    @app.exception_handler(SQLAlchemyError)
    async def _store_down(request: Request, exc: SQLAlchemyError) -> Response:
        logger.warning("state store unavailable on %s %s: %s", request.method,
                       request.url.path, exc)
        reason = f"state store unavailable ({type(exc).__name__}); retry later"
        return json_response({"detail": reason}, 503, {"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return json_response({"detail": _validation_reason(exc), "errors": errors}, 422)
