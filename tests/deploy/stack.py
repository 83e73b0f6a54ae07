"""Readers for the deployment files the deploy tests compare with one another."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

__all__ = [
    "ALERTMANAGER",
    "COMPOSE",
    "COMPOSE_DIR",
    "DRIFTLOOP_CONFIG",
    "GRAFANA",
    "K8S",
    "PROMETHEUS",
    "ROOT",
    "compose",
    "container_ports",
    "ignore_patterns",
    "load_yaml",
    "mounts",
    "traffic_module",
]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
COMPOSE_DIR = ROOT / "deploy" / "compose"
DRIFTLOOP_CONFIG = COMPOSE_DIR / "driftloop.yaml"
GRAFANA = ROOT / "grafana"
PROMETHEUS = ROOT / "prometheus"
ALERTMANAGER = PROMETHEUS / "alertmanager.yml"
K8S = ROOT / "deploy" / "k8s"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    """compose.yaml as data (YAML merge keys resolved, variables left as written)."""
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (``./...``) or volume name, of a service's volumes."""
    found = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        found[target] = source
    return found


def container_ports(service: dict[str, Any]) -> dict[int, str]:
    """Container port -> the host address it is published on ("127.0.0.1")."""
    found = {}
    for entry in service.get("ports", []):
        match = re.fullmatch(r"(?:(?P<ip>[\d.]+):)?(?P<host>\d+):(?P<container>\d+)", entry)
        assert match, f"port {entry!r}: expected [ip:]host:container"
        found[int(match["container"])] = match["ip"] or ""
    return found


def traffic_module() -> ModuleType:
    """deploy/compose/traffic.py, imported from its path (it is a script, not a package)."""
    path = COMPOSE_DIR / "traffic.py"
    spec = importlib.util.spec_from_file_location("driftloop_compose_traffic", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


def ignore_patterns(path: Path) -> set[str]:
    """The patterns of a .gitignore / .dockerignore file (comments dropped)."""
    return {line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")}
