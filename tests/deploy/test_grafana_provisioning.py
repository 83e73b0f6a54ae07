"""Grafana's provisioning: the datasource the dashboards name, the dashboard provider
where compose mounts the generated JSON, and the signed webhook that brings
action="retrain" alerts to driftloop (Grafana 11 file formats)."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Any

from dashboards import DATASOURCE_UID
from monitor.config import load_config
from tests.deploy.stack import COMPOSE_DIR, DRIFTLOOP_CONFIG, GRAFANA, compose, load_yaml, mounts
from triggers.alerts import verify_grafana_signature

PROVISIONING = GRAFANA / "provisioning"
SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"  # the header driftloop verifies


def grafana_service() -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"]["grafana"]
    return service


def alerting() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(PROVISIONING / "alerting" / "driftloop.yaml")
    return data


def test_compose_mounts_grafana_provisioning_where_grafana_reads_it() -> None:
    assert mounts(grafana_service())["/etc/grafana/provisioning"] == "./grafana/provisioning"
    for kind in ("datasources", "dashboards", "alerting"):
        files = list((PROVISIONING / kind).glob("*.yaml"))
        assert files, kind
        for path in files:
            assert load_yaml(path)["apiVersion"] == 1, path


def test_datasource_has_the_dashboards_uid_and_points_at_the_prometheus_service() -> None:
    (source,) = load_yaml(PROVISIONING / "datasources" / "prometheus.yaml")["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert (source["type"], source["access"]) == ("prometheus", "proxy")
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose()["services"]
    # $__rate_interval is derived from it: it must be Prometheus' scrape interval
    scrape = load_yaml(COMPOSE_DIR / "prometheus.yml")["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape


def test_dashboard_provider_reads_the_generated_json_where_compose_mounts_it() -> None:
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "driftloop.yaml")["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert mounts(grafana_service())[path] == "./grafana/dashboards"
    home = grafana_service()["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path + "/")
    assert (GRAFANA / "dashboards" / home[len(path) + 1:]).exists()


def test_contact_point_posts_to_driftloops_alert_route_signed_with_its_secret() -> None:
    config = load_config(DRIFTLOOP_CONFIG, environ={})
    (point,) = alerting()["contactPoints"]
    (receiver,) = point["receivers"]
    settings = receiver["settings"]
    assert receiver["type"] == "webhook"
    assert settings["url"] == f"http://driftloop:{config.server.port}/api/v1/alerts"
    secret_env = config.server.grafana_hmac_secret_env
    assert secret_env and settings["hmacConfig"]["secret"] == f"${{{secret_env}}}"
    # Grafana's own default header is X-Grafana-Alert-Signature: it must be named
    assert settings["hmacConfig"]["header"] == SIGNATURE_HEADER
    assert settings["hmacConfig"]["timestampHeader"]
    # both containers get the secret from the same .env variable
    services = compose()["services"]
    assert services["grafana"]["environment"][secret_env] == \
        services["driftloop"]["environment"][secret_env]
    assert re.fullmatch(rf"\$\{{{secret_env}:\?.*\}}",
                        services["grafana"]["environment"][secret_env])


def test_a_request_signed_as_grafana_signs_it_verifies_and_a_changed_body_does_not() -> None:
    # Grafana 11.6 (grafana/alerting http/hmac.go): hex HMAC-SHA256 of
    # "<unix seconds>:<body>" when a timestamp header is configured
    secret, timestamp = "s3cret", "1767225600"
    body = b'{"version": "1", "status": "firing", "alerts": []}'
    signature = hmac.new(secret.encode(), f"{timestamp}:".encode() + body,
                         hashlib.sha256).hexdigest()
    # verified at the moment Grafana signed it (a stale timestamp is refused on its own)
    now = datetime.fromtimestamp(int(timestamp), UTC)
    assert verify_grafana_signature(body, signature, secret, timestamp=timestamp, now=now)
    assert not verify_grafana_signature(body + b" ", signature, secret, timestamp=timestamp,
                                        now=now)
    assert not verify_grafana_signature(body, signature, secret)  # the timestamp is signed too


def test_notification_policy_routes_retrain_alerts_to_the_driftloop_contact_point() -> None:
    data = alerting()
    (policy,) = data["policies"]
    names = {point["name"] for point in data["contactPoints"]}
    # the root keeps Grafana's built-in default contact point for everything else
    assert policy["receiver"] == "grafana-default-email"
    (route,) = policy["routes"]
    assert route["receiver"] in names
    assert route["object_matchers"] == [["action", "=", "retrain"]]
    assert route["group_by"] == ["alertname", "model"]
    assert not route.get("continue", False)
