"""The shipped Prometheus / Alertmanager files pass the real promtool and amtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2] / "prometheus"
RULES = ROOT / "rules" / "driftloop.rules.yml"
RULE_TESTS = ROOT / "tests" / "driftloop.rules.test.yml"

# design.md section 8: names are fixed, dashboards and alert rules depend on them
DESIGN_METRICS = {
    "driftloop_events_total", "driftloop_events_invalid_total", "driftloop_windows_total",
    "driftloop_feature_drift_score", "driftloop_feature_drift_detected",
    "driftloop_dataset_drift_share", "driftloop_dataset_drift_detected",
    "driftloop_prediction_drift_score", "driftloop_performance", "driftloop_performance_degraded",
    "driftloop_retrain_triggers_total", "driftloop_canary_status",
    "driftloop_canary_decisions_total", "driftloop_consumer_lag",
    "driftloop_window_evaluation_seconds",
}
EXPECTED_ALERTS = {
    "DriftloopDatasetDrift", "DriftloopPerformanceDegraded", "DriftloopNoTraffic",
    "DriftloopConsumerLagGrowing", "DriftloopInvalidRecordRateHigh", "DriftloopDown",
    "DriftloopCanaryFailed",
}


def tool(*argv: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which(argv[0])
    assert path, f"{argv[0]} not on PATH (apt-get install prometheus prometheus-alertmanager)"
    return subprocess.run([path, *argv[1:]], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


@pytest.mark.parametrize(
    "argv",
    [
        ("promtool", "check", "rules", "rules/driftloop.rules.yml"),
        ("promtool", "test", "rules", "tests/driftloop.rules.test.yml"),
        ("promtool", "check", "config", "prometheus.yml"),
        ("amtool", "check-config", "alertmanager.yml"),
    ],
    ids=["check-rules", "test-rules", "check-config", "amtool-check-config"],
)
def test_tool_accepts_shipped_file(argv: tuple[str, ...]) -> None:
    done = tool(*argv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_promtool_test_rules_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    # the rule tests can fail: a wrong expected label makes promtool exit non-zero
    broken = RULE_TESTS.read_text().replace("severity: critical, action: retrain",
                                             "severity: warning, action: retrain")
    assert broken != RULE_TESTS.read_text()
    (tmp_path / "t.yml").write_text(broken.replace("../rules/", str(ROOT / "rules") + "/"))
    done = tool("promtool", "test", "rules", str(tmp_path / "t.yml"))
    assert done.returncode != 0


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("alertname=DriftloopDatasetDrift", "model=carloan", "action=retrain"), "driftloop"),
        (("alertname=DriftloopDown", "severity=critical"), "default"),
    ],
)
def test_alertmanager_routes_retrain_alerts_to_driftloop(
    labels: tuple[str, ...], receiver: str
) -> None:
    done = tool("amtool", "config", "routes", "test", "--config.file=alertmanager.yml", *labels)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == receiver


def test_alertmanager_webhook_targets_the_alerts_route_with_a_bearer_token() -> None:
    config = yaml.safe_load((ROOT / "alertmanager.yml").read_text())
    assert config["route"]["group_by"] == ["alertname", "model"]
    (receiver,) = [r for r in config["receivers"] if r["name"] == "driftloop"]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:8080/api/v1/alerts"
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    assert "timeout" not in hook  # Alertmanager 0.25 rejects it


def test_every_rule_has_runbook_annotations_and_every_alert_is_tested() -> None:
    found = {rule["alert"] for rule in rules()}
    assert found == EXPECTED_ALERTS
    for rule in rules():
        assert set(rule["annotations"]) >= {"summary", "description", "runbook_url"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
    retrain = {rule["alert"] for rule in rules() if rule["labels"].get("action") == "retrain"}
    assert retrain == {"DriftloopDatasetDrift", "DriftloopPerformanceDegraded"}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for name in EXPECTED_ALERTS:
        outcomes = [bool(c["exp_alerts"]) for c in cases if c["alertname"] == name]
        assert True in outcomes and False in outcomes, f"{name}: needs firing and not-firing cases"


def test_rule_metrics_exist_in_design_and_in_monitor_metrics() -> None:
    used: set[str] = set()
    for rule in rules():
        used |= set(re.findall(r"\bdriftloop_[a-z_]+", rule["expr"]))
    assert used, "no driftloop metric found in the rules"
    assert used <= DESIGN_METRICS, sorted(used - DESIGN_METRICS)
    exported = {spec.name for spec in METRICS}
    assert used <= exported, sorted(used - exported)
