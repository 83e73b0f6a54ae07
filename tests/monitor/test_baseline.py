"""Baselines: type and task inference, the JSON document, MLflow logging and loading."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from monitor.baseline import (
    SCHEMA,
    Baseline,
    build_baseline,
    load_baseline,
    load_reference_sample,
    log_baseline,
    reference_sample,
)
from monitor.cli.examples import generate
from monitor.errors import BaselineError, InputError
from monitor.tables import infer_kinds

ROLES = {"target": "repaid", "prediction": "prediction", "score": "score",
         "id_column": "request_id", "timestamp": "timestamp"}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate(reference_rows=4000, window_rows=500).reference


@pytest.fixture(scope="module")
def baseline(reference: pd.DataFrame) -> Baseline:
    return build_baseline(reference, "carloan", **ROLES)  # type: ignore[arg-type]


def test_infer_kinds_numbers_strings_booleans_and_small_integers() -> None:
    frame = pd.DataFrame({
        "amount": np.linspace(0.5, 100.0, 50),
        "city": ["a", "b"] * 25,
        "flag": [True, False] * 25,
        "children": np.arange(50) % 4,
        "age": np.arange(50) + 18,
        "rating": (np.arange(50) % 5).astype(float),
    })
    kinds = infer_kinds(frame)
    assert kinds == {"amount": "numeric", "city": "categorical", "flag": "categorical",
                     "children": "categorical", "age": "numeric", "rating": "categorical"}


def test_infer_kinds_honours_categorical_and_exclude() -> None:
    frame = pd.DataFrame({"age": np.arange(50), "zip": np.arange(50) + 10000, "id": np.arange(50)})
    assert infer_kinds(frame, exclude=["id"], categorical=["zip"]) == {
        "age": "numeric", "zip": "categorical"}


def test_infer_kinds_unknown_override_column_names_it() -> None:
    with pytest.raises(InputError, match="'nope'"):
        infer_kinds(pd.DataFrame({"a": [1.0]}), categorical=["nope"], source="x.csv")


def test_build_profiles_roles_and_binary_task(baseline: Baseline) -> None:
    assert baseline.schema == SCHEMA
    assert baseline.task == "binary"
    assert baseline.feature_order == ("car_value", "salary_range", "repaid_loan_on_prev_car",
                                      "size_of_downpayment", "age", "credit_score",
                                      "loan_duration_months", "num_prev_loans")
    kinds = {name: p.kind for name, p in baseline.features.items()}
    assert kinds["car_value"] == "numeric" and kinds["age"] == "numeric"
    assert kinds["repaid_loan_on_prev_car"] == "categorical"
    assert kinds["loan_duration_months"] == "categorical"
    flags = baseline.features["repaid_loan_on_prev_car"]
    assert sorted(flags.categories) == ["false", "true"]  # type: ignore[union-attr]
    assert baseline.prediction is not None and baseline.prediction.kind == "categorical"
    assert baseline.score is not None and baseline.score.kind == "numeric"
    salary = baseline.features["salary_range"]
    assert 0.1 < salary.missing / salary.n < 0.2


def test_build_reference_performance_has_every_binary_metric(
        baseline: Baseline, reference: pd.DataFrame) -> None:
    perf = baseline.performance
    assert perf is not None
    assert set(perf.metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    expected = float((reference["prediction"] == reference["repaid"]).mean())
    assert perf.metrics["accuracy"] == pytest.approx(expected)
    assert perf.positive_class == "1"
    # auto max_drop shrinks as windows grow
    assert perf.auto_max_drop("accuracy", 200) > perf.auto_max_drop("accuracy", 20_000) > 0


def test_build_calibrates_every_distance_method_per_feature(baseline: Baseline) -> None:
    calibration = baseline.calibration
    assert calibration is not None
    assert set(calibration.curves["car_value"]) == {"wasserstein", "psi", "jensenshannon"}
    assert set(calibration.curves["salary_range"]) == {"jensenshannon", "linf", "psi"}
    small = calibration.bound("car_value", "wasserstein", 100)
    large = calibration.bound("car_value", "wasserstein", 10_000)
    assert small is not None and large is not None and small > large


def test_task_inference_multiclass_and_regression() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    classes = np.array(["cat", "dog", "eel"], dtype=object)[rng.integers(0, 3, 600)]
    multi = build_baseline(pd.DataFrame({"x": x, "y": classes, "p": classes}), "m",
                           target="y", prediction="p")
    assert multi.task == "multiclass"
    assert multi.performance is not None
    assert set(multi.performance.metrics) == {"accuracy", "f1"}
    assert multi.performance.metrics["accuracy"] == 1.0
    y = 3.0 * x + rng.normal(size=600)
    regression = build_baseline(pd.DataFrame({"x": x, "y": y, "p": 3.0 * x}), "r",
                                target="y", prediction="p")
    assert regression.task == "regression"
    assert regression.prediction is not None and regression.prediction.kind == "numeric"
    assert regression.performance is not None
    assert set(regression.performance.metrics) == {"mae", "rmse", "mape"}
    assert regression.performance.metrics["mae"] == pytest.approx(0.8, abs=0.1)


def test_baseline_json_round_trip_is_identical(baseline: Baseline, tmp_path: Path) -> None:
    path = baseline.save(tmp_path / "baseline.json")
    loaded = Baseline.load(path)
    assert loaded == baseline
    assert loaded.to_dict() == baseline.to_dict()
    assert Baseline.from_dict(json.loads(path.read_text())) == baseline
    assert load_baseline(path) == baseline
    # everything survives: the calibrated bounds too
    assert loaded.calibration is not None and baseline.calibration is not None
    assert loaded.calibration.bound("age", "wasserstein", 5000) == \
        baseline.calibration.bound("age", "wasserstein", 5000)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ('{"schema": "other/v9"}', "schema 'other/v9'"),
    ("[1, 2]", "expected a baseline object"),
    (json.dumps({"schema": SCHEMA, "model": "m"}), "key 'columns' is missing"),
])
def test_malformed_baseline_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(BaselineError, match=message) as info:
        Baseline.load(path)
    assert str(path) in str(info.value)


def test_missing_baseline_file_is_a_baseline_error(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="file not found"):
        load_baseline(tmp_path / "absent.json")


def test_build_unknown_role_column_names_it(reference: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="target column 'label' not found"):
        build_baseline(reference, "m", target="label", source="train.csv")


def test_reference_sample_is_bounded_and_seeded(baseline: Baseline,
                                                reference: pd.DataFrame) -> None:
    first = reference_sample(reference, baseline, 500, seed=3)
    again = reference_sample(reference, baseline, 500, seed=3)
    other = reference_sample(reference, baseline, 500, seed=4)
    assert len(first) == 500
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    assert list(first.columns) == [*baseline.feature_order, "prediction", "score", "repaid"]
    assert len(reference_sample(reference, baseline, 10**6)) == len(reference)


def test_file_baseline_without_sample_has_no_reference_sample(baseline: Baseline,
                                                              tmp_path: Path) -> None:
    path = baseline.save(tmp_path / "b.json")
    assert load_reference_sample(path) is None


@pytest.mark.integration
def test_log_and_load_through_mlflow_run_and_registry_alias(
        mlflow_server: str, baseline: Baseline, reference: pd.DataFrame) -> None:
    mlflow.set_tracking_uri(mlflow_server)
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.create_experiment("baseline-test")
    run = client.create_run(experiment)
    run_id = run.info.run_id
    sample = reference_sample(reference, baseline, 200)
    uri = log_baseline(baseline, run_id, sample=sample, tracking_uri=mlflow_server)
    assert uri == f"runs:/{run_id}/driftloop/baseline.json"
    client.set_terminated(run_id)

    assert load_baseline(uri, tracking_uri=mlflow_server) == baseline
    assert load_baseline(f"runs:/{run_id}", tracking_uri=mlflow_server) == baseline

    client.create_registered_model("carloan")
    version = client.create_model_version(
        "carloan", source=f"{run.info.artifact_uri}/driftloop", run_id=run_id)
    client.set_registered_model_alias("carloan", "champion", version.version)
    assert load_baseline("models:/carloan@champion", tracking_uri=mlflow_server) == baseline
    assert load_baseline(f"models:/carloan/{version.version}",
                         tracking_uri=mlflow_server) == baseline
    assert load_baseline("mlflow:champion", model="carloan",
                         tracking_uri=mlflow_server) == baseline
    loaded_sample = load_reference_sample("mlflow:champion", model="carloan",
                                          tracking_uri=mlflow_server)
    assert loaded_sample is not None
    pd.testing.assert_frame_equal(loaded_sample, sample)

    with pytest.raises(BaselineError, match="models:/carloan@nobody"):
        load_baseline("models:/carloan@nobody", tracking_uri=mlflow_server)
    with pytest.raises(BaselineError, match="needs the model name"):
        load_baseline("mlflow:champion", tracking_uri=mlflow_server)


def test_categorical_values_are_canonical_whatever_the_file_type() -> None:
    from monitor.tables import categorical_array

    assert categorical_array(pd.Series([1, 2, 2])).tolist() == ["1", "2", "2"]
    assert categorical_array(pd.Series([1.0, None, 2.0])).tolist() == ["1", None, "2"]
    assert categorical_array(pd.Series([True, False])).tolist() == ["true", "false"]
    assert categorical_array(pd.Series([True, None], dtype=object)).tolist() == ["true", None]
    assert categorical_array(pd.Series(["a", np.nan])).tolist() == ["a", None]
    assert categorical_array(pd.Series(["True", "0"]), booleans=True).tolist() == [
        "true", "false"]
    assert all(type(v) is str for v in categorical_array(pd.Series([True, False])))


@pytest.mark.parametrize(("labels", "task"), [
    ([True, False] * 50, "binary"),
    (["yes", "no"] * 50, "binary"),
    ([0, 1] * 50, "binary"),
    ([0.0, 1.0, None] * 30, "binary"),  # a float column of 0/1 with gaps (CSV-read ints)
    (["cat", "dog", "eel"] * 30, "multiclass"),
    ([1, 2, 3, 4, 5] * 20, "multiclass"),  # few integer values: classes
    (list(range(100)), "regression"),  # many integer values: a quantity
    (list(np.linspace(0.0, 1.0, 100)), "regression"),
])
def test_task_is_inferred_from_the_target_values(labels: list[object], task: str) -> None:
    from monitor.baseline.performance import infer_task

    frame = pd.DataFrame({"y": labels})
    assert infer_task(frame, "y", None, "t.csv") == task
    # without a target, the prediction column decides
    assert infer_task(frame.rename(columns={"y": "p"}), None, "p", "t.csv") == task


def test_baseline_build_records_every_role_and_keeps_roles_out_of_features(
        reference: pd.DataFrame, baseline: Baseline) -> None:
    roles = baseline.columns
    assert (roles.target, roles.prediction, roles.score, roles.id, roles.timestamp) == (
        "repaid", "prediction", "score", "request_id", "timestamp")
    assert not {"repaid", "prediction", "score", "request_id", "timestamp"} & set(
        baseline.features)
    assert baseline.n_rows == len(reference)
