"""What the HTTP API answers when something goes wrong, and what it never lets out.

- every error answers ``{"detail": "<one sentence>"}`` (422 adds ``errors``); an
  unexpected exception is logged with an error id and answers 500 without a trace;
  a state store that cannot be reached answers 503 with ``Retry-After``;
- no response body or header carries a known secret value (``create_app(secrets=...)``:
  the token, HMAC secrets, launcher tokens, passwords and query values of configured
  URLs): the outermost layer replaces each one, raw, JSON-escaped, HTML-escaped or
  percent-encoded, by ``[redacted]`` (``triggers.redact.mask``), whichever route
  produced the text, so a route added later cannot leak one either.
"""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from triggers.redact import MIN_SECRET_CHARS, mask
from triggers.text import printable

__all__ = ["install_error_handling", "json_response", "secret_forms", "shown"]

logger = logging.getLogger("driftloop.api")


def json_response(
    payload: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code, headers, media_type="application/json")


def shown(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters: a reason echoes input, not all of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """Each secret as it may appear in a response: raw, in a JSON string, in HTML, in a URL."""
    forms: list[str] = []
    for secret in secrets:
        if len(secret) < MIN_SECRET_CHARS:
            continue
        forms += [secret, orjson.dumps(secret).decode()[1:-1], html.escape(secret),
                  quote(secret, safe="")]
    return tuple(dict.fromkeys(forms))


class _MaskSecrets:
    """Buffers each response and masks every secret form in its body and headers."""

    def __init__(self, app: ASGIApp, secrets: Sequence[str]) -> None:
        self.app = app
        self.forms = secret_forms(secrets)

    def _mask(self, data: bytes, encoding: str) -> bytes:
        return mask(data.decode(encoding, "surrogateescape"), self.forms).encode(
            encoding, "surrogateescape")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.forms:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def masking_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            original = b"".join(chunks)
            body = self._mask(original, "utf-8")
            headers = [(name, self._mask(value, "latin-1"))
                       for name, value in start.get("headers", [])]
            if body != original:  # (a HEAD answer keeps the length of the GET body)
                headers = [(name, value) for name, value in headers
                           if name.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, masking_send)


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
            # the path is the caller's text (percent-decoded): escaped to stay one line
            logger.exception("error %s on %s %s", error_id, scope.get("method"),
                             printable(str(scope.get("path")), 300))
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
_BOUNDS = {"greater_than_equal": ("ge", "of at least"), "less_than_equal": ("le", "of at most"),
           "greater_than": ("gt", "above"), "less_than": ("lt", "below")}


def _expected(error: Any) -> str:
    """What pydantic wanted, phrased for people ("an integer of at least 1")."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind in _EXPECTED_TYPE:
        return _EXPECTED_TYPE[kind]
    if kind in _BOUNDS and _BOUNDS[kind][0] in ctx:
        key, words = _BOUNDS[kind]
        return f"a number {words} {ctx[key]}"
    expected = str(error.get("msg", "a valid value"))
    for prefix in ("Input should be ", "Value error, "):
        expected = expected.removeprefix(prefix)
    return expected


def _validation_reason(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = " ".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: got {shown(error.get('input'))}, expected {_expected(error)}")
    return "; ".join(parts) or "invalid request"


def _first_line(exc: BaseException) -> str:
    """SQLAlchemy's messages span lines (statement, parameters, a link): keep the cause."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return printable(text.splitlines()[0] if text else type(exc).__name__, 300)


def install_error_handling(app: FastAPI, secrets: Sequence[str] = ()) -> None:
    """Validation errors answer 422 with one sentence, a state store that cannot be
    reached 503 (a client retries later), anything unexpected a logged 500; every
    response is masked of ``secrets``."""
    app.add_middleware(_MaskSecrets, secrets=tuple(secrets))
    app.add_middleware(_CatchAll)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return json_response({"detail": exc.detail}, exc.status_code, dict(exc.headers or {}))

    @app.exception_handler(SQLAlchemyError)
    async def _store_down(request: Request, exc: SQLAlchemyError) -> Response:
        logger.warning("state store unavailable on %s %s: %s", request.method,
                       printable(request.url.path, 300), _first_line(exc))
        reason = f"state store unavailable ({type(exc).__name__}); retry later"
        return json_response({"detail": reason}, 503, {"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return json_response({"detail": _validation_reason(exc), "errors": errors}, 422)
