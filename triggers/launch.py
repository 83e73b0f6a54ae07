"""The launch contract: what every retraining launcher takes and returns (pure, no adapters).

Exceptions::

    LaunchError            a launch or status call failed; .retryable, .status, .reason
    └── (no subclasses)    launchers raise it directly, naming the target

A launcher is constructed with plain arguments (the fields of its config
section, the resolved secret, an injected ``httpx.Client``) and has two calls:
``launch(request) -> RunRef`` and ``status(ref) -> RunStatus``. Every launch
carries an idempotency key; targets that support one (Airflow ``dag_run_id``,
the webhook header) receive it, the others get it in their payload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from triggers.text import printable

__all__ = [
    "PLACEHOLDERS",
    "PLACEHOLDER_PATTERN",
    "LaunchError",
    "LaunchRequest",
    "Launcher",
    "RunRef",
    "RunState",
    "RunStatus",
    "check_placeholder_value",
    "check_placeholders",
    "fill_placeholders",
    "format_time",
]

RunState = Literal["running", "succeeded", "failed", "unknown"]

PLACEHOLDERS = ("model", "version", "reason", "window_start", "window_end", "idempotency_key")
_PLACEHOLDER = re.compile(r"\{(\w*)\}")

# What a placeholder value may be, whole: no leading "-" (never an option of
# the training command), no whitespace, quotes or shell metacharacters (inert
# if a workflow interpolates it after all), at most 200 characters. RFC 3339
# times, idempotency keys, MLflow versions and model names fit; so does "".
PLACEHOLDER_PATTERN = r"^[A-Za-z0-9_.:+@=/][A-Za-z0-9_.:+@=/-]{0,199}$"
_VALUE = re.compile(PLACEHOLDER_PATTERN)


def format_time(value: datetime | None) -> str:
    """RFC 3339 in UTC with a ``Z``; empty for None (a manual request has no window)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class LaunchRequest:
    """One retraining run to start; ``idempotency_key`` is stable across replays.

    ``details``: more JSON for the targets that take a JSON body (webhook, GitHub,
    Airflow), under the key ``details``; a canary deploy hook sends its versions,
    decision and evidence there. Placeholders never read it.
    """

    model: str
    version: str | None
    reason: str
    window_start: datetime | None
    window_end: datetime | None
    idempotency_key: str
    sentence: str
    details: Mapping[str, Any] | None = None

    def placeholders(self) -> dict[str, str]:
        """Every placeholder's value, each checked against PLACEHOLDER_PATTERN.

        Launchers read request fields only through this (or ``to_dict``), so
        a value that could act as an option or as shell syntax never leaves
        driftloop: it raises a final LaunchError naming the placeholder.
        """
        values = {
            "model": self.model,
            "version": self.version or "",
            "reason": self.reason,
            "window_start": format_time(self.window_start),
            "window_end": format_time(self.window_end),
            "idempotency_key": self.idempotency_key,
        }
        for name, value in values.items():
            check_placeholder_value(name, value)
        return values

    def to_dict(self) -> dict[str, Any]:
        """JSON body shape shared by the webhook, GitHub and Airflow payloads (7 keys, 8
        with ``details``)."""
        body: dict[str, Any] = {**self.placeholders(), "sentence": self.sentence}
        if self.details is not None:
            body["details"] = dict(self.details)
        return body


@dataclass(frozen=True)
class RunRef:
    """Where a launched run lives; JSON-safe so the service stores it."""

    launcher: str
    run_id: str
    idempotency_key: str
    url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRef:
        return cls(
            launcher=str(data["launcher"]),
            run_id=str(data["run_id"]),
            idempotency_key=str(data["idempotency_key"]),
            url=data.get("url"),
            extra={str(k): str(v) for k, v in (data.get("extra") or {}).items()},
        )


@dataclass(frozen=True)
class RunStatus:
    """``unknown`` means the target cannot tell (GitHub, webhook) or forgot (restart)."""

    state: RunState
    detail: str = ""
    exit_code: int | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")


class LaunchError(Exception):
    """A launch or status call failed; the message names the target and the response.

    ``retryable`` is True for network errors, 5xx (and 429 where the target
    asks to slow down) after the retries ran out; False for a final answer
    (other 4xx, a bad argv) that repeating will not change.
    """

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.reason = reason or message


@runtime_checkable
class Launcher(Protocol):
    """Starts retraining runs and reports on them."""

    type: ClassVar[str]
    # False for targets that cannot report a run's outcome (webhook, GitHub):
    # the service then treats the run as finished right after the launch.
    tracks_status: ClassVar[bool]

    def launch(self, request: LaunchRequest) -> RunRef: ...

    def status(self, ref: RunRef) -> RunStatus: ...


def check_placeholder_value(name: str, value: str) -> str:
    """``value`` when it is empty or matches PLACEHOLDER_PATTERN; a final LaunchError otherwise.

    The service may call it early (say, on a manual request's version) to
    answer 4xx instead of recording a failed run.
    """
    if value == "" or _VALUE.fullmatch(value):
        return value
    shown = printable(value, 80)
    raise LaunchError(
        f"launch placeholder {{{name}}}: got {shown!r} ({len(value)} characters), expected "
        f"a value matching {PLACEHOLDER_PATTERN} (no leading '-', whitespace or shell "
        "metacharacters, at most 200 characters)",
        retryable=False,
        reason=f"placeholder {{{name}}} does not match {PLACEHOLDER_PATTERN}",
    )


def check_placeholders(template: str, subject: str) -> None:
    """Raise ValueError for a ``{name}`` that is not one of PLACEHOLDERS."""
    for name in _PLACEHOLDER.findall(template):
        if name not in PLACEHOLDERS:
            raise ValueError(
                f"{subject}: unknown placeholder {{{name}}} in {template!r}; "
                f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
            )


def fill_placeholders(template: str, values: dict[str, str]) -> str:
    """Replace known ``{name}`` tokens; everything else is left as written (no str.format)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
