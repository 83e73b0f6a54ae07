"""evaluate_window: the window result of design section 6.1 and the settings it honours."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitor.baseline import Baseline, build_baseline
from monitor.cli.examples import generate
from monitor.config import ModelConfig, load_config
from monitor.evaluate import LabeledRows, WindowEstimator, WindowMeta, evaluate_window
from monitor.evaluate.batch import evaluate_frame, window_columns

TOP_KEYS = {"model", "version", "window", "first_offset", "start", "end", "rows",
            "dataset_drift", "drift_share", "drift_share_threshold", "features",
            "prediction_drift", "score_drift", "quality", "performance",
            "estimated_performance"}
META = WindowMeta(model="carloan", version="3", window=7, first_offset=None,
                  start="2019-05-01T00:00:00Z", end="2019-05-31T08:00:00Z")


@pytest.fixture(scope="module")
def data() -> Any:
    return generate(reference_rows=6000, window_rows=2000)


@pytest.fixture(scope="module")
def baseline(data: Any) -> Baseline:
    return build_baseline(data.reference, "carloan", target="repaid", prediction="prediction",
                          score="score", id_column="request_id", timestamp="timestamp")


def config(**sections: Any) -> ModelConfig:
    return load_config(data={"models": {"carloan": {"baseline": "b.json", **sections}}}
                       ).models["carloan"]


def summarize(baseline: Baseline, rows: pd.DataFrame) -> Any:
    summary = baseline.empty_summary()
    arrays, _ = window_columns(baseline, rows, "test")
    summary.add(arrays, len(rows))
    return summary


def confidence(baseline: Baseline, rows: pd.DataFrame) -> Any:
    estimator = WindowEstimator.of(baseline)
    assert estimator is not None
    counts = estimator.empty()
    arrays, _ = window_columns(baseline, rows, "test")
    estimator.fold(counts, arrays)
    return counts


def window(data: Any, number: int) -> pd.DataFrame:
    size = data.window_rows
    return data.current.iloc[(number - 1) * size:number * size]


def test_result_has_the_documented_shape(data: Any, baseline: Baseline) -> None:
    result = evaluate_window(baseline, summarize(baseline, window(data, 3)), config(), META)
    assert set(result) == TOP_KEYS
    assert (result["model"], result["version"], result["window"]) == ("carloan", "3", 7)
    assert result["start"] == META.start and result["rows"] == 2000
    assert set(result["features"]) == set(baseline.feature_order)
    for score in [*result["features"].values(), result["prediction_drift"],
                  result["score_drift"]]:
        assert {"method", "score", "threshold", "drift", "status", "direction", "n"} <= set(score)
        assert isinstance(score["threshold"], float) and score["threshold"] > 0
        assert score["direction"] == "above" and score["n"] > 0  # distances by default
        assert score["status"] == ("drift" if score["drift"] else "ok")
    assert {"missing", "unseen_categories", "violations"} <= set(result["quality"])
    assert result["performance"] is None  # no labels joined
    assert result["estimated_performance"] is None  # no confidence counts given
    drifted = {n for n, f in result["features"].items() if f["drift"]}
    assert drifted == {"car_value", "credit_score", "salary_range"}
    assert result["drift_share"] == pytest.approx(3 / 8)
    assert result["dataset_drift"] is False
    assert result["prediction_drift"]["method"] == "jensenshannon"


def test_fixed_threshold_and_share_from_config_are_used(data: Any, baseline: Baseline) -> None:
    summary = summarize(baseline, window(data, 3))
    result = evaluate_window(baseline, summary, config(drift={"threshold": 0.5, "share": 0.2}),
                             META)
    assert {f["threshold"] for f in result["features"].values()} == {0.5}
    assert {n for n, f in result["features"].items() if f["drift"]} == {"car_value",
                                                                          "credit_score"}
    assert result["dataset_drift"] is True  # 2 of 8 >= 0.2


def test_min_effect_from_config_raises_the_auto_threshold_per_method_and_feature(
        data: Any, baseline: Baseline) -> None:
    summary = summarize(baseline, window(data, 3))
    default = evaluate_window(baseline, summary, config(), META)["features"]
    drift = {"min_effect": {"wasserstein": 2.0},
             "features": {"credit_score": {"min_effect": 0.5}}}
    result = evaluate_window(baseline, summary, config(drift=drift), META)["features"]
    # car_value drifts with the default floor, not under a 2-sd floor
    assert default["car_value"]["drift"] is True and result["car_value"]["drift"] is False
    assert result["car_value"]["threshold"] == 2.0
    # the feature's own bound wins over its method's, lower or higher
    assert result["credit_score"]["threshold"] == 0.5
    assert default["credit_score"]["threshold"] < 0.5
    # a method the mapping leaves out keeps its default floor
    assert result["salary_range"]["threshold"] == default["salary_range"]["threshold"]


def test_pvalue_method_is_bonferroni_corrected_and_overrides_apply(
        data: Any, baseline: Baseline) -> None:
    settings = {"numeric_method": "ks",
                "features": {"age": {"method": "psi", "threshold": 0.25}}}
    result = evaluate_window(baseline, summarize(baseline, window(data, 3)),
                             config(drift=settings), META)
    car = result["features"]["car_value"]
    assert car["method"] == "ks"
    # car_value and credit_score are the p-value tests (age is overridden to psi)
    assert car["threshold"] == pytest.approx(0.05 / 2)
    assert car["drift"] is True and car["score"] < car["threshold"]
    assert car["direction"] == "below"  # a p-value: drift below the threshold
    assert result["features"]["age"]["method"] == "psi"
    assert result["features"]["age"]["threshold"] == 0.25


def test_prediction_method_not_applicable_to_classes_falls_back_to_jensenshannon(
        data: Any, baseline: Baseline) -> None:
    result = evaluate_window(baseline, summarize(baseline, window(data, 1)),
                             config(drift={"prediction_method": "wasserstein"}), META)
    assert result["prediction_drift"]["method"] == "jensenshannon"
    assert result["score_drift"]["method"] == "wasserstein"


def test_quality_reports_missing_increase_and_unseen_category(data: Any,
                                                              baseline: Baseline) -> None:
    missing = evaluate_window(baseline, summarize(baseline, window(data, 2)), config(), META)
    assert set(missing["quality"]["missing"]) == {"salary_range"}
    unseen = evaluate_window(baseline, summarize(baseline, window(data, 4)), config(), META)
    assert unseen["quality"]["unseen_categories"] == {"size_of_downpayment": ["50%"]}
    assert unseen["features"]["size_of_downpayment"]["drift"] is False


def labels_for(rows: pd.DataFrame, truth: pd.Series) -> LabeledRows:
    return LabeledRows(y_true=truth.astype(str).to_numpy(dtype=object),
                       y_pred=rows["prediction"].astype(str).to_numpy(dtype=object),
                       score=rows["score"].to_numpy(dtype=np.float64))


def test_performance_with_labels_degrades_on_concept_shift(data: Any,
                                                           baseline: Baseline) -> None:
    truth = data.labels.set_index("request_id")["repaid"]
    outcomes, labeled = {}, {}
    for number in (1, 6):
        rows = window(data, number)
        rows = rows[rows["request_id"].isin(truth.index)]
        labels = labels_for(rows, truth.loc[rows["request_id"]].reset_index(drop=True))
        labeled[number] = len(rows)
        outcomes[number] = evaluate_window(baseline, summarize(baseline, rows), config(), META,
                                           labels)["performance"]
    steady, shifted = outcomes[1], outcomes[6]
    assert baseline.performance is not None
    assert steady["metric"] == "accuracy"
    assert steady["baseline"] == pytest.approx(baseline.performance.metrics["accuracy"])
    assert steady["degraded"] is False and shifted["degraded"] is True
    assert shifted["value"] < steady["value"] - 0.2
    assert steady["labeled_rows"] == labeled[1] and 0 < labeled[1] < data.window_rows
    assert 0 < steady["max_drop"] < 0.1


def test_performance_metric_and_fixed_max_drop_from_config(data: Any,
                                                            baseline: Baseline) -> None:
    rows = window(data, 1)
    labels = labels_for(rows, rows["prediction"])  # a perfect window
    perf = evaluate_window(baseline, summarize(baseline, rows),
                           config(performance={"metric": "roc_auc", "max_drop": 0.5}), META,
                           labels)["performance"]
    assert perf["metric"] == "roc_auc" and perf["max_drop"] == 0.5
    assert perf["degraded"] is False and perf["labeled_rows"] == len(rows)


def test_regression_metric_missing_from_config_uses_the_task_metric() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=3000)
    frame = pd.DataFrame({"x": x, "y": 2 * x + rng.normal(scale=0.1, size=3000), "p": 2 * x})
    baseline = build_baseline(frame, "r", target="y", prediction="p")
    rows = frame.iloc[:1000]
    labels = LabeledRows(y_true=(rows["y"] + 5.0).to_numpy(), y_pred=rows["p"].to_numpy())
    perf = evaluate_window(baseline, summarize(baseline, rows), config(), META,
                           labels)["performance"]
    assert perf["metric"] == "mae"  # accuracy (the default) does not apply to regression
    assert perf["degraded"] is True


def test_batch_and_direct_evaluation_agree(data: Any, baseline: Baseline) -> None:
    batch = [o.result for o in evaluate_frame(baseline, data.current, config(),
                                              window_rows=data.window_rows)]
    direct = evaluate_window(baseline, summarize(baseline, window(data, 5)), config(),
                             WindowMeta("carloan", "1", 5, first_offset=4 * data.window_rows,
                                        start=batch[4]["start"], end=batch[4]["end"]),
                             confidence=confidence(baseline, window(data, 5)))
    assert batch[4] == direct
    assert direct["estimated_performance"]["n"] == data.window_rows
    assert len(batch) == 6 and batch[0]["start"] == "2019-06-01T00:00:00Z"


def test_every_key_of_a_result_is_documented_in_the_window_result_model(
        data: Any, baseline: Baseline) -> None:
    """docs/reference/window-result.md and the OpenAPI document come from WindowResult."""
    from monitor.api.views import (
        EstimatedPerformanceView,
        FeatureDrift,
        PerformanceView,
        QualityView,
        WindowResult,
    )

    rows = window(data, 3)
    result = evaluate_window(baseline, summarize(baseline, rows), config(), META,
                             confidence=confidence(baseline, rows))
    result = {**result, "partition": 0, "baseline": "runs:/abc",
              "performance": {"metric": "accuracy", "value": 0.9, "baseline": 0.94,
                              "max_drop": 0.02, "degraded": True, "labeled_rows": 500,
                              "status": "degraded"}}
    WindowResult.model_validate(result)
    assert set(result) <= set(WindowResult.model_fields)
    for part in [*result["features"].values(), result["prediction_drift"]]:
        assert set(part) <= set(FeatureDrift.model_fields)
    assert set(result["quality"]) <= set(QualityView.model_fields)
    assert set(result["performance"]) <= set(PerformanceView.model_fields)
    assert set(result["estimated_performance"]) <= set(EstimatedPerformanceView.model_fields)
    assert set(EstimatedPerformanceView.model_fields) == {
        "metric", "value", "lower", "upper", "baseline", "threshold", "degraded", "status", "n"}
