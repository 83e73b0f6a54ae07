"""The compose stack's wiring: files, ports, service names, secrets and start order agree
across compose.yaml, the Prometheus, Alertmanager, Grafana and driftloop configs.

``docker-compose config`` (Debian's docker-compose 1.29, no engine needed) must be
installed: CI installs it with apt; a missing binary fails the test.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import make_url

from monitor.config import Config, load_config
from tests.deploy.stack import (
    ALERTMANAGER,
    COMPOSE,
    COMPOSE_DIR,
    DRIFTLOOP_CONFIG,
    PROMETHEUS,
    ROOT,
    compose,
    container_ports,
    ignore_patterns,
    load_yaml,
    mounts,
)

ENV_EXAMPLE = ROOT / ".env.example"
SECRETS = ("DRIFTLOOP_TOKEN", "DRIFTLOOP_GRAFANA_HMAC_SECRET", "POSTGRES_PASSWORD",
           "GRAFANA_ADMIN_PASSWORD")


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def driftloop_config() -> Config:
    """The compose driftloop.yaml with the environment compose gives the service."""
    url = services()["driftloop"]["environment"]["DRIFTLOOP__STATE__URL"]
    url = re.sub(r"\$\{POSTGRES_PASSWORD[^}]*\}", "pw", url)
    return load_config(DRIFTLOOP_CONFIG, environ={"DRIFTLOOP__STATE__URL": url})


def tool(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    path = shutil.which(argv[0])
    assert path, f"{argv[0]} not on PATH (CI: apt-get install docker-compose prometheus " \
                 "prometheus-alertmanager)"
    return subprocess.run([path, *argv[1:]], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


def _env_without_secrets() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SECRETS}


# -- docker-compose itself -----------------------------------------------------------------
def test_docker_compose_config_accepts_the_stack_with_the_example_env() -> None:
    done = tool("docker-compose", "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE),
                "config", "-q", env=_env_without_secrets())
    assert done.returncode == 0, done.stderr


def test_docker_compose_config_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = tool("docker-compose", "--env-file", str(empty), "-f", str(COMPOSE), "config", "-q",
                env=_env_without_secrets())
    assert done.returncode != 0
    assert re.search(r"set (DRIFTLOOP_TOKEN|POSTGRES_PASSWORD|DRIFTLOOP_GRAFANA_HMAC_SECRET|"
                     r"GRAFANA_ADMIN_PASSWORD) in \.env", done.stderr), done.stderr


def test_env_example_sets_every_variable_compose_reads_and_holds_no_real_secret() -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line and not line.startswith("#"))
    assert used >= set(SECRETS)
    assert used <= set(example), sorted(used - set(example))
    for name in SECRETS:
        assert example[name].startswith("change-me"), name
    assert ".env" in ignore_patterns(ROOT / ".gitignore")
    assert ".env" in ignore_patterns(ROOT / ".dockerignore")


# -- files, ports, order -------------------------------------------------------------------
def test_every_file_compose_mounts_or_builds_from_exists() -> None:
    host_paths = [source for service in services().values()
                  for source in mounts(service).values() if source.startswith(".")]
    assert len(host_paths) >= 8
    for source in host_paths:
        assert (ROOT / source).exists(), f"compose.yaml mounts {source}, which does not exist"
    for name, service in services().items():
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists(), name


def test_every_published_port_is_bound_to_loopback() -> None:
    published = {name: container_ports(s) for name, s in services().items() if "ports" in s}
    assert {"kafka", "driftloop", "prometheus", "alertmanager", "grafana"} <= set(published)
    for name, ports in published.items():
        for port, address in ports.items():
            assert address == "127.0.0.1", f"{name} publishes {port} on {address or 'all'}"


def test_services_start_in_order_on_health_and_the_example_data() -> None:
    found = services()
    conditions = {name: {dep: spec["condition"] for dep, spec in s.get("depends_on", {}).items()}
                  for name, s in found.items()}
    assert conditions["driftloop"] == {
        "kafka": "service_healthy", "postgres": "service_healthy",
        "mlflow": "service_healthy", "example": "service_completed_successfully"}
    assert conditions["traffic"] == {"driftloop": "service_healthy"}
    assert conditions["mlflow"] == {"postgres": "service_healthy"}
    assert conditions["prometheus"] == {"alertmanager": "service_healthy"}
    assert conditions["grafana"] == {"prometheus": "service_healthy"}
    for name, deps in conditions.items():
        for dep, condition in deps.items():
            if condition == "service_healthy":
                check = found[dep].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), f"{name} waits on {dep}"


# -- Prometheus and Alertmanager -----------------------------------------------------------
def _targets(config: dict[str, Any]) -> dict[str, list[str]]:
    jobs = {job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
            for job in config["scrape_configs"]}
    jobs["alertmanager"] = [t for am in config["alerting"]["alertmanagers"]
                            for c in am["static_configs"] for t in c["targets"]]
    return jobs


def test_prometheus_scrapes_driftloop_and_alerts_alertmanager_by_their_compose_names() -> None:
    found = services()
    config = load_yaml(COMPOSE_DIR / "prometheus.yml")
    port = driftloop_config().server.port
    assert _targets(config) == {"driftloop": [f"driftloop:{port}"],
                                "prometheus": ["localhost:9090"],
                                "alertmanager": ["alertmanager:9093"]}
    assert port in container_ports(found["driftloop"])
    assert 9093 in container_ports(found["alertmanager"])
    assert 9090 in container_ports(found["prometheus"])
    prometheus_mounts = mounts(found["prometheus"])
    assert prometheus_mounts["/etc/prometheus/prometheus.yml"] == "./deploy/compose/prometheus.yml"
    # rule_files are relative to the config file's directory
    for relative in config["rule_files"]:
        mounted = prometheus_mounts["/etc/prometheus/" + relative.split("/")[0]]
        assert (ROOT / mounted / relative.split("/", 1)[1]).exists(), relative


def test_compose_prometheus_config_is_the_shipped_one_with_compose_targets() -> None:
    shipped = load_yaml(PROMETHEUS / "prometheus.yml")
    ours = load_yaml(COMPOSE_DIR / "prometheus.yml")
    for config in (shipped, ours):
        for job in config["scrape_configs"]:
            job["static_configs"] = []
        config["alerting"]["alertmanagers"][0]["static_configs"] = []
    assert ours == shipped


def test_compose_alertmanager_config_is_the_shipped_one_with_driftloop_compose_address() -> None:
    shipped = load_yaml(ALERTMANAGER)
    ours = load_yaml(COMPOSE_DIR / "alertmanager.yml")
    (hook,) = [h for r in ours["receivers"] for h in r.get("webhook_configs", [])]
    assert hook["url"] == f"http://driftloop:{driftloop_config().server.port}/api/v1/alerts"
    token_file = hook["http_config"]["authorization"]["credentials_file"]
    # the alertmanager service writes DRIFTLOOP_TOKEN to that file before it starts
    service = services()["alertmanager"]
    assert f"> {token_file}" in " ".join(service["command"])
    assert "DRIFTLOOP_TOKEN" in service["environment"]
    assert mounts(service)["/etc/alertmanager/alertmanager.yml"] == \
        "./deploy/compose/alertmanager.yml"
    comparable = copy.deepcopy(ours)
    (same,) = [h for r in comparable["receivers"] for h in r.get("webhook_configs", [])]
    (original,) = [h for r in shipped["receivers"] for h in r.get("webhook_configs", [])]
    same["url"] = original["url"]
    same["http_config"] = original["http_config"]
    assert comparable == shipped


@pytest.mark.parametrize("tool_argv", [
    ("promtool", "check", "config", "prometheus.yml"),
    ("amtool", "check-config", "alertmanager.yml"),
], ids=["promtool", "amtool"])
def test_compose_prometheus_and_alertmanager_configs_pass_their_tools(
        tool_argv: tuple[str, ...], tmp_path: Path) -> None:
    shutil.copy(COMPOSE_DIR / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(COMPOSE_DIR / "alertmanager.yml", tmp_path / "alertmanager.yml")
    shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
    done = tool(*tool_argv, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_alertmanager_routes_retrain_alerts_to_driftloop(tmp_path: Path) -> None:
    shutil.copy(COMPOSE_DIR / "alertmanager.yml", tmp_path / "alertmanager.yml")
    for labels, receiver in ((("action=retrain", "model=carloan"), "driftloop"),
                             (("alertname=DriftloopDown",), "default")):
        done = tool("amtool", "config", "routes", "test", "--config.file=alertmanager.yml",
                    *labels, cwd=tmp_path)
        assert done.stdout.strip() == receiver, done.stdout + done.stderr


# -- driftloop -----------------------------------------------------------------------------
def test_compose_driftloop_config_passes_load_config_and_names_compose_services() -> None:
    config = driftloop_config()
    found = services()
    kafka_env = found["kafka"]["environment"]
    assert f"INTERNAL://{config.kafka.bootstrap_servers[0]}" in \
        kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    state = make_url(config.state.url)
    assert (state.host, state.port, state.username, state.password) == \
        ("postgres", 5432, "driftloop", "pw")
    assert state.database == found["postgres"]["environment"]["POSTGRES_DB"]
    assert state.username == found["postgres"]["environment"]["POSTGRES_USER"]
    mlflow = urlsplit(config.mlflow.tracking_uri or "")
    assert mlflow.hostname == "mlflow"
    command = found["mlflow"]["command"]
    assert command[command.index("--port") + 1] == str(mlflow.port)
    assert "@postgres:5432/mlflow" in found["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert "CREATE DATABASE mlflow" in (COMPOSE_DIR / "postgres-init.sql").read_text()


def test_driftloop_reads_the_baseline_the_example_service_writes() -> None:
    config = driftloop_config()
    found = services()
    baseline = Path(config.models["carloan"].baseline)
    out = found["example"]["command"][found["example"]["command"].index("--out") + 1]
    assert baseline == Path(out) / "baseline.json"
    volume = mounts(found["example"])[out]
    assert mounts(found["driftloop"])[str(baseline.parent)] == volume
    assert mounts(found["traffic"])[out] == volume


def test_traffic_replays_to_the_broker_and_topics_driftloop_consumes() -> None:
    from tests.deploy.stack import traffic_module

    config = driftloop_config()
    command = services()["traffic"]["command"]
    assert command[command.index("--bootstrap") + 1].split(",") == \
        config.kafka.bootstrap_servers
    defaults = traffic_module().replay_forever.__defaults__
    assert defaults[-2:] == (config.kafka.predictions_topic, config.kafka.labels_topic)
    assert "carloan" in config.models


def test_driftloop_listens_where_its_healthchecks_and_secrets_expect() -> None:
    config = driftloop_config()
    service = services()["driftloop"]
    assert config.server.host == "0.0.0.0"  # inside the container; published on loopback
    readyz = f"http://127.0.0.1:{config.server.port}/readyz"
    assert readyz in " ".join(service["healthcheck"]["test"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert readyz in dockerfile
    # a non-loopback bind needs the token driftloop reads from server.auth_token_env
    assert config.server.auth_token_env in service["environment"]
    assert config.server.grafana_hmac_secret_env in service["environment"]
    assert mounts(service)["/etc/driftloop/driftloop.yaml"] == "./deploy/compose/driftloop.yaml"
    assert service["command"][-1] == "/etc/driftloop/driftloop.yaml"


def test_dockerfile_builds_a_slim_non_root_image_with_a_readiness_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", text, re.M)
    assert base and re.fullmatch(r"python:3\.11-slim(-\w+)?", base[1]), base
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert re.search(r"^HEALTHCHECK .*\n?.*/readyz", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    ignored = ignore_patterns(ROOT / ".dockerignore")
    assert {".git", ".venv", ".env", "tests"} <= ignored
    for needed in ("pyproject.toml", "README.md", "monitor", "detectors", "triggers",
                   "dashboards"):
        assert needed in text and needed not in ignored, needed
