"""One retrying HTTP call shared by the HTTP launchers.

Network errors and 5xx (plus the statuses a target names, e.g. 429) are
retried with exponential backoff through tenacity; any other non-accepted
status is a final answer and raises ``LaunchError(retryable=False)`` at once.
Tests pass ``retry_wait_seconds=0`` so retries cost no time.

Every message (and ``LaunchError.reason``) shows the URL through
``redact_url`` and masks the target's own secrets (the bearer token, the
URL's userinfo and query) wherever the server or httpx echoed them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from triggers.launch import LaunchError
from triggers.redact import mask, redact_url, url_secrets
from triggers.text import printable

__all__ = ["HttpTarget", "bearer", "path_segment"]

_BODY_SHOWN = 300


class _Transient(Exception):
    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


def bearer(secret: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"} if secret else {}


def path_segment(value: str, subject: str) -> str:
    """``value`` quoted as exactly one URL path segment; a final LaunchError for a dot segment.

    Run ids come back from the target (and from the state store): quoted with
    nothing safe, ``/``, ``?`` and ``#`` cannot leave the segment. ``.`` and
    ``..`` stay themselves when quoted and would climb the path, so they are
    refused, like the empty name.
    """
    if value in ("", ".", ".."):
        raise LaunchError(
            f"{subject}: got {value!r}, expected a non-empty name other than '.' and '..'",
            retryable=False,
        )
    return quote(value, safe="")


def _shown(response: httpx.Response, hidden: tuple[str, ...]) -> str:
    """The status and the start of the body: secrets masked before the cut (so none is
    left in part), control characters escaped (a body cannot forge a log line)."""
    longest = max((len(s) for s in hidden), default=0)
    text = mask(response.text[: _BODY_SHOWN + longest], hidden).strip()
    text = printable(text, _BODY_SHOWN)
    return f"HTTP {response.status_code}" + (f" {text}" if text else "")


@dataclass(frozen=True)
class HttpTarget:
    """A named HTTP endpoint family with its client and retry policy."""

    name: str
    client: httpx.Client
    timeout: float
    max_attempts: int = 5
    retry_wait_seconds: float = 0.5
    retry_statuses: frozenset[int] = field(default_factory=frozenset)
    # values never to show in a message: the launcher's token
    secrets: tuple[str, ...] = ()

    def send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
        expected: str = "a 2xx answer",
    ) -> httpx.Response:
        """The response when it is 2xx or in ``accept``; LaunchError otherwise."""
        hidden = (*self.secrets, *url_secrets(url))
        where = f"{self.name}: {method} {redact_url(url)}"

        def attempt() -> httpx.Response:
            try:
                response = self.client.request(
                    method, url, json=json, content=content, headers=headers, timeout=self.timeout
                )
            except httpx.TransportError as exc:
                raise _Transient(mask(f"{type(exc).__name__}: {exc}", hidden), None) from exc
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                # too many redirects, a URL httpx cannot use: repeating changes nothing
                shown = mask(f"{type(exc).__name__}: {exc}", hidden)
                raise LaunchError(
                    f"{where} failed: {shown}; expected {expected}", retryable=False, reason=shown
                ) from None
            if response.is_success or response.status_code in accept:
                return response
            answer = _shown(response, hidden)
            if response.status_code >= 500 or response.status_code in self.retry_statuses:
                raise _Transient(answer, response.status_code)
            raise LaunchError(
                f"{where} got {answer}; expected {expected}",
                retryable=False,
                status=response.status_code,
                reason=answer,
            )

        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.max_attempts)),
            wait=wait_exponential(multiplier=self.retry_wait_seconds, max=30),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Transient as exc:
            raise LaunchError(
                f"{where} failed after {self.max_attempts} attempts; "
                f"last: {exc}; expected {expected}",
                retryable=True,
                status=exc.status,
                reason=str(exc),
            ) from None
