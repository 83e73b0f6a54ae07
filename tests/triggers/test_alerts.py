from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from triggers.alerts import (
    AlertPayloadError,
    check_grafana_signature,
    parse_alert_payload,
    retrain_requests,
    verify_grafana_signature,
)
from triggers.evidence import AlertEvidence, Policy
from triggers.policy import decide
from triggers.state import TriggerState

STARTS = "2026-11-28T08:55:00.123456789Z"
STAMPED_AT = datetime.fromtimestamp(1732780800, UTC)


def am_alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "DriftloopDatasetDrift", "model": "carloan", "action": "retrain",
                   **labels},
        "annotations": {"summary": "Dataset drift on model carloan version 3"},
        "startsAt": STARTS,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom:9090/graph",
        "fingerprint": "1a2b3c4d5e6f7081",
    }


def alertmanager(*alerts: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({
        "version": "4", "groupKey": "{}:{alertname=\"DriftloopDatasetDrift\"}",
        "truncatedAlerts": 0, "status": "firing", "receiver": "driftloop",
        "groupLabels": {"alertname": "DriftloopDatasetDrift"}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://am:9093",
        "alerts": list(alerts), **extra,
    }).encode()


def grafana(*alerts: dict[str, Any]) -> bytes:
    return json.dumps({
        "receiver": "driftloop", "status": "firing", "orgId": 1, "alerts": list(alerts),
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://grafana:3000/", "version": "1", "groupKey": "{}",
        "truncatedAlerts": 0, "title": "[FIRING:1]", "state": "alerting", "message": "drift",
    }).encode()


def test_alertmanager_v4_parses_and_ignores_unknown_keys() -> None:
    batch = parse_alert_payload(alertmanager(am_alert(), notification_reason="new"), 10_000)
    assert (batch.source, batch.version, batch.receiver) == ("alertmanager", "4", "driftloop")
    alert = batch.alerts[0]
    assert alert.name == "DriftloopDatasetDrift"
    assert alert.starts_at == datetime(2026, 11, 28, 8, 55, 0, 123456, tzinfo=UTC)
    assert alert.ends_at is None


def test_retrain_requests_keeps_firing_model_alerts_with_action_retrain() -> None:
    batch = parse_alert_payload(alertmanager(
        am_alert(),
        am_alert(),  # the same alert twice in one batch counts once
        am_alert("resolved", alertname="DriftloopPerformanceDegraded"),
        {**am_alert(alertname="DriftloopDown"), "labels": {"alertname": "DriftloopDown"}},
        {**am_alert(), "labels": {"alertname": "X", "model": "churn"}, "fingerprint": "ff"},
    ), 10_000)
    triggers = retrain_requests(batch)
    assert [(t.model, t.alertname) for t in triggers] == [("carloan", "DriftloopDatasetDrift")]
    assert triggers[0].evidence == AlertEvidence(
        "DriftloopDatasetDrift", "1a2b3c4d5e6f7081",
        datetime(2026, 11, 28, 8, 55, 0, 123456, tzinfo=UTC))
    assert triggers[0].summary == "Dataset drift on model carloan version 3"
    # an alertname listed in the config asks for a retrain without the action label
    listed = retrain_requests(batch, alert_names={"X"})
    assert [(t.model, t.alertname) for t in listed] == [
        ("carloan", "DriftloopDatasetDrift"), ("churn", "X")]


def test_grafana_v1_parses_with_its_extra_fields() -> None:
    alert = {**am_alert(), "values": {"A": 1}, "silenceURL": "u", "dashboardURL": "",
             "panelURL": "", "ruleUID": "abc"}
    batch = parse_alert_payload(grafana(alert), 10_000)
    assert batch.source == "grafana"
    assert [t.model for t in retrain_requests(batch)] == ["carloan"]


def test_missing_fingerprint_gets_a_stable_stand_in() -> None:
    alert = am_alert()
    del alert["fingerprint"]
    one = parse_alert_payload(alertmanager(alert), 10_000).alerts[0].fingerprint
    two = parse_alert_payload(alertmanager(alert), 10_000).alerts[0].fingerprint
    assert one == two
    assert len(one) == 16


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"x" * 101, 413, "alert payload: got 101 bytes, expected at most 100"),
        (b"{not json", 400, "alert payload: not valid JSON"),
        (b"[1, 2]", 400, "alert payload: got a JSON list, expected an object"),
        (b'{"version": "3", "alerts": []}', 400,
         "alert payload version: got '3', expected '4' (Alertmanager) or '1' (Grafana)"),
        (b'{"version": "4", "status": "firing"}', 400, "alert payload alerts: got nothing"),
        (b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {}}]}',
         400, "alert payload alerts.0.startsAt: got nothing"),
        (b'{"version": "4", "status": "on fire", "alerts": []}', 400,
         "alert payload status: got 'on fire'"),
    ],
)
def test_invalid_payloads_raise_with_a_reason(body: bytes, status: int, reason: str) -> None:
    with pytest.raises(AlertPayloadError) as info:
        parse_alert_payload(body, 100)
    assert info.value.status_code == status
    assert info.value.reason.startswith(reason)


def test_grafana_signature_over_body_and_over_timestamped_body() -> None:
    body = grafana(am_alert())
    plain = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    stamped = hmac.new(b"k", b"1732780800:" + body, hashlib.sha256).hexdigest()
    assert verify_grafana_signature(body, plain, "k")
    assert verify_grafana_signature(body, stamped, "k", timestamp="1732780800", now=STAMPED_AT)
    assert not verify_grafana_signature(body, stamped, "k")
    assert not verify_grafana_signature(body, plain, "other")
    assert not verify_grafana_signature(body + b" ", plain, "k")
    assert not verify_grafana_signature(body, None, "k")
    assert not verify_grafana_signature(body, plain, "")


@pytest.mark.parametrize("version", [[""], {"a": 1}, 4, None])
def test_a_version_that_is_not_a_string_is_a_400(version: object) -> None:
    body = json.dumps({"version": version, "alerts": []}).encode()
    with pytest.raises(AlertPayloadError) as caught:
        parse_alert_payload(body, 1_000_000)
    assert caught.value.status_code == 400


FORGED = "DriftloopDatasetDrift\r\n2026-11-28 09:00:00 INFO retrain approved by admin"


def test_retrain_request_escapes_control_characters_of_alert_text() -> None:
    alert = am_alert(alertname=FORGED)
    alert["annotations"] = {"summary": "drift \x1b[2J\u2028\u202eevil" + "s" * 5000}
    alert["fingerprint"] = "ab\ncd"
    trigger = retrain_requests(parse_alert_payload(alertmanager(alert), 100_000))[0]
    assert trigger.alertname == (
        "DriftloopDatasetDrift\\r\\n2026-11-28 09:00:00 INFO retrain approved by admin")
    assert trigger.summary.startswith("drift \\x1b[2J\\u2028\\u202eevil")
    assert len(trigger.summary) <= 500
    assert trigger.fingerprint == "ab\\ncd"


def test_listed_alertname_matches_before_escaping() -> None:
    alert = {**am_alert(), "labels": {"alertname": "Drift\nX", "model": "carloan"}}
    batch = parse_alert_payload(alertmanager(alert), 10_000)
    assert [t.alertname for t in retrain_requests(batch, alert_names={"Drift\nX"})] == [
        "Drift\\nX"]


def test_decision_sentence_from_a_forged_alert_is_one_line() -> None:
    alert = am_alert(alertname=FORGED + "x" * 5000)
    alert["fingerprint"] = "f\r\n" * 1000
    trigger = retrain_requests(parse_alert_payload(alertmanager(alert), 100_000))[0]
    policy = Policy(on=frozenset({"alert"}), consecutive_windows=1, cooldown_seconds=0,
                    drift_share=0.5)
    decision = decide(TriggerState("carloan"), trigger.evidence,
                      datetime(2026, 11, 28, 9, tzinfo=UTC), policy)
    assert decision.action == "retrain"
    assert "\n" not in decision.sentence and "\r" not in decision.sentence
    assert len(decision.sentence) < 600


def test_grafana_signature_with_non_ascii_characters_is_false_not_an_error() -> None:
    body = grafana(am_alert())
    assert not verify_grafana_signature(body, "sha256=é" + "0" * 63, "k")
    assert not verify_grafana_signature(body, "\u0661" * 64, "k")
    reason = check_grafana_signature(body, "ü", "k")
    assert reason is not None and "hex" in reason


def stamp(body: bytes, ts: str, secret: str = "k") -> str:
    return hmac.new(secret.encode(), ts.encode() + b":" + body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("age_seconds", "valid"), [(0, True), (299, True), (-299, True), (301, False), (-301, False)]
)
def test_grafana_timestamp_must_be_within_the_skew(age_seconds: int, valid: bool) -> None:
    body = grafana(am_alert())
    ts = "1732780800"
    now = datetime.fromtimestamp(1732780800 + age_seconds, UTC)
    assert verify_grafana_signature(body, stamp(body, ts), "k", timestamp=ts, now=now) is valid


def test_a_replayed_signed_body_is_refused_with_a_reason() -> None:
    body = grafana(am_alert())
    now = datetime.fromtimestamp(1732780800 + 3600, UTC)
    reason = check_grafana_signature(body, stamp(body, "1732780800"), "k",
                                     timestamp="1732780800", now=now)
    assert reason == ("timestamp 1732780800 is 3600 s from now; expected at most 300 s "
                      "(a replayed or delayed delivery)")


def test_grafana_skew_is_configurable() -> None:
    body = grafana(am_alert())
    now = datetime.fromtimestamp(1732780800 + 600, UTC)
    assert verify_grafana_signature(body, stamp(body, "1732780800"), "k",
                                    timestamp="1732780800", now=now, max_skew_seconds=900)


@pytest.mark.parametrize("ts", ["", "soon", "1732780800.5", "-1", "\u0661\u0667\u0663", "9" * 40])
def test_grafana_timestamp_that_is_not_unix_seconds_is_refused(ts: str) -> None:
    body = grafana(am_alert())
    reason = check_grafana_signature(body, stamp(body, ts), "k", timestamp=ts, now=STAMPED_AT)
    assert reason is not None and reason.startswith("timestamp: got ")


def test_grafana_stamped_signature_does_not_verify_the_plain_body() -> None:
    body = grafana(am_alert())
    plain = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    reason = check_grafana_signature(body, plain, "k", timestamp="1732780800", now=STAMPED_AT)
    assert reason == "signature does not match the body"
