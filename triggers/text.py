"""Untrusted text made safe to put in a log line or a decision sentence.

Alert names, annotations, fingerprints and manual-request notes come from
whoever can reach the alert webhook or the API. A CR or LF in one of them
would forge a second log line; an ANSI escape or a bidi override would
rewrite what a terminal shows. ``printable`` escapes every such character
and bounds the length, so one sentence stays one honest line.

>>> printable("Drift\\r\\n2026-01-01 INFO retrain approved")
'Drift\\\\r\\\\n2026-01-01 INFO retrain approved'
>>> printable("x" * 10, limit=4)
'x...'
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Cc controls, Cf format (bidi overrides, zero-width), Cs/Co/Cn, and the
# Unicode line and paragraph separators, which some log viewers break on
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ELLIPSIS = "..."


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES:
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(value: str, limit: int = 200) -> str:
    """``value`` with control and format characters escaped, at most ``limit`` characters.

    Escaping is idempotent (the output has no character it would escape), so
    applying it again at another layer changes nothing.
    """
    if limit < len(_ELLIPSIS):
        raise ValueError(f"printable limit: got {limit}, expected at least {len(_ELLIPSIS)}")
    # escape no more than can be shown: a 1 MB note costs one bounded pass
    head = value[: limit + 1]
    escaped = "".join(_escape(char) for char in head)
    if len(escaped) <= limit and len(head) == len(value):
        return escaped
    return escaped[: limit - len(_ELLIPSIS)] + _ELLIPSIS
