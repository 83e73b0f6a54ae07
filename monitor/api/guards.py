"""Guards of the HTTP API: who may call a route, and what a request may carry.

They are FastAPI dependencies reading their settings from ``app.state``, which
``monitor.api.create_app`` sets (``auth_token``, ``protect_reads``,
``protect_metrics``, ``allowed_origins``, ``max_body_bytes``, ``models``):

======================  ==============================================================
dependency              put it on
======================  ==============================================================
``guard_mutation``      nothing: ``create_app`` installs it app-wide, so every POST, PUT,
                        PATCH and DELETE route (included routers too) gets it: 403 for a
                        foreign ``Origin`` (or, without a token, a ``Host`` that is not
                        loopback), 415 unless ``Content-Type: application/json``
``require_token``       mutating routes without authentication of their own (401)
``protect_reads``       every read route except ``/healthz`` and ``/metrics``, pages and
                        reports included:
                        ``@app.get(..., dependencies=[Depends(protect_reads)])``; 401
                        without the token when ``server.protect_reads`` is on
``limited_body``        ``body: bytes = Depends(limited_body)``: the raw body, 413 past
                        ``max_body_bytes`` (or ``await read_body(request)``)
``require_model``       a ``{model}`` path parameter: 404 unless configured
======================  ==============================================================

Why ``guard_mutation``: with no token (allowed on loopback only) any web page the
operator visits could otherwise post to the service: a form or ``fetch`` with
``mode: 'no-cors'`` sends no preflight, but it cannot send ``application/json``, and
a browser names the page's origin in ``Origin``. A page on a name the attacker
resolves to 127.0.0.1 (DNS rebinding) is "same origin" for the browser; the
``Host`` header still carries that name, which is why tokenless mutations need a
loopback ``Host``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from monitor.api.errors import shown

__all__ = [
    "MUTATING_METHODS",
    "check_bind",
    "guard_mutation",
    "has_token",
    "limited_body",
    "normalized_origin",
    "protect_reads",
    "read_body",
    "require_model",
    "require_token",
    "resolve_protect_reads",
]

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

# -- bearer auth ---------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False, description="driftloop API token (server.auth_token_env)")


def _unauthorized(reason: str, error: str = "invalid_token") -> HTTPException:
    return HTTPException(
        401, reason, headers={"WWW-Authenticate": f'Bearer realm="driftloop", error="{error}"'}
    )


def _token_problem(request: Request) -> HTTPException | None:
    token: SecretStr | None = request.app.state.auth_token
    if token is None:
        return None
    header = request.headers.get("authorization", "")
    if not header:
        return _unauthorized(
            "missing bearer token: send 'Authorization: Bearer <token>'", "invalid_request"
        )
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return _unauthorized(
            f"authorization scheme {shown(scheme, 40)}: expected 'Bearer <token>'",
            "invalid_request",
        )
    # hashing first makes the comparison constant-time whatever the lengths
    seen = hashlib.sha256(given.strip().encode()).digest()
    wanted = hashlib.sha256(token.get_secret_value().encode()).digest()
    if not hmac.compare_digest(seen, wanted):
        return _unauthorized("invalid bearer token")
    return None


def has_token(request: Request) -> bool:
    """True when the request carries the token, or when none is configured."""
    return _token_problem(request) is None


def require_token(
    request: Request, _scheme: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Bearer auth against ``app.state.auth_token``; no token configured: open."""
    problem = _token_problem(request)
    if problem is not None:
        raise problem


def protect_reads(
    request: Request, _scheme: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """:func:`require_token` when ``server.protect_reads`` is on; open otherwise."""
    if request.app.state.protect_reads:
        require_token(request, _scheme)


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth_token: SecretStr | None) -> None:
    """Refuse (ValueError) to serve mutating routes unauthenticated on a non-loopback address."""
    if auth_token is None and not _is_loopback(host):
        raise ValueError(
            f"server.host {host!r}: mutating routes need a token on a non-loopback address; "
            "set the variable named by server.auth_token_env or bind 127.0.0.1"
        )


def resolve_protect_reads(setting: bool | None, host: str, auth_token: SecretStr | None) -> bool:
    """``server.protect_reads``: an explicit value wins; null is on when a token is set and
    ``host`` is not loopback. True without a token is a ValueError (nothing to check)."""
    if setting is True and auth_token is None:
        raise ValueError(
            "server.protect_reads: got true, but no token is configured; expected a token in "
            "the variable named by server.auth_token_env (or protect_reads: false)"
        )
    if setting is not None:
        return setting
    return auth_token is not None and not _is_loopback(host)


# -- mutations: origin, host, content type ------------------------------------------
def normalized_origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, the default port filled in; None when
    it is not an http(s) origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _host_of(header: str) -> tuple[str, int | None] | None:
    """(host, port or None) of a Host header; None when unparseable."""
    try:
        parts = urlsplit(f"//{header.strip()}")
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None


def _allowed_origin(request: Request, origin: str) -> bool:
    found = normalized_origin(origin)
    if found is None:
        return False
    if found in request.app.state.allowed_origins:
        return True
    # same origin: the authority the browser talked to is the Host it sent; the scheme
    # is left out because a TLS proxy in front makes it https for the browser only
    host = _host_of(request.headers.get("host", ""))
    if host is None:
        return False
    scheme, name, port = found
    return host == (name, port) or (host == (name, None) and port == _DEFAULT_PORTS[scheme])


def guard_mutation(request: Request) -> None:
    """403 for a foreign ``Origin`` (or a non-loopback ``Host`` without a token); 415
    unless the body is declared ``application/json``. Safe methods pass."""
    if request.method not in MUTATING_METHODS:
        return
    if request.app.state.auth_token is None:
        host = _host_of(request.headers.get("host", "127.0.0.1"))
        listed = {name for _, name, _ in request.app.state.allowed_origins}
        if host is None or not (_is_loopback(host[0]) or host[0] in listed):
            raise HTTPException(
                403,
                f"Host {shown(request.headers.get('host'), 100)}: without a token, mutating "
                "requests must address the service as localhost or a loopback address (or a "
                "host of server.allowed_origins); another name may be a DNS rebinding page",
            )
    origin = request.headers.get("origin")
    if origin is not None and not _allowed_origin(request, origin):
        raise HTTPException(
            403,
            f"Origin {shown(origin, 100)}: expected no Origin, the service's own, or one of "
            "server.allowed_origins; a web page on another origin may not change anything here",
        )
    declared = request.headers.get("content-type")
    media = (declared or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        got = "none" if declared is None else shown(declared, 100)
        raise HTTPException(
            415,
            f"Content-Type {got}: expected application/json (mutating routes take JSON only, "
            "an empty body included)",
        )


# -- body, model --------------------------------------------------------------------
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


def require_model(request: Request, model: str) -> str:
    """The path's model when it is configured, else 404 naming the configured ones."""
    known: list[str] = request.app.state.models
    if model not in known:
        raise HTTPException(
            404, f"unknown model {shown(model)}; configured: {', '.join(known) or 'none'}"
        )
    return model
