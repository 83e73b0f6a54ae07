"""Grafana dashboards for driftloop, written as code with grafana-foundation-sdk.

``build_all(out_dir)`` writes ``driftloop-fleet.json`` (every model and the
service) and ``driftloop-model.json`` (one model in detail) into ``out_dir``,
by default ``grafana/dashboards/`` where Grafana's file provider reads them.
From the shell: ``python -m dashboards build [--out DIR]``.

Metric names come from ``monitor.metrics.METRICS`` (design section 8); a test
checks that every name a panel queries is exported by the service.
"""

from __future__ import annotations

from dashboards.build import DASHBOARDS, DEFAULT_OUT, build_all, render
from dashboards.common import DATASOURCE_UID

__all__ = ["DASHBOARDS", "DATASOURCE_UID", "DEFAULT_OUT", "build_all", "render"]
