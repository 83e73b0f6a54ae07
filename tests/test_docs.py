"""The maps people read must match the tree: docs/internals.md and the README's layout table."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_DOTTED = re.compile(r"\b((?:monitor|detectors|triggers|dashboards)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _resolves(dotted: str) -> bool:
    """The longest importable prefix exists and the rest are attributes of it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def test_internals_names_only_modules_and_names_that_exist() -> None:
    text = (ROOT / "docs" / "internals.md").read_text(encoding="utf-8")
    names = sorted({m.rstrip(".") for m in _DOTTED.findall(text)})
    assert len(names) > 30
    assert [name for name in names if not _resolves(name)] == []


def test_readme_layout_table_matches_the_tree() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## Layout", 1)[1]
    listed = set(re.findall(r"^\| `([^`]+)/` \|", table, flags=re.M))
    on_disk = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
               and p.name not in {"build", "dist", "out", "demo-output", "mlruns",
                                  "mlartifacts"} and not p.name.endswith(".egg-info")}
    assert listed == on_disk
