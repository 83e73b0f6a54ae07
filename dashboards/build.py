"""Render the dashboards to the JSON files Grafana's file provisioning reads.

The output is deterministic (sorted keys, two-space indent, a final newline),
so regenerating unchanged dashboards leaves ``git diff`` empty and a test can
compare the committed files with a fresh build.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.annotations import FLEET_ANNOTATIONS, MODEL_ANNOTATIONS
from dashboards.fleet import fleet_overview
from dashboards.model_detail import model_detail

__all__ = ["DASHBOARDS", "DEFAULT_OUT", "DashboardSpec", "build_all", "render", "to_json"]

# relative to the working directory (the repository root): the directory compose.yaml
# mounts for Grafana's file provider. Not next to the package: installed, that would
# be inside site-packages.
DEFAULT_OUT = Path("grafana") / "dashboards"


@dataclass(frozen=True)
class DashboardSpec:
    file_name: str
    build: Callable[[], dashboard.Dashboard]
    annotations: Sequence[dict[str, Any]] = field(default_factory=tuple)


DASHBOARDS: tuple[DashboardSpec, ...] = (
    DashboardSpec("driftloop-fleet.json", fleet_overview, FLEET_ANNOTATIONS),
    DashboardSpec("driftloop-model.json", model_detail, MODEL_ANNOTATIONS),
)


def render(spec: DashboardSpec) -> dict[str, Any]:
    """The dashboard model as plain JSON data."""
    data: dict[str, Any] = json.loads(json.dumps(spec.build().build(), cls=JSONEncoder))
    # The SDK leaves every panel id at 0; Grafana needs them unique (panel links,
    # "view panel", alert rules pointing at a panel), and stable across builds.
    for number, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = number
    if spec.annotations:
        data.setdefault("annotations", {})["list"] = [dict(a) for a in spec.annotations]
    return data


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build_all(out_dir: str | Path = DEFAULT_OUT) -> list[Path]:
    """Write every dashboard into ``out_dir`` (created if missing); returns the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in DASHBOARDS:
        path = out / spec.file_name
        path.write_text(to_json(render(spec)), encoding="utf-8")
        written.append(path)
    return written
