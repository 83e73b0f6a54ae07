"""Every PromQL expression of the generated dashboards, ready to send to Prometheus.

:func:`promql_queries` reads ``grafana/dashboards/*.json`` and returns one
:class:`DashboardQuery` per panel target, template variable and annotation,
with Grafana's variables replaced by values a test can evaluate:
``$model``/``$version``/``$feature`` (or ``${model}``, ``[[model]]``) by
:data:`DEFAULT_VALUES` or the caller's, and Grafana's own ``$__rate_interval``,
``$__interval`` and ``$__range``. A variable's ``label_values(metric, label)``
becomes ``group by (label) (metric)``: it has data exactly when the variable
has options.

:func:`metric_names` lists the metric names an expression selects, for the
check that every metric a dashboard or alert rule names is exported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "BUILTIN_METRICS",
    "DASHBOARD_DIR",
    "DEFAULT_VALUES",
    "PENDING_METRICS",
    "DashboardQuery",
    "label_values_to_promql",
    "metric_names",
    "promql_queries",
    "raw_queries",
    "substitute",
]

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"

# Grafana's variables and the values a test evaluates them with. version and
# feature are matched with =~ in the dashboards: ".*" is what "All" sends.
DEFAULT_VALUES: Mapping[str, str] = {
    "model": "carloan",
    "version": ".*",
    "feature": ".*",
    "__rate_interval": "5m",
    "__interval": "15s",
    "__range": "1h",
}

# Series Prometheus itself adds to every scrape.
BUILTIN_METRICS = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

# Names the dashboards use that monitor.metrics.METRICS does not list yet, and why.
# tests/dashboards/test_dashboards.py fails once one of them appears in METRICS, so
# the entry is removed and the name is held to the same checks as the others.
PENDING_METRICS: Mapping[str, str] = {}

QueryKind = Literal["panel", "variable", "annotation"]


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str  # the JSON file name
    panel: str  # panel title, "variable <name>" or "annotation <name>"
    ref_id: str
    kind: QueryKind
    expr: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.dashboard, self.panel, self.ref_id


def _panels(data: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for panel in data.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def raw_queries(path: Path) -> list[DashboardQuery]:
    """The expressions of one dashboard file as written, variables unreplaced."""
    data = json.loads(path.read_text(encoding="utf-8"))
    found: list[DashboardQuery] = []
    for panel in _panels(data):
        for target in panel.get("targets", []):
            found.append(DashboardQuery(path.name, panel["title"], target.get("refId", ""),
                                        "panel", target["expr"]))
    for variable in data.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            expr = query["query"] if isinstance(query, dict) else query
            found.append(DashboardQuery(path.name, f"variable {variable['name']}", "",
                                        "variable", expr))
    for annotation in data.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            found.append(DashboardQuery(path.name, f"annotation {annotation['name']}", "",
                                        "annotation", annotation["expr"]))
    return found


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace ``$name``, ``${name}`` and ``[[name]]``; KeyError names an unknown variable."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"variable ${name} in {expr!r} has no value; known: {sorted(values)}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", value, expr)


_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.+),\s*(?P<label>\w+)\s*\)\s*$", re.S)


def label_values_to_promql(expr: str) -> str:
    """``label_values(metric{...}, label)`` -> ``group by (label) (metric{...})``."""
    match = _LABEL_VALUES.match(expr)
    if match is None:
        raise ValueError(f"variable query {expr!r}: expected label_values(<selector>, <label>)")
    return f"group by ({match['label']}) ({match['selector'].strip()})"


def promql_queries(directory: Path = DASHBOARD_DIR,
                   values: Mapping[str, str] | None = None) -> list[DashboardQuery]:
    """Every query of every dashboard in ``directory`` as PromQL Prometheus can run."""
    chosen = {**DEFAULT_VALUES, **(values or {})}
    out = []
    for path in sorted(directory.glob("*.json")):
        for query in raw_queries(path):
            expr = query.expr
            if query.kind == "variable":
                expr = label_values_to_promql(expr)
            out.append(DashboardQuery(query.dashboard, query.panel, query.ref_id, query.kind,
                                      substitute(expr, chosen)))
    return out


_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on",
                       "ignoring", "group_left", "group_right", "inf", "nan", "atan2"})


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, labels or keywords).

    A small scanner, enough for the expressions of this project: it drops
    strings, label matchers, ranges, offsets and grouping clauses, then keeps the
    identifiers that are not followed by ``(`` (functions and aggregations).
    """
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        name = match.group(0)
        rest = text[match.end():].lstrip()
        if name in _KEYWORDS or rest.startswith("("):
            continue
        names.add(name)
    return names
