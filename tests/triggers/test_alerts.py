from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from triggers.alerts import (
    AlertPayloadError,
    parse_alert_payload,
    retrain_requests,
    verify_grafana_signature,
)
from triggers.evidence import AlertEvidence

STARTS = "2026-11-28T08:55:00.123456789Z"


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
    assert verify_grafana_signature(body, stamped, "k", timestamp="1732780800")
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
