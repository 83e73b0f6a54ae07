"""deploy/k8s: core kinds pass the Kubernetes schemas bundled with kubernetes-validate
(strict: unknown fields fail), the CRDs (ServiceMonitor, ScaledObject) are checked for
the fields their controllers need, and every manifest agrees with driftloop.yaml."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from monitor.config import Config, load_config
from tests.deploy.stack import K8S, load_yaml

KUBERNETES_VERSION = "1.30"  # a version kubernetes-validate bundles (1.25 to 1.37)
CORE_KINDS = {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}


def documents() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


def by_kind(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in documents() if d["kind"] == kind]
    return doc


def config(tmp_path: Path) -> Config:
    """The ConfigMap's driftloop.yaml, read as driftloop reads a file (YAML 1.2)."""
    path = tmp_path / "driftloop.yaml"
    path.write_text(by_kind("ConfigMap")["data"]["driftloop.yaml"])
    return load_config(path, environ={
        "DRIFTLOOP__STATE__URL": "postgresql+psycopg://driftloop:pw@postgres:5432/driftloop"})


def container() -> dict[str, Any]:
    (found,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(found)


def test_kustomization_lists_every_manifest() -> None:
    listed = load_yaml(K8S / "kustomization.yaml")["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml")
                                    if p.name != "kustomization.yaml")
    assert {d["kind"] for d in documents()} == CORE_KINDS | {"ServiceMonitor", "ScaledObject"}


@pytest.mark.parametrize("kind", sorted(CORE_KINDS))
def test_core_manifest_passes_the_kubernetes_schema(kind: str) -> None:
    assert kubernetes_validate.validate(by_kind(kind), KUBERNETES_VERSION, strict=True) == \
        KUBERNETES_VERSION


def test_the_schema_check_rejects_a_wrong_field() -> None:
    broken = copy.deepcopy(by_kind("Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    unknown = copy.deepcopy(by_kind("Service"))
    unknown["spec"]["selectr"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, KUBERNETES_VERSION, strict=True)


def test_configmap_driftloop_yaml_passes_load_config(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    assert loaded.server.host == "0.0.0.0" and loaded.server.auth_token_env
    assert loaded.state.url.startswith("postgresql+psycopg://driftloop:pw@")


def test_deployment_probes_health_and_readiness_on_the_configured_port(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    found = container()
    (port,) = found["ports"]
    assert port["containerPort"] == loaded.server.port
    assert found["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert found["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert found["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert found["args"][-1] == "/etc/driftloop/driftloop.yaml"
    (config_mount,) = [m for m in found["volumeMounts"] if m["name"] == "config"]
    assert config_mount["mountPath"] == "/etc/driftloop"
    (volume,) = [v for v in by_kind("Deployment")["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == "config"]
    assert volume["configMap"]["name"] == by_kind("ConfigMap")["metadata"]["name"]


def test_deployment_runs_non_root_read_only_with_requests_and_limits() -> None:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    security = container()["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = container()["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) >= {"memory"}
    assert "USER 10001" in (K8S.parents[1] / "Dockerfile").read_text()


def test_every_secret_the_config_names_comes_from_the_deployment_env(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    named = {loaded.server.auth_token_env, loaded.server.grafana_hmac_secret_env,
             loaded.mlflow.webhook_secret_env, "DRIFTLOOP__STATE__URL"}
    for model in loaded.models.values():
        launcher = model.retrain.launcher
        if launcher is not None and getattr(launcher, "token_env", None):
            named.add(launcher.token_env)  # type: ignore[union-attr]
    env = {item["name"]: item for item in container()["env"]}
    for name in named - {None}:
        assert name in env, f"{name} is named by the config but not set on the pod"
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "driftloop-secrets"


def test_service_servicemonitor_and_pdb_select_the_deployment_pods() -> None:
    pod_labels = by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = by_kind("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == container()["ports"][0]["name"]
    monitor = by_kind("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == (port["name"], "/metrics")
    # the alert rules select up{job="driftloop"}: jobLabel names the Service label whose
    # value becomes the job
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "driftloop"
    pdb = by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_scaled_object_scales_the_deployment_on_its_consumer_groups_lag(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    scaled = by_kind("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", by_kind("Deployment")["metadata"]
                                                ["name"])
    # KEDA owns the replica count; a replicas field would be reset at every apply
    assert "replicas" not in by_kind("Deployment")["spec"]
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert metadata["consumerGroup"] == loaded.kafka.group_id
    assert metadata["topic"] == loaded.kafka.predictions_topic
    assert metadata["bootstrapServers"].split(",") == loaded.kafka.bootstrap_servers
    # KEDA's scaler metadata is a map of strings
    assert all(isinstance(value, str) for value in metadata.values())
    assert metadata["allowIdleConsumers"] == "false"
