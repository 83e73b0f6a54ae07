"""docs/reference/ is the contract as built: it must be what the code generates today."""

from __future__ import annotations

from pathlib import Path

from monitor.cli.reference import build_reference

COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "reference"


def test_committed_reference_equals_what_the_code_generates(tmp_path: Path) -> None:
    written = build_reference(tmp_path)
    stale = [path.name for path in written
             if not (COMMITTED / path.name).exists()
             or (COMMITTED / path.name).read_text(encoding="utf-8")
             != path.read_text(encoding="utf-8")]
    assert stale == [], f"run `make reference` and commit docs/reference: {stale} differ"


def test_differences_from_the_design_are_written_down() -> None:
    text = (COMMITTED / "differences.md").read_text(encoding="utf-8")
    for section in ("Events", "Configuration", "Command line", "HTTP API", "Metrics",
                    "Delivery and scale"):
        assert f"## {section}" in text
