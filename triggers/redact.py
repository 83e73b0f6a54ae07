"""Keep secrets out of what driftloop stores, returns and logs.

A configured URL may carry credentials: ``https://user:pw@host/hook`` or
``.../hook?token=...`` (Slack-style hooks put them in the path, which no
parser can tell apart; those belong in a ``*_env`` secret instead).
``redact_url`` keeps what identifies the target (scheme, host, port, path)
and drops userinfo, query and fragment; ``url_secrets`` lists those dropped
parts so that ``mask`` can hide them where a server echoed them back.

>>> redact_url("https://user:pw@hooks.example:8443/x?token=abc#f")
'https://hooks.example:8443/x'
>>> mask("GET /x?token=abc refused", url_secrets("https://hooks.example/x?token=abc"))
'GET /x?[redacted] refused'
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

__all__ = ["MIN_SECRET_CHARS", "REDACTED", "mask", "redact_url", "url_secrets"]

REDACTED = "[redacted]"
# Shorter values are flags, page numbers or test stubs, not credentials (a
# 3-character token is guessed anyway); masking every "t" or "1" in a message
# would make it unreadable.
MIN_SECRET_CHARS = 4


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: no userinfo, query or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: leave it out rather than fail
        port = None
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of ``url`` that ``redact_url`` drops, as they may appear in echoed text."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return (url,)
    found: list[str] = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    if parts.query:
        found += [parts.query, unquote(parts.query)]
        found += [v for _, v in parse_qsl(parts.query)]
    if parts.fragment:
        found.append(parts.fragment)
    return tuple(dict.fromkeys(s for s in found if len(s) >= MIN_SECRET_CHARS))


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret of MIN_SECRET_CHARS or more replaced by REDACTED.

    Longest first, so a secret that contains another is hidden whole.
    """
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len,
                         reverse=True):
        text = text.replace(secret, REDACTED)
    return text
