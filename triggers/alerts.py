"""Alert webhooks in: Alertmanager (payload version 4) and Grafana (version 1).

``parse_alert_payload`` turns the raw body into a typed ``AlertBatch`` or
raises ``AlertPayloadError`` whose ``reason`` and ``status_code`` (400, 413)
the HTTP layer returns as is. Unknown keys are ignored (Alertmanager keeps
adding some, e.g. ``notification_reason``); required ones are validated.
``retrain_requests`` keeps the firing alerts that ask for a retrain of a
model; resolved alerts never do. An alert's identity is (fingerprint,
startsAt): Alertmanager repeats a firing group every ``repeat_interval`` with
the same identity, which is how repeats are recognised.

Whoever can reach the webhook writes the alert text: the alertname, summary
and fingerprint an ``AlertTrigger`` carries into decision sentences and logs
are escaped and bounded (``triggers.text.printable``), so a CR/LF cannot
forge a log line. ``check_grafana_signature`` verifies Grafana's HMAC,
including its timestamped form, against a maximum clock skew.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triggers.evidence import AlertEvidence
from triggers.text import printable

__all__ = [
    "GRAFANA_MAX_SKEW_SECONDS",
    "Alert",
    "AlertBatch",
    "AlertPayloadError",
    "AlertTrigger",
    "check_grafana_signature",
    "parse_alert_payload",
    "retrain_requests",
    "verify_grafana_signature",
]

_SOURCES: dict[str, Literal["alertmanager", "grafana"]] = {"4": "alertmanager", "1": "grafana"}

GRAFANA_MAX_SKEW_SECONDS = 300.0
# characters of alert text kept for sentences and logs
_NAME_CHARS, _SUMMARY_CHARS, _FINGERPRINT_CHARS = 200, 500, 128
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
# ASCII digits only: str.isdigit() also accepts other scripts' digits
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


class AlertPayloadError(ValueError):
    """An alert body driftloop will not accept; ``reason`` is safe to send back."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class _AlertIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class _PayloadIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4", "1"]
    status: Literal["firing", "resolved"]
    alerts: list[_AlertIn]
    receiver: str = ""
    groupKey: str = ""
    truncatedAlerts: int = 0
    externalURL: str = ""


@dataclass(frozen=True)
class Alert:
    status: Literal["firing", "resolved"]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class AlertBatch:
    source: Literal["alertmanager", "grafana"]
    version: str
    status: Literal["firing", "resolved"]
    receiver: str
    group_key: str
    truncated_alerts: int
    external_url: str
    alerts: tuple[Alert, ...]


@dataclass(frozen=True)
class AlertTrigger:
    """A firing alert asking to retrain ``model``."""

    model: str
    alertname: str
    fingerprint: str
    starts_at: datetime
    source: str
    summary: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def identity(self) -> tuple[str, datetime]:
        return (self.fingerprint, self.starts_at)

    @property
    def evidence(self) -> AlertEvidence:
        return AlertEvidence(self.alertname, self.fingerprint, self.starts_at)


def parse_alert_payload(body: bytes, max_bytes: int) -> AlertBatch:
    if len(body) > max_bytes:
        raise AlertPayloadError(
            f"alert payload: got {len(body)} bytes, expected at most {max_bytes}", 413
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise AlertPayloadError(f"alert payload: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise AlertPayloadError(
            f"alert payload: got a JSON {type(data).__name__}, expected an object"
        )
    version = data.get("version")
    if not isinstance(version, str) or version not in _SOURCES:
        raise AlertPayloadError(
            f"alert payload version: got {version!r}, expected '4' (Alertmanager) or '1' (Grafana)"
        )
    try:
        payload = _PayloadIn.model_validate(data)
    except ValidationError as exc:
        raise AlertPayloadError(_describe(exc)) from None
    return AlertBatch(
        source=_SOURCES[payload.version],
        version=payload.version,
        status=payload.status,
        receiver=payload.receiver,
        group_key=payload.groupKey,
        truncated_alerts=payload.truncatedAlerts,
        external_url=payload.externalURL,
        alerts=tuple(_alert(item) for item in payload.alerts),
    )


def retrain_requests(batch: AlertBatch, alert_names: Collection[str] = ()) -> list[AlertTrigger]:
    """Firing alerts with a ``model`` label and ``action="retrain"`` (or a listed alertname).

    Duplicates within the batch (same identity) appear once. ``alert_names``
    match the alertname as sent; the trigger carries it escaped.
    """
    found: dict[tuple[str, datetime], AlertTrigger] = {}
    for alert in batch.alerts:
        model = alert.labels.get("model", "")
        wanted = alert.labels.get("action") == "retrain" or alert.name in alert_names
        if alert.status != "firing" or not model or not wanted:
            continue
        trigger = AlertTrigger(
            model=model,
            alertname=printable(alert.name, _NAME_CHARS),
            fingerprint=printable(alert.fingerprint, _FINGERPRINT_CHARS),
            starts_at=alert.starts_at,
            source=batch.source,
            summary=printable(alert.annotations.get("summary", ""), _SUMMARY_CHARS),
            labels=alert.labels,
        )
        found.setdefault(trigger.identity, trigger)
    return list(found.values())


def check_grafana_signature(
    body: bytes,
    signature: str | None,
    secret: str,
    *,
    timestamp: str | None = None,
    now: datetime | None = None,
    max_skew_seconds: float = GRAFANA_MAX_SKEW_SECONDS,
) -> str | None:
    """None when ``signature`` is Grafana's HMAC of this delivery; otherwise why not.

    Grafana sends the hex HMAC-SHA256 of the body in
    ``X-Grafana-Alerting-Signature``; with a timestamp header configured on the
    contact point, of ``"{timestamp}:{body}"`` where the timestamp is unix
    seconds. That timestamp must be within ``max_skew_seconds`` of ``now``
    (UTC-aware; the clock when None): alert de-duplication remembers a bounded
    number of alerts, so without it a captured delivery replays forever. The
    reason names no secret and is safe to send back.
    """
    if not secret:
        return "no Grafana HMAC secret is configured"
    if not signature:
        return "missing signature"
    given = signature.strip().removeprefix("sha256=").lower()
    if not given.isascii() or not _HEX_SHA256.fullmatch(given):
        return "signature: expected 64 hex digits (the HMAC-SHA256 of the body)"
    message = body
    if timestamp is not None:
        if not _UNIX_SECONDS.fullmatch(timestamp):
            return f"timestamp: got {printable(timestamp, 40)!r}, expected unix seconds"
        moment = (now or datetime.now(UTC)).timestamp()
        skew = abs(moment - int(timestamp))
        if skew > max_skew_seconds:
            return (
                f"timestamp {timestamp} is {skew:.0f} s from now; expected at most "
                f"{max_skew_seconds:g} s (a replayed or delayed delivery)"
            )
        message = timestamp.encode() + b":" + body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    # bytes: compare_digest refuses str with non-ASCII characters (checked above anyway)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return "signature does not match the body"
    return None


def verify_grafana_signature(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    timestamp: str | None = None,
    now: datetime | None = None,
    max_skew_seconds: float = GRAFANA_MAX_SKEW_SECONDS,
) -> bool:
    """True when ``check_grafana_signature`` finds nothing wrong; never raises on bad input."""
    return (
        check_grafana_signature(
            body, header, secret, timestamp=timestamp, now=now, max_skew_seconds=max_skew_seconds
        )
        is None
    )


def _alert(item: _AlertIn) -> Alert:
    # Alertmanager writes endsAt 0001-01-01T00:00:00Z for "not ended"
    ends_at = item.endsAt if item.endsAt is not None and item.endsAt.year > 1 else None
    fingerprint = item.fingerprint or _fingerprint(item.labels)
    return Alert(
        item.status, item.labels, item.annotations, item.startsAt, ends_at, fingerprint,
        item.generatorURL,
    )


def _fingerprint(labels: Mapping[str, str]) -> str:
    """Stand-in when a sender omits the fingerprint: stable over the label set."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        loc = ".".join(str(part) for part in error["loc"]) or "(top level)"
        got = "nothing" if error["type"] == "missing" else repr(error.get("input"))[:60]
        parts.append(f"{loc}: got {got}, {error['msg'].lower()}")
    more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "alert payload " + "; ".join(parts) + more
