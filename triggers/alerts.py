"""Alert webhooks in: Alertmanager (payload version 4) and Grafana (version 1).

``parse_alert_payload`` turns the raw body into a typed ``AlertBatch`` or
raises ``AlertPayloadError`` whose ``reason`` and ``status_code`` (400, 413)
the HTTP layer returns as is. Unknown keys are ignored (Alertmanager keeps
adding some, e.g. ``notification_reason``); required ones are validated.
``retrain_requests`` keeps the firing alerts that ask for a retrain of a
model; resolved alerts never do. An alert's identity is (fingerprint,
startsAt): Alertmanager repeats a firing group every ``repeat_interval`` with
the same identity, which is how repeats are recognised.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triggers.evidence import AlertEvidence

__all__ = [
    "Alert",
    "AlertBatch",
    "AlertPayloadError",
    "AlertTrigger",
    "parse_alert_payload",
    "retrain_requests",
    "verify_grafana_signature",
]

_SOURCES: dict[str, Literal["alertmanager", "grafana"]] = {"4": "alertmanager", "1": "grafana"}


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

    Duplicates within the batch (same identity) appear once.
    """
    found: dict[tuple[str, datetime], AlertTrigger] = {}
    for alert in batch.alerts:
        model = alert.labels.get("model", "")
        wanted = alert.labels.get("action") == "retrain" or alert.name in alert_names
        if alert.status != "firing" or not model or not wanted:
            continue
        trigger = AlertTrigger(
            model=model,
            alertname=alert.name,
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            source=batch.source,
            summary=alert.annotations.get("summary", ""),
            labels=alert.labels,
        )
        found.setdefault(trigger.identity, trigger)
    return list(found.values())


def verify_grafana_signature(
    body: bytes, header: str | None, secret: str, timestamp: str | None = None
) -> bool:
    """Check ``X-Grafana-Alerting-Signature``: hex HMAC-SHA256 of the body.

    With a timestamp header configured in Grafana the signed message is
    ``"{timestamp}:{body}"``; staleness of that timestamp is the caller's call.
    """
    if not header or not secret:
        return False
    message = body if timestamp is None else timestamp.encode() + b":" + body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    given = header.strip().removeprefix("sha256=").lower()
    return hmac.compare_digest(expected, given)


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
