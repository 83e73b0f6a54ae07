"""Evidently reports of drifted windows agree with the window they explain, column by
column, because they are run with driftloop's methods and thresholds; verdicts are
read from Evidently's result object (its tests), never from the HTML."""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import pytest

from monitor.baseline import Baseline, load_reference_sample
from monitor.config import ModelConfig
from monitor.evaluate import (
    METHODS,
    RowsCovered,
    build_drift_report,
    covered_sentence,
    evaluate_frame,
)
from tests.support.service import WINDOW_ROWS, StreamData

# driftloop settings exercising every method of the mapping
CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "p-values": {"drift": {"numeric_method": "ks", "categorical_method": "chisquare"}},
    "psi and linf": {"drift": {"numeric_method": "psi", "categorical_method": "linf",
                               "prediction_method": "linf"}},
    "js, psi and z": {"drift": {"numeric_method": "jensenshannon", "categorical_method": "psi",
                                "features": {"repaid_loan_on_prev_car": {"method": "z"}}}},
}
DRIFTED = (3, 5)  # windows of the example stream with planted shifts (from 1)


def windows(data: StreamData, config: dict[str, Any]) -> dict[int, Any]:
    baseline = Baseline.load(data.baseline)
    outcomes = evaluate_frame(baseline, data.current, ModelConfig(baseline="x", **config),
                              window_rows=WINDOW_ROWS)
    return {o.result["window"]: o for o in outcomes if o.result["window"] in DRIFTED}


def verdicts_from_evidently(snapshot: Any) -> tuple[dict[str, tuple[str, float, bool]],
                                                    bool | None]:
    """(method, threshold, drift) per column and dataset drift, from Evidently's tests:
    a failed ValueDrift test is drift, a failed DriftedColumnsCount test dataset drift."""
    columns, dataset = {}, None
    for test in snapshot.dict()["tests"]:
        params = test["metric_config"]["params"]
        failed = test["status"] == "FAIL"
        if params["type"] == "evidently:metric_v2:ValueDrift":
            columns[params["column"]] = (params["method"], params["threshold"], failed)
        elif params["type"] == "evidently:metric_v2:DriftedColumnsCount":
            dataset = failed
    return columns, dataset


def expected(result: dict[str, Any]) -> dict[str, tuple[str, float, bool]]:
    scores = {**result["features"], "prediction": result["prediction_drift"],
              "score": result["score_drift"]}
    return {name: (METHODS[s["method"]], s["threshold"], s["drift"])
            for name, s in scores.items()}


@pytest.fixture(scope="module")
def reference(stream_data: StreamData) -> pd.DataFrame:
    sample = load_reference_sample(stream_data.baseline)
    assert sample is not None
    return sample


@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_report_of_a_drifted_window_agrees_with_it_on_every_column(
        stream_data: StreamData, reference: pd.DataFrame, config: str) -> None:
    baseline = Baseline.load(stream_data.baseline)
    for number, outcome in windows(stream_data, CONFIGS[config]).items():
        result = outcome.result
        assert any(f["drift"] for f in result["features"].values()), number
        report = build_drift_report(baseline, reference, outcome.rows, result)
        columns, dataset_drift = verdicts_from_evidently(report.snapshot)
        want = expected(result)
        assert columns.keys() == want.keys(), number
        for name, (method, threshold, drift) in want.items():
            assert columns[name][0] == method, (number, name)
            assert columns[name][1] == pytest.approx(threshold), (number, name)
            assert columns[name][2] == drift, f"window {number} {name}: {columns[name]}"
        assert dataset_drift == result["dataset_drift"], number
        assert report.disagreements == ()
        assert "Evidently agrees with the window on all 10 columns" in report.html


def test_a_column_the_window_and_evidently_judge_differently_is_named_in_the_header(
        stream_data: StreamData, reference: pd.DataFrame) -> None:
    outcome = windows(stream_data, {})[3]
    result = copy.deepcopy(outcome.result)
    assert not result["features"]["age"]["drift"]
    result["features"]["age"]["drift"] = True  # as if driftloop had flagged it
    report = build_drift_report(Baseline.load(stream_data.baseline), reference, outcome.rows,
                                result)
    assert report.disagreements == ("age",)
    assert not report.verdicts["age"].drift
    assert "Evidently disagrees with the window on: age." in report.html


def test_report_header_names_the_window_and_escapes_what_came_from_data(
        stream_data: StreamData, reference: pd.DataFrame) -> None:
    outcome = windows(stream_data, {})[5]
    result = {**outcome.result, "model": "<img src=x onerror=alert(1)>", "partition": 0,
              "version": "<b>1</b>"}
    covered = RowsCovered(shown=400, seen=WINDOW_ROWS, window_rows=WINDOW_ROWS, partition=0,
                          first_offset=4000, last_offset=4999, window_first_offset=4000)
    html = build_drift_report(Baseline.load(stream_data.baseline), reference, outcome.rows,
                              result, covered=covered, title="window p0:4").html
    header = html[html.index('<section id="driftloop-header"'):html.index("</section>")]
    assert "<img" not in header and "<b>1" not in header
    assert "&lt;img src=x onerror=alert(1)&gt;" in header
    assert "window p0:4" in header
    assert "a uniform sample of 400 of the window&#x27;s 1000 rows (offsets 4000 to 4999 of " \
           "partition 0)" in header
    assert "<title>driftloop: &lt;img src=x onerror=alert(1)&gt; window p0:4</title>" in html


@pytest.mark.parametrize(("rows", "sentence"), [
    (RowsCovered(shown=1000, seen=1000, window_rows=1000), "all 1000 rows of the window"),
    (RowsCovered(shown=500, seen=1000, window_rows=1000, partition=2, first_offset=10,
                 last_offset=1009),
     "a uniform sample of 500 of the window's 1000 rows (offsets 10 to 1009 of partition 2)"),
    (RowsCovered(shown=300, seen=300, window_rows=1000, partition=0, first_offset=700,
                 last_offset=999, window_first_offset=0),
     "all 300 rows read since the service restarted (offsets 700 to 999 of partition 0): "
     "the window's first 700 of its 1000 rows, from offset 0, were read before the restart "
     "and are not kept"),
])
def test_covered_sentence_says_which_rows_the_report_shows(rows: RowsCovered,
                                                           sentence: str) -> None:
    assert covered_sentence(rows) == sentence
