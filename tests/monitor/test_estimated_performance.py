"""The label-free performance estimate (CBPE) in the service: the baseline's CBPE reference
(schema v2, and v1 documents read without one), ``estimated_performance`` in the batch and
stream paths, multiclass class scores, checkpoints, and the issue's acceptance through
``driftloop evaluate`` with the labels withheld."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from monitor.baseline import SCHEMA, SCHEMA_V1, Baseline, build_baseline, load_baseline
from monitor.cli import main
from monitor.config import ModelConfig, WindowConfig, load_config
from monitor.errors import InputError
from monitor.evaluate import WindowEstimator, evaluate_frame
from monitor.ingest import Prediction
from monitor.stream import ModelPipeline

V1_BASELINE = Path(__file__).parent / "data" / "baseline-v1.json"  # written by driftloop's v1
WINDOW_ROWS = 2000
WINDOWS = 40  # the last half with scores moved towards 0.5


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def binary_rows(rng: np.random.Generator, n: int, spread: float, first_id: int = 0
                ) -> pd.DataFrame:
    """P(y=1 | x) = sigmoid(3x) and an under-confident score sigmoid(2x); a smaller
    ``spread`` puts more rows near the decision boundary, where the model errs."""
    x = rng.normal(0.0, spread, n)
    score = _sigmoid(2.0 * x)
    return pd.DataFrame({
        "id": np.arange(first_id, first_id + n), "x": x, "z": rng.normal(size=n),
        "color": rng.choice(["red", "green", "blue"], n), "score": score,
        "prediction": (score >= 0.5).astype(np.int64),
        "y": (rng.random(n) < _sigmoid(3.0 * x)).astype(np.int64)})


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(14)
    reference = binary_rows(rng, 20_000, 1.5)
    current = pd.concat([binary_rows(rng, WINDOW_ROWS, 1.5 if w < WINDOWS // 2 else 0.6,
                                     first_id=10**6 + w * WINDOW_ROWS) for w in range(WINDOWS)],
                        ignore_index=True)
    return reference, current


@pytest.fixture(scope="module")
def baseline(frames: tuple[pd.DataFrame, pd.DataFrame]) -> Baseline:
    return build_baseline(frames[0], "m", target="y", prediction="prediction", score="score",
                          id_column="id")


def config(**sections: Any) -> ModelConfig:
    return load_config(data={"models": {"m": {"baseline": "b.json", **sections}}}).models["m"]


# -- the baseline -------------------------------------------------------------------------
def test_binary_baseline_holds_a_cbpe_reference_that_survives_its_json(
        baseline: Baseline, tmp_path: Path) -> None:
    assert baseline.schema == SCHEMA == "driftloop/baseline/v2"
    assert baseline.cbpe is not None and baseline.performance is not None
    assert baseline.cbpe.task == "binary"
    assert set(baseline.cbpe.metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    # in-sample isotonic calibration: the reference's estimate is its realized accuracy
    assert baseline.cbpe.baseline["accuracy"] == pytest.approx(
        baseline.performance.metrics["accuracy"], abs=0.005)
    loaded = Baseline.load(baseline.save(tmp_path / "b.json"))
    assert loaded == baseline and loaded.cbpe is not None
    assert loaded.cbpe.to_dict() == baseline.cbpe.to_dict()


def test_baselines_without_labels_scores_or_classes_have_no_cbpe_reference(
        frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference = frames[0]
    no_score = build_baseline(reference, "m", target="y", prediction="prediction")
    no_target = build_baseline(reference, "m", prediction="prediction", score="score")
    regression = build_baseline(reference.assign(y=reference["x"] * 2.0), "m", target="y",
                                prediction="x", score="score")
    assert (no_score.cbpe, no_target.cbpe, regression.cbpe) == (None, None, None)
    assert WindowEstimator.of(no_score) is None
    results = list(evaluate_frame(no_score, frames[1].iloc[:500], config(), window_rows=500))
    assert results[0].result["estimated_performance"] is None


def test_a_v1_document_loads_without_an_estimate_and_is_written_back_as_v2(
        tmp_path: Path) -> None:
    document = json.loads(V1_BASELINE.read_text())
    assert document["schema"] == SCHEMA_V1 and "cbpe" not in document
    old = load_baseline(V1_BASELINE)
    assert old.cbpe is None and old.schema == SCHEMA and old.columns.class_scores == {}
    assert old.calibration is not None and old.performance is not None  # nothing else lost
    rows = binary_rows(np.random.default_rng(3), 600, 1.5)[["id", "x", "color", "score",
                                                            "prediction"]]
    (outcome,) = evaluate_frame(old, rows, config(), window_rows=600)
    assert outcome.result["estimated_performance"] is None
    assert outcome.result["features"]["x"]["threshold"] > 0
    again = Baseline.load(old.save(tmp_path / "rewritten.json"))
    assert json.loads((tmp_path / "rewritten.json").read_text())["schema"] == SCHEMA
    assert again == old


# -- windows ------------------------------------------------------------------------------
def test_estimate_tracks_realized_accuracy_in_the_batch_path_and_follows_the_config(
        baseline: Baseline, frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    current = frames[1].iloc[:2 * WINDOW_ROWS]
    results = [o.result for o in evaluate_frame(baseline, current.drop(columns="y"), config(),
                                                window_rows=WINDOW_ROWS)]
    for result, (_, part) in zip(results, current.groupby(np.arange(len(current))
                                                          // WINDOW_ROWS), strict=True):
        estimate = result["estimated_performance"]
        realized = float((part["prediction"] == part["y"]).mean())
        assert estimate["metric"] == "accuracy" and estimate["n"] == WINDOW_ROWS
        assert estimate["status"] == "ok" and estimate["degraded"] is False
        assert estimate["lower"] <= realized <= estimate["upper"]
        assert result["performance"] is None  # labels withheld


def _estimate(baseline: Baseline, rows: pd.DataFrame, model: ModelConfig) -> dict[str, Any]:
    (outcome,) = evaluate_frame(baseline, rows, model, window_rows=len(rows))
    return dict(outcome.result["estimated_performance"])


def test_estimated_metric_max_drop_and_min_rows_follow_the_config(
        baseline: Baseline, frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    rows = frames[1].iloc[:WINDOW_ROWS]
    auc = _estimate(baseline, rows, config(performance={"metric": "roc_auc", "max_drop": 0.05}))
    assert auc["metric"] == "roc_auc"
    assert auc["threshold"] == pytest.approx(auc["baseline"] - 0.05)
    # log_loss cannot be estimated: accuracy is
    assert _estimate(baseline, rows, config(performance={"metric": "log_loss"}))["metric"] \
        == "accuracy"
    few = _estimate(baseline, rows.iloc[:150], config(drift={"min_rows": 200}))
    # too few rows: the estimate is shown, without a band, and flags nothing
    assert (few["status"], few["lower"], few["upper"], few["degraded"], few["n"]) == (
        "inconclusive", None, None, False, 150)
    assert 0.5 < few["value"] < 1.0


def _events(frame: pd.DataFrame, *, multiclass: bool = False) -> list[Prediction]:
    out = []
    for offset, row in enumerate(frame.itertuples(index=False)):
        features = {"x": float(row.x), "z": float(row.z), "color": str(row.color)}
        if multiclass:
            scores = {c: float(getattr(row, f"p_{c}")) for c in "abc"}
            out.append(Prediction("m", "1", str(row.id), offset, features, str(row.prediction),
                                  None, scores, None, "predictions", 0, offset))
        else:
            out.append(Prediction("m", "1", str(row.id), offset, features, int(row.prediction),
                                  float(row.score), None, None, "predictions", 0, offset))
    return out


def _stream(baseline: Baseline, events: list[Prediction], rows: int,
            buffer_rows: int = 128) -> list[dict[str, Any]]:
    window = WindowConfig.model_validate({"rows": rows, "buffer_rows": buffer_rows})
    pipeline = ModelPipeline("m", ModelConfig(baseline="unused", window=window), baseline)
    return [pipeline.evaluate(closed).result
            for closed in pipeline.add_many("1", 0, events)]


def test_an_old_checkpoint_without_counts_restores_with_a_null_estimate(
        baseline: Baseline, frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    events = _events(frames[1].iloc[:1000])
    window = WindowConfig.model_validate({"rows": 500, "buffer_rows": 128})
    first = ModelPipeline("m", ModelConfig(baseline="unused", window=window), baseline)
    first.add_many("1", 0, events[:300])
    # a JSON checkpoint (format 1), as written before the estimate existed
    state = orjson.loads(orjson.dumps(first.streams[("1", 0)].checkpoint(packed=False)))
    assert state["open"][0]["confidence"]["n"] == 300
    del state["open"][0]["confidence"]  # as written before the estimate existed
    second = ModelPipeline("m", ModelConfig(baseline="unused", window=window), baseline)
    second.stream("1", 0).restore(state)
    restored, fresh = [second.evaluate(c).result for c in second.add_many("1", 0, events[300:])]
    assert restored["estimated_performance"] is None  # a part of its rows was never counted
    assert fresh["estimated_performance"]["n"] == 500  # new windows count again


# -- multiclass ---------------------------------------------------------------------------
def multiclass_rows(rng: np.random.Generator, n: int, sharpness: float) -> pd.DataFrame:
    """Three classes; the model's probabilities are a softmax of noisy logits, sharper
    logits giving a surer model. Labels are drawn from the same probabilities."""
    logits = rng.normal(0.0, sharpness, (n, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(3, p=p) for p in probs])
    names = np.array(list("abc"))
    return pd.DataFrame({"id": np.arange(n), "x": logits[:, 0], "z": rng.normal(size=n),
                         "color": rng.choice(["red", "blue"], n),
                         "prediction": names[probs.argmax(axis=1)], "y": names[truth],
                         "p_a": probs[:, 0], "p_b": probs[:, 1], "p_c": probs[:, 2]})


def test_multiclass_estimate_from_class_score_columns_and_event_scores_agree(
        tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    reference = multiclass_rows(rng, 6000, 2.0)
    baseline = build_baseline(reference, "m", target="y", prediction="prediction",
                              id_column="id", class_scores={c: f"p_{c}" for c in "cab"})
    assert baseline.cbpe is not None and baseline.cbpe.task == "multiclass"
    assert list(baseline.columns.class_scores) == ["a", "b", "c"]  # the reference's order
    assert set(baseline.features) == {"x", "z", "color"}
    assert Baseline.load(baseline.save(tmp_path / "b.json")) == baseline
    current = pd.concat([multiclass_rows(rng, 1000, 2.0), multiclass_rows(rng, 1000, 0.5)],
                        ignore_index=True)
    batch = [o.result for o in evaluate_frame(baseline, current.drop(columns="y"), config(),
                                              window_rows=1000)]
    sure, unsure = (r["estimated_performance"] for r in batch)
    for estimate, part in ((sure, current.iloc[:1000]), (unsure, current.iloc[1000:])):
        realized = float((part["prediction"] == part["y"]).mean())
        assert estimate["metric"] == "accuracy" and estimate["n"] == 1000
        assert estimate["lower"] <= realized <= estimate["upper"]
    assert unsure["value"] < sure["value"] - 0.2 and unsure["degraded"] is True
    assert not any(r["quality"]["extra_columns"] for r in batch)  # p_a.. are roles
    stream = _stream(baseline, _events(current, multiclass=True), 1000)
    for got, want in zip(stream, batch, strict=True):
        for key, value in want["estimated_performance"].items():
            expected = pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
            assert got["estimated_performance"][key] == expected, key


def test_class_scores_that_do_not_cover_the_classes_are_refused() -> None:
    reference = multiclass_rows(np.random.default_rng(2), 500, 2.0)
    with pytest.raises(InputError, match=r"got classes \['a', 'b'\], expected \['a', 'b', 'c'\]"):
        build_baseline(reference, "m", target="y", prediction="prediction",
                       class_scores={"a": "p_a", "b": "p_b"})
    with pytest.raises(InputError, match="class 'd' score column 'p_d' not found"):
        build_baseline(reference, "m", target="y", prediction="prediction",
                       class_scores={"d": "p_d"})


# -- the acceptance, through the command line ---------------------------------------------
def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_without_labels_estimates_accuracy_falls_flags_only_shifted_windows(
        capsys: pytest.CaptureFixture[str], frames: tuple[pd.DataFrame, pd.DataFrame],
        tmp_path: Path) -> None:
    """Scores move towards the uncertain region in the second half while the labels are
    withheld; the realized accuracy is computed afterwards from them."""
    reference, current = frames
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.drop(columns="y").to_csv(tmp_path / "current.csv", index=False)
    baseline = tmp_path / "baseline.json"
    code, _, err = _run(capsys, "baseline", "build", "--data", tmp_path / "reference.csv",
                        "--model", "m", "--target", "y", "--prediction", "prediction",
                        "--score", "score", "--id", "id", "--out", baseline)
    assert code == 0, err
    assert "performance estimate (accuracy, precision, recall, f1, roc_auc)" in err
    code, out, err = _run(capsys, "evaluate", "--baseline", baseline, "--data",
                          tmp_path / "current.csv", "--window-rows", WINDOW_ROWS)
    assert code == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == WINDOWS
    estimates = [r["estimated_performance"] for r in results]
    realized = (current["prediction"] == current["y"]).groupby(
        np.arange(len(current)) // WINDOW_ROWS).mean().to_numpy()
    values = np.array([e["value"] for e in estimates])
    half = WINDOWS // 2
    assert values[half:].mean() < values[:half].mean() - 0.08
    assert realized[half:].mean() < realized[:half].mean() - 0.08
    assert [e["degraded"] for e in estimates] == [False] * half + [True] * half
    covered = sum(e["lower"] <= r <= e["upper"] for e, r in zip(estimates, realized,
                                                                  strict=True))
    assert covered / WINDOWS >= 0.9
    assert all(r["performance"] is None for r in results)

    code, table, err = _run(capsys, "evaluate", "--baseline", baseline, "--data",
                            tmp_path / "current.csv", "--window-rows", 10 * WINDOW_ROWS,
                            "--format", "table")
    assert code == 0, err
    assert "estimated (now/ref)" in table and "degraded" in table
    first = results[0]["estimated_performance"]
    assert "accuracy" in table and "band" in table and f"{first['baseline']:.3f}" in table


def test_baseline_build_takes_class_score_columns_by_prefix(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    multiclass_rows(np.random.default_rng(4), 3000, 2.0).to_csv(tmp_path / "ref.csv",
                                                                  index=False)
    common = ("baseline", "build", "--data", tmp_path / "ref.csv", "--model", "m", "--target",
              "y", "--prediction", "prediction", "--id", "id", "--out", tmp_path / "b.json")
    code, _, err = _run(capsys, *common, "--scores-prefix", "p_")
    assert code == 0, err
    baseline = Baseline.load(tmp_path / "b.json")
    assert baseline.columns.class_scores == {"a": "p_a", "b": "p_b", "c": "p_c"}
    assert baseline.cbpe is not None and baseline.cbpe.metrics == ("accuracy",)
    assert "performance estimate (accuracy)" in err
    code, _, err = _run(capsys, *common, "--scores-prefix", "proba_")
    assert code == 2 and err.count("\n") == 1
    assert "--scores-prefix 'proba_': no column starts with it" in err


def test_evaluate_with_labels_shows_the_realized_value_beside_the_estimate(
        capsys: pytest.CaptureFixture[str], frames: tuple[pd.DataFrame, pd.DataFrame],
        baseline: Baseline, tmp_path: Path) -> None:
    current = frames[1].iloc[:2 * WINDOW_ROWS]
    current.drop(columns="y").to_csv(tmp_path / "current.csv", index=False)
    current[["id", "y"]].to_csv(tmp_path / "labels.csv", index=False)
    path = baseline.save(tmp_path / "baseline.json")
    code, out, err = _run(capsys, "evaluate", "--baseline", path, "--data",
                          tmp_path / "current.csv", "--labels", tmp_path / "labels.csv",
                          "--window-rows", WINDOW_ROWS)
    assert code == 0, err
    for result in (json.loads(line) for line in out.splitlines()):
        realized, estimate = result["performance"], result["estimated_performance"]
        assert realized["metric"] == estimate["metric"] == "accuracy"
        assert realized["labeled_rows"] == estimate["n"] == WINDOW_ROWS
        assert estimate["lower"] <= realized["value"] <= estimate["upper"]


@pytest.mark.integration
def test_a_v1_baseline_logged_to_mlflow_still_loads(mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    from monitor.baseline import ARTIFACT_PATH

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.create_run(client.create_experiment("baseline-v1"))
    client.log_dict(run.info.run_id, json.loads(V1_BASELINE.read_text()), ARTIFACT_PATH)
    client.set_terminated(run.info.run_id)
    loaded = load_baseline(f"runs:/{run.info.run_id}", tracking_uri=mlflow_server)
    assert loaded == load_baseline(V1_BASELINE)
    assert loaded.cbpe is None and loaded.model == "legacy"
