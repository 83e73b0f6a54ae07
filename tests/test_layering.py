"""The import graph of driftloop's packages: no cycles, and arrows that follow the layering.

The graph is read from the source (every ``import`` and ``from ... import``,
also inside functions and ``TYPE_CHECKING`` blocks), so a lazy import cannot
hide an arrow. Rooms of ``monitor`` are its sub-packages and its top-level
modules; their order is the table of ``monitor/__init__.py``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "detectors", "triggers", "dashboards")

# a room may import only rooms of a lower rank (and itself)
MONITOR_RANKS = {
    "errors": 0, "metrics": 0,
    "tables": 1, "config": 1, "store": 1,
    "baseline": 2, "ingest": 2,
    "evaluate": 3,
    "stream": 4,
    "react": 5,
    "api": 6,
    "runtime": 7,
    "cli": 8,
}
# modules of triggers that decide (pure): they import no adapter
TRIGGERS_PURE = ("triggers.policy", "triggers.state", "triggers.evidence", "triggers.launch",
                 "triggers.alerts", "triggers.text")
TRIGGERS_ADAPTERS = ("triggers.launchers", "triggers.registry")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that ``name`` (a module or a name inside one) refers to."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> Iterator[str]:
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # "from pkg import sub" is an arrow to the module pkg.sub when there is one,
            # else to pkg (a parent package is imported first either way: not an arrow)
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES
                     else node.module for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                yield target


GRAPH = {module: set(_imports(module)) for module in MODULES}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "monitor" and len(parts) > 1 else parts[0]


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reads_every_package() -> None:
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert "monitor.stream.service" in GRAPH["monitor.stream.consumer"]


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_monitor_rooms_import_only_lower_rooms() -> None:
    rooms = {_room(m) for m in MODULES if m.startswith("monitor.")}
    assert rooms <= set(MONITOR_RANKS), f"rooms without a rank: {rooms - set(MONITOR_RANKS)}"
    against = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items() if module.startswith("monitor.")
        for target in targets if target.startswith("monitor.") and target != "monitor"
        if _room(target) != _room(module)
        and MONITOR_RANKS[_room(target)] >= MONITOR_RANKS[_room(module)]
    ]
    assert against == []


@pytest.mark.parametrize(("package", "allowed"), [
    ("detectors", {"detectors"}),
    ("triggers", {"triggers", "detectors"}),
    ("dashboards", {"dashboards", "monitor.metrics"}),
])
def test_packages_import_only_what_the_design_card_allows(package: str,
                                                          allowed: set[str]) -> None:
    against = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items() if module.split(".")[0] == package
        for target in targets
        if not any(target == a or target.startswith(a + ".") for a in allowed)
        and not (package == "dashboards" and target == "monitor")
    ]
    assert against == []


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for nxt in GRAPH[node]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("module", [m for m in TRIGGERS_PURE if m in MODULES])
def test_pure_trigger_modules_reach_no_adapter(module: str) -> None:
    adapters = sorted(m for m in _reachable(module) if m.startswith(TRIGGERS_ADAPTERS))
    assert adapters == []


def test_importing_the_policy_loads_no_http_client_or_subprocess_launcher() -> None:
    probe = ("import sys, triggers.policy, triggers.state, triggers.evidence; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('httpx', 'tenacity', 'mlflow') or m.startswith('triggers.launchers')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
