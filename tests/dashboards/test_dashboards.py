"""The generated dashboards: committed JSON equals a fresh build, every query names a
metric the service exports, and every panel can be read by someone new to it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import DATASOURCE_UID, build_all
from monitor.metrics import METRICS
from tests.dashboards.queries import (
    BUILTIN_METRICS,
    DASHBOARD_DIR,
    PENDING_METRICS,
    label_values_to_promql,
    metric_names,
    promql_queries,
    raw_queries,
    substitute,
)

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "rules" / "driftloop.rules.yml"
DOCS = ROOT / "docs"
DOCS_URL = "https://github.com/driftloop/driftloop/blob/main/docs/"


def exported_names() -> set[str]:
    """Series names the service exposes: histograms add _bucket, _sum and _count."""
    names = set()
    for spec in METRICS:
        names.add(spec.name)
        if spec.type == "histogram":
            names |= {f"{spec.name}_bucket", f"{spec.name}_sum", f"{spec.name}_count"}
    return names


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))]


def panels() -> list[tuple[str, dict[str, Any]]]:
    return [(board["title"], panel) for board in dashboards() for panel in board["panels"]
            if panel["type"] != "row"]


def anchors(markdown: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in markdown.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


# -- generated files ---------------------------------------------------------------------
def test_committed_dashboards_equal_a_fresh_build(tmp_path: Path) -> None:
    written = build_all(tmp_path)
    assert {p.name for p in written} == {p.name for p in DASHBOARD_DIR.glob("*.json")}
    for path in written:
        committed = (DASHBOARD_DIR / path.name).read_text()
        assert path.read_text() == committed, (
            f"grafana/dashboards/{path.name} is stale: run `python -m dashboards build`")


def test_build_command_writes_every_dashboard_into_out(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "dashboards", "build", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "driftloop-fleet.json", "driftloop-model.json"]
    assert done.stdout.count(str(tmp_path)) == 2


# -- datasource, ids, refIds --------------------------------------------------------------
def test_every_panel_query_variable_and_annotation_uses_the_fixed_datasource() -> None:
    for board in dashboards():
        refs = [panel["datasource"] for panel in board["panels"] if panel["type"] != "row"]
        refs += [t["datasource"] for p in board["panels"] for t in p.get("targets", [])]
        refs += [v["datasource"] for v in board.get("templating", {}).get("list", [])]
        refs += [a["datasource"] for a in board.get("annotations", {}).get("list", [])]
        assert refs
        assert all(ref == {"type": "prometheus", "uid": DATASOURCE_UID} for ref in refs), (
            board["title"])


def test_panel_ids_are_unique_and_every_query_has_a_distinct_ref_id() -> None:
    for board in dashboards():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)) and 0 not in ids, board["title"]
        for panel in board["panels"]:
            refs = [target["refId"] for target in panel.get("targets", [])]
            assert all(refs) and len(refs) == len(set(refs)), panel["title"]


# -- readable by someone new --------------------------------------------------------------
def test_every_panel_has_a_description_a_unit_and_a_link_to_existing_docs() -> None:
    known = {"runbooks.md": anchors(DOCS / "runbooks.md"),
             "dashboards.md": anchors(DOCS / "dashboards.md")}
    for board, panel in panels():
        where = f"{board} / {panel['title']}"
        assert len(panel.get("description", "")) > 40, f"{where}: no description"
        if panel["type"] in ("timeseries", "stat"):
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
        assert panel.get("links"), f"{where}: no link to a runbook or the panel docs"
        for link in panel["links"]:
            assert link["url"].startswith(DOCS_URL), f"{where}: {link['url']}"
            page, _, anchor = link["url"][len(DOCS_URL):].partition("#")
            assert anchor in known[page], f"{where}: no heading #{anchor} in docs/{page}"


def test_docs_dashboards_table_lists_every_panel() -> None:
    text = (DOCS / "dashboards.md").read_text()
    missing = [f"{board} / {panel['title']}" for board, panel in panels()
               if f"| {panel['title']} |" not in text]
    assert not missing, f"docs/dashboards.md has no table row for: {missing}"


def test_flags_and_canary_status_show_words_not_numbers() -> None:
    coded = {"Dataset drift", "Prediction drift", "Performance degraded", "driftloop up",
             "Canary status", "Canary status by model", "Feature drift over time"}
    seen = set()
    for _, panel in panels():
        if panel["title"] in coded:
            seen.add(panel["title"])
            mapped = panel["fieldConfig"]["defaults"]["mappings"][0]["options"]
            assert all(option["text"] for option in mapped.values()), panel["title"]
    assert seen == coded


def test_model_detail_variables_come_from_label_values_and_allow_several_versions() -> None:
    (board,) = [b for b in dashboards() if b["uid"] == "driftloop-model"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables) == ["model", "version", "feature"]
    for name in ("version", "feature"):
        assert variables[name]["multi"] and variables[name]["includeAll"]
        assert variables[name]["allValue"] == ".*"
    # several values arrive as a regex alternation: only =~ matches them
    for query in raw_queries(DASHBOARD_DIR / "driftloop-model.json"):
        assert '="$version"' not in query.expr and '="$feature"' not in query.expr, query.panel


# -- metric names -------------------------------------------------------------------------
def test_every_dashboard_metric_is_exported_or_pending() -> None:
    allowed = exported_names() | BUILTIN_METRICS | set(PENDING_METRICS)
    used: dict[str, set[str]] = {}
    for query in promql_queries():
        for name in metric_names(query.expr):
            used.setdefault(name, set()).add(f"{query.dashboard} / {query.panel}")
    assert len(used) > 20
    unknown = {name: sorted(where) for name, where in used.items() if name not in allowed}
    assert not unknown, f"metrics the service does not export: {unknown}"
    stale = set(PENDING_METRICS) - set(used)
    assert not stale, f"PENDING_METRICS lists names no dashboard uses: {sorted(stale)}"


def test_pending_metrics_are_not_in_metrics_yet() -> None:
    # once monitor.metrics exports one, remove it from PENDING_METRICS so the live
    # query test requires its panel to show data
    added = set(PENDING_METRICS) & exported_names()
    assert not added, f"now exported, remove from PENDING_METRICS: {sorted(added)}"


def test_every_alert_rule_metric_is_exported() -> None:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"]
             for rule in group["rules"]]
    used = set().union(*(metric_names(rule["expr"]) for rule in rules))
    assert "up" in used and "driftloop_consumer_lag" in used
    assert used <= exported_names() | BUILTIN_METRICS, sorted(
        used - exported_names() - BUILTIN_METRICS)


# -- the query helper itself --------------------------------------------------------------
@pytest.mark.parametrize(("expr", "names"), [
    ('histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="y(z)", b=~"$v"}[5m])))',
     {"a_bucket"}),
    ("count(flag == 1) or vector(0)", {"flag"}),
    ("sum by (r) (c{m=\"x\"}) unless c offset 2m", {"c"}),
    ("1e3 * b - on (model) group_left (version) info", {"b", "info"}),
    ('up{job="driftloop"} == 0', {"up"}),
    ("sum without (instance) (x) / ignoring (kind) y > bool 0.5", {"x", "y"}),
])
def test_metric_names_finds_selected_series_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_substitute_replaces_grafana_variable_forms_and_names_unknown_ones() -> None:
    values = {"model": "carloan", "__rate_interval": "5m"}
    got = substitute('rate(x{model="$model", m="${model}", n="[[model]]"}[$__rate_interval])',
                     values)
    assert got == 'rate(x{model="carloan", m="carloan", n="carloan"}[5m])'
    with pytest.raises(KeyError, match=r"\$feature"):
        substitute('x{feature=~"$feature"}', values)


def test_label_values_becomes_a_group_by_query() -> None:
    assert label_values_to_promql('label_values(m{model="$model"}, version)') == \
        'group by (version) (m{model="$model"})'
    with pytest.raises(ValueError, match="label_values"):
        label_values_to_promql("query_result(up)")


def test_promql_queries_leave_no_variable_behind() -> None:
    queries = promql_queries()
    kinds = {query.kind for query in queries}
    assert kinds == {"panel", "variable", "annotation"}
    for query in queries:
        assert "$" not in query.expr and "[[" not in query.expr, query
