"""MLflow registry webhooks in (MLflow 3.x): the signature check and the payload parser.

MLflow signs each delivery (``mlflow/webhooks/delivery.py``) with headers
``X-MLflow-Delivery-Id``, ``X-MLflow-Timestamp`` (unix seconds) and
``X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, "{delivery_id}.{timestamp}.{body}")>``,
where body is the raw JSON it posts. ``verify_mlflow_signature`` checks it and the
timestamp's age and never raises: it returns a ``SignatureCheck`` whose ``reason``
the HTTP layer can log (answer 401 without echoing it). Replays within the allowed
skew are the caller's to refuse, by remembering delivery ids.

``parse_mlflow_webhook`` turns the body ``{"entity", "action", "timestamp", "data"}``
into one small event; events driftloop does not act on (prompts, budgets...) come
back as ``OtherMlflowEvent`` so the route can still answer 2xx.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "DELIVERY_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AliasCreated",
    "AliasDeleted",
    "MlflowEvent",
    "MlflowWebhookError",
    "ModelVersionCreated",
    "OtherMlflowEvent",
    "SignatureCheck",
    "VersionTagDeleted",
    "VersionTagSet",
    "parse_mlflow_webhook",
    "verify_mlflow_signature",
]

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
_VERSION = "v1"


@dataclass(frozen=True)
class SignatureCheck:
    """``valid`` or not, and why not; truthy when valid."""

    valid: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.valid


def verify_mlflow_signature(
    secret: str, delivery_id: str | None, timestamp: str | None, body: bytes,
    header: str | None, now: datetime, max_skew: float = 300.0,
) -> SignatureCheck:
    """Check an MLflow delivery: headers present and ASCII, timestamp within
    ``max_skew`` seconds of ``now`` (either side), and a ``v1`` signature equal, in
    constant time, to the HMAC of ``{delivery_id}.{timestamp}.{body}``."""
    if not secret:
        return SignatureCheck(False, "no MLflow webhook secret configured")
    given = {SIGNATURE_HEADER: header, DELIVERY_ID_HEADER: delivery_id,
             TIMESTAMP_HEADER: timestamp}
    missing = [name for name, value in given.items() if not value]
    if missing:
        return SignatureCheck(False, f"missing header {', '.join(missing)}")
    assert header is not None and delivery_id is not None and timestamp is not None
    not_ascii = [name for name, value in given.items() if not str(value).isascii()]
    if not_ascii:
        return SignatureCheck(False, f"header {', '.join(not_ascii)}: got non-ASCII characters")
    try:
        sent = int(timestamp.strip())
    except ValueError:
        return SignatureCheck(False, f"{TIMESTAMP_HEADER}: got {timestamp[:40]!r}, "
                                     "expected unix seconds")
    age = now.timestamp() - sent
    if abs(age) > max_skew:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        return SignatureCheck(False, f"{TIMESTAMP_HEADER}: {when}, "
                                     f"expected within {max_skew:.0f} s")
    message = f"{delivery_id}.{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    versions = []
    # a space-separated list lets a sender rotate secrets (as Standard Webhooks does)
    for candidate in header.split():
        version, _, encoded = candidate.partition(",")
        versions.append(version)
        if version != _VERSION:
            continue
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, signature):
            return SignatureCheck(True)
    if _VERSION not in versions:
        return SignatureCheck(False, f"{SIGNATURE_HEADER}: got versions {versions[:3]}, "
                                     f"expected '{_VERSION},<base64>'")
    return SignatureCheck(False, f"{SIGNATURE_HEADER}: no signature matches the body")


class MlflowWebhookError(ValueError):
    """A body driftloop will not accept; ``reason`` is safe to send back."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


@dataclass(frozen=True)
class ModelVersionCreated:
    model: str
    version: str
    run_id: str | None  # None for models logged the MLflow 3 way: ask the registry
    source: str
    tags: Mapping[str, str]
    description: str | None
    timestamp: datetime | None
    event: str = "model_version.created"


@dataclass(frozen=True)
class AliasCreated:
    """An alias was created or moved (MLflow sends ``created`` for both)."""

    model: str
    alias: str
    version: str
    timestamp: datetime | None
    event: str = "model_version_alias.created"


@dataclass(frozen=True)
class AliasDeleted:
    model: str
    alias: str
    timestamp: datetime | None
    event: str = "model_version_alias.deleted"


@dataclass(frozen=True)
class VersionTagSet:
    model: str
    version: str
    key: str
    value: str
    timestamp: datetime | None
    event: str = "model_version_tag.set"


@dataclass(frozen=True)
class VersionTagDeleted:
    model: str
    version: str
    key: str
    timestamp: datetime | None
    event: str = "model_version_tag.deleted"


@dataclass(frozen=True)
class OtherMlflowEvent:
    """Any other entity/action (registered_model.created, prompts...): nothing to do."""

    event: str
    data: Mapping[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None


MlflowEvent = (ModelVersionCreated | AliasCreated | AliasDeleted | VersionTagSet
               | VersionTagDeleted | OtherMlflowEvent)


def parse_mlflow_webhook(body: bytes, max_bytes: int = 1_000_000) -> MlflowEvent:
    if len(body) > max_bytes:
        raise MlflowWebhookError(
            f"mlflow webhook: got {len(body)} bytes, expected at most {max_bytes}", 413)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MlflowWebhookError(f"mlflow webhook: not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise MlflowWebhookError(
            f"mlflow webhook: got a JSON {type(payload).__name__}, expected an object")
    entity, action, data = payload.get("entity"), payload.get("action"), payload.get("data")
    if not isinstance(entity, str) or not isinstance(action, str) or not isinstance(data, dict):
        raise MlflowWebhookError(
            f"mlflow webhook: got entity={entity!r}, action={action!r}, data of type "
            f"{type(data).__name__}, expected strings and an object")
    event = f"{entity}.{action}"
    at = _timestamp(payload.get("timestamp"))
    get = _Fields(event, data)
    if event == "model_version.created":
        tags = data.get("tags") or {}
        return ModelVersionCreated(get.text("name"), get.text("version"),
                                   get.optional("run_id"), get.optional("source") or "",
                                   {str(k): str(v) for k, v in dict(tags).items()},
                                   get.optional("description"), at)
    if event == "model_version_alias.created":
        return AliasCreated(get.text("name"), get.text("alias"), get.text("version"), at)
    if event == "model_version_alias.deleted":
        return AliasDeleted(get.text("name"), get.text("alias"), at)
    if event == "model_version_tag.set":
        return VersionTagSet(get.text("name"), get.text("version"), get.text("key"),
                             get.optional("value") or "", at)
    if event == "model_version_tag.deleted":
        return VersionTagDeleted(get.text("name"), get.text("version"), get.text("key"), at)
    return OtherMlflowEvent(event, data, at)


class _Fields:
    def __init__(self, event: str, data: Mapping[str, Any]) -> None:
        self.event, self.data = event, data

    def text(self, name: str) -> str:
        value = self.data.get(name)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            raise MlflowWebhookError(f"mlflow webhook {self.event} data.{name}: got {value!r}, "
                                     "expected a non-empty string")
        return str(value)

    def optional(self, name: str) -> str | None:
        value = self.data.get(name)
        return None if value is None else str(value)


def _timestamp(value: Any) -> datetime | None:
    """MLflow 3 sends an ISO 8601 string; epoch seconds or milliseconds are accepted."""
    try:
        if isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = value / 1000.0 if value > 1e11 else float(value)
            return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None
