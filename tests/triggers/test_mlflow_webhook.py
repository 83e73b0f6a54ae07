"""MLflow webhook signatures (checked against MLflow's own signing code) and payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from mlflow.webhooks.constants import (
    WEBHOOK_DELIVERY_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
)
from mlflow.webhooks.delivery import _generate_hmac_signature

from triggers.mlflow_webhook import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AliasCreated,
    AliasDeleted,
    MlflowWebhookError,
    ModelVersionCreated,
    OtherMlflowEvent,
    VersionTagSet,
    parse_mlflow_webhook,
    verify_mlflow_signature,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
SECRET = "s3cret"
DELIVERY = "6f1c2a1e-0000-4000-8000-000000000001"
BODY = json.dumps({"entity": "model_version_alias", "action": "created",
                   "timestamp": "2026-11-30T12:00:00+00:00",
                   "data": {"name": "carloan", "alias": "challenger", "version": "4"}}).encode()


def mlflow_signed(body: bytes = BODY, secret: str = SECRET, ts: str = TS) -> str:
    """The header exactly as MLflow's server computes it."""
    return _generate_hmac_signature(secret, DELIVERY, ts, body.decode("utf-8"))


def test_header_names_match_mlflow() -> None:
    assert (SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_ID_HEADER) == (
        WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_DELIVERY_ID_HEADER)


def test_signature_made_by_mlflow_verifies() -> None:
    check = verify_mlflow_signature(SECRET, DELIVERY, TS, BODY, mlflow_signed(), NOW)
    assert check and check.valid and check.reason == ""


def test_signature_of_a_non_ascii_body_made_by_mlflow_verifies() -> None:
    body = '{"entity":"model_version","action":"created","data":{"description":"prêt €"}}'
    header = mlflow_signed(body.encode())
    assert verify_mlflow_signature(SECRET, DELIVERY, TS, body.encode(), header, NOW)


@pytest.mark.parametrize(
    ("secret", "delivery", "ts", "body", "header", "reason"),
    [
        (SECRET, DELIVERY, TS, BODY + b" ", None, "no signature matches the body"),
        ("other", DELIVERY, TS, BODY, None, "no signature matches the body"),
        (SECRET, "another-id", TS, BODY, None, "no signature matches the body"),
        ("", DELIVERY, TS, BODY, None, "no MLflow webhook secret configured"),
        (SECRET, None, TS, BODY, None, "missing header X-MLflow-Delivery-Id"),
        (SECRET, DELIVERY, None, BODY, None, "missing header X-MLflow-Timestamp"),
        (SECRET, DELIVERY, TS, BODY, "", "missing header X-MLflow-Signature"),
        (SECRET, DELIVERY, "soon", BODY, None, "got 'soon', expected unix seconds"),
        (SECRET, DELIVERY, str(int(NOW.timestamp()) - 301), BODY, "sign",
         "301 s old, expected within 300 s"),
        (SECRET, DELIVERY, str(int(NOW.timestamp()) + 400), BODY, "sign",
         "400 s in the future"),
        (SECRET, DELIVERY, TS, BODY, "v1,not base64!", "no signature matches the body"),
        (SECRET, DELIVERY, TS, BODY, "v2,AAAA", "got versions ['v2'], expected 'v1,<base64>'"),
        (SECRET, "dé", TS, BODY, "v1,AAAA", "X-MLflow-Delivery-Id: got non-ASCII"),
        (SECRET, DELIVERY, TS, BODY, "v1,AAAA\u00e9", "X-MLflow-Signature: got non-ASCII"),
    ],
)
def test_signature_rejections_say_why_without_raising(
        secret: str, delivery: str | None, ts: str | None, body: bytes, header: str | None,
        reason: str) -> None:
    if header is None:
        header = mlflow_signed()
    elif header == "sign":
        header = mlflow_signed(ts=str(ts))
    check = verify_mlflow_signature(secret, delivery, ts, body, header, NOW)
    assert not check and not check.valid
    assert reason in check.reason


def test_signature_just_inside_the_skew_is_accepted() -> None:
    ts = str(int((NOW - timedelta(seconds=300)).timestamp()))
    assert verify_mlflow_signature(SECRET, DELIVERY, ts, BODY, mlflow_signed(ts=ts), NOW)


def test_signature_list_passes_when_any_v1_entry_matches() -> None:
    header = f"v1,{base64.b64encode(b'x' * 32).decode()} {mlflow_signed()}"
    assert verify_mlflow_signature(SECRET, DELIVERY, TS, BODY, header, NOW)


def test_signature_hand_made_hmac_matches_mlflow_format() -> None:
    digest = hmac.new(SECRET.encode(), f"{DELIVERY}.{TS}.".encode() + BODY, hashlib.sha256)
    assert mlflow_signed() == "v1," + base64.b64encode(digest.digest()).decode()


def test_parse_alias_created_as_mlflow_sends_it() -> None:
    event = parse_mlflow_webhook(BODY)
    assert event == AliasCreated("carloan", "challenger", "4",
                                 datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    assert event.event == "model_version_alias.created"


def test_parse_model_version_created_with_null_run_id_and_tags() -> None:
    body = json.dumps({"entity": "model_version", "action": "created", "timestamp": None,
                       "data": {"name": "carloan", "version": "5", "source": "models:/m-1",
                                "run_id": None, "tags": {"k": "v"}, "description": None}})
    event = parse_mlflow_webhook(body.encode())
    assert event == ModelVersionCreated("carloan", "5", None, "models:/m-1", {"k": "v"}, None,
                                        None)


@pytest.mark.parametrize(
    ("entity", "action", "data", "expected"),
    [
        ("model_version_alias", "deleted", {"name": "m", "alias": "challenger"},
         AliasDeleted("m", "challenger", None)),
        ("model_version_tag", "set", {"name": "m", "version": 3, "key": "k", "value": "v"},
         VersionTagSet("m", "3", "k", "v", None)),
        ("prompt", "created", {"name": "p"}, OtherMlflowEvent("prompt.created", {"name": "p"})),
    ],
)
def test_parse_other_entities(entity: str, action: str, data: dict, expected: object) -> None:
    body = json.dumps({"entity": entity, "action": action, "data": data}).encode()
    assert parse_mlflow_webhook(body) == expected


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{", 400, "not valid JSON"),
        (b"[]", 400, "got a JSON list, expected an object"),
        (b'{"entity": "model_version"}', 400, "got entity='model_version', action=None"),
        (json.dumps({"entity": "model_version_alias", "action": "created",
                     "data": {"name": "m", "alias": "a"}}).encode(), 400,
         "model_version_alias.created data.version: got None"),
        (b" " * 2000, 413, "got 2000 bytes, expected at most 1000"),
    ],
)
def test_parse_rejections_name_what_was_wrong(body: bytes, status: int, fragment: str) -> None:
    with pytest.raises(MlflowWebhookError) as info:
        parse_mlflow_webhook(body, max_bytes=1000)
    assert info.value.status_code == status
    assert fragment in info.value.reason
