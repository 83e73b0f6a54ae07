"""Time formatting shared by the pure trigger modules.

Kept apart from ``triggers.launchers`` so that the pure modules (policy, canary)
import without pulling in the launchers' HTTP client.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_time"]


def format_time(value: datetime | None) -> str:
    """RFC 3339 in UTC with a ``Z``; empty for None."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

