"""Acceptance: the seeded example dataset with known shifts is detected exactly.

End to end through the CLI code path (``driftloop baseline build`` then
``driftloop evaluate``, JSON lines) with default settings (``threshold: auto``):
every shifted (feature, window) cell is flagged, no stable cell is, and the
quality issues (a doubled missing rate, a new category) are reported where they
were planted and nowhere else.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest

from monitor.cli import main
from monitor.cli.examples import (
    CONCEPT_SHIFT_WINDOW,
    FEATURES,
    MISSING_SHIFT,
    NEW_CATEGORY,
    SHIFTS,
    WINDOWS,
    write_example,
)


@pytest.fixture(scope="module", params=[7, 11])
def results(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    directory = tmp_path_factory.mktemp(f"known-shifts-{request.param}")
    files = write_example(directory, seed=request.param)
    baseline = directory / "baseline.json"
    assert main(["baseline", "build", "--data", str(files.reference), "--model", "carloan",
                 "--target", "repaid", "--prediction", "prediction", "--score", "score",
                 "--id", "request_id", "--timestamp", "timestamp", "--out", str(baseline)]) == 0
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["evaluate", "--baseline", str(baseline), "--data", str(files.current),
                     "--labels", str(files.labels), "--window-rows", str(files.window_rows)])
    assert code == 0
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_every_window_is_evaluated(results: list[dict[str, Any]]) -> None:
    assert [r["window"] for r in results] == list(range(1, WINDOWS + 1))
    assert all(set(r["features"]) == set(FEATURES) for r in results)


def test_shifted_cells_are_flagged_and_stable_cells_are_not(
        results: list[dict[str, Any]]) -> None:
    flagged = {(feature, r["window"]) for r in results
               for feature, f in r["features"].items() if f["drift"]}
    assert flagged == set(SHIFTS)
    statuses = {f["status"] for r in results for f in r["features"].values()}
    assert statuses <= {"drift", "ok"}  # no inconclusive cell at these sizes


def test_dataset_drift_follows_the_share(results: list[dict[str, Any]]) -> None:
    for r in results:
        shifted = sum(1 for feature, window in SHIFTS if window == r["window"])
        assert r["drift_share"] == pytest.approx(shifted / len(FEATURES))
        assert r["dataset_drift"] is (shifted / len(FEATURES) >= 0.5)


def test_quality_issues_are_reported_where_planted(results: list[dict[str, Any]]) -> None:
    feature, missing_window, _, _ = MISSING_SHIFT
    new_feature, new_window, category, _ = NEW_CATEGORY
    for r in results:
        quality = r["quality"]
        expected_missing = {feature} if r["window"] == missing_window else set()
        assert set(quality["missing"]) == expected_missing, r["window"]
        expected_unseen = {new_feature: [category]} if r["window"] == new_window else {}
        assert quality["unseen_categories"] == expected_unseen, r["window"]
        assert quality["out_of_range"] == {} and quality["type_violations"] == {}
        assert quality["missing_columns"] == []
        assert len(quality["violations"]) == len(expected_missing) + len(expected_unseen)


def test_concept_shift_shows_as_performance_drop_without_drift(
        results: list[dict[str, Any]]) -> None:
    shifted = results[CONCEPT_SHIFT_WINDOW - 1]
    assert shifted["performance"]["degraded"] is True
    assert not any(f["drift"] for f in shifted["features"].values())
    quiet = [r for r in results
             if r["window"] not in {w for _, w in SHIFTS} | {CONCEPT_SHIFT_WINDOW}]
    assert quiet and all(r["performance"]["degraded"] is False for r in quiet)
    assert all(r["performance"]["labeled_rows"] > 0 for r in results)
