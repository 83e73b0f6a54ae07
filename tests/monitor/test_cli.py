"""The ``driftloop`` command line, in process (``monitor.cli.main``) and as a console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitor.baseline import Baseline
from monitor.cli import main
from monitor.cli.examples import ExampleFiles


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def windows(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("driftloop: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_baseline_build_writes_baseline_and_sample(capsys: pytest.CaptureFixture[str],
                                                   example_files: ExampleFiles,
                                                   tmp_path: Path) -> None:
    out_path = tmp_path / "model" / "baseline.json"
    code, _, err = run(capsys, "baseline", "build", "--data", example_files.reference,
                       "--model", "carloan", "--target", "repaid", "--prediction", "prediction",
                       "--score", "score", "--id", "request_id", "--timestamp", "timestamp",
                       "--categorical", "num_prev_loans,age", "--exclude", "credit_score",
                       "--out", out_path, "--sample-rows", "100")
    assert code == 0, err
    baseline = Baseline.load(out_path)
    assert baseline.task == "binary" and baseline.model == "carloan"
    assert "credit_score" not in baseline.features
    assert baseline.features["age"].kind == "categorical"
    assert "8 features" not in err and "7 features" in err
    sample = pd.read_parquet(tmp_path / "model" / "baseline.reference.parquet")
    assert len(sample) == 100


def test_evaluate_prints_one_json_line_per_window(capsys: pytest.CaptureFixture[str],
                                                  example_files: ExampleFiles,
                                                  example_baseline: Path) -> None:
    code, out, err = run(capsys, "evaluate", "--baseline", example_baseline, "--data",
                         example_files.current, "--labels", example_files.labels,
                         "--window-rows", "7000", "--model-version", "3")
    assert code == 0, err
    results = windows(out)
    assert [r["window"] for r in results] == [1, 2, 3, 4, 5]
    assert [r["rows"] for r in results] == [7000, 7000, 7000, 7000, 2000]
    assert all(r["version"] == "3" and r["model"] == "carloan" for r in results)
    assert all(r["performance"]["labeled_rows"] > 0 for r in results)


def test_evaluate_table_format_is_for_people(capsys: pytest.CaptureFixture[str],
                                             example_files: ExampleFiles,
                                             example_baseline: Path) -> None:
    code, out, err = run(capsys, "evaluate", "--baseline", example_baseline, "--data",
                         example_files.current, "--window-rows", "5000", "--format", "table")
    assert code == 0, err
    assert "driftloop windows" in out and "car_value" in out
    assert not out.lstrip().startswith("{")


def test_evaluate_takes_settings_from_config(capsys: pytest.CaptureFixture[str],
                                             example_files: ExampleFiles,
                                             example_baseline: Path, tmp_path: Path) -> None:
    config = tmp_path / "driftloop.yaml"
    config.write_text(f"models:\n  carloan:\n    baseline: {example_baseline}\n"
                      "    window: {rows: 10000}\n    drift: {threshold: 0.6}\n")
    code, out, err = run(capsys, "evaluate", "--baseline", example_baseline, "--data",
                         example_files.current, "--config", config, "--model", "carloan")
    assert code == 0, err
    results = windows(out)
    assert len(results) == 3  # 30000 rows in windows of the config's 10000
    thresholds = {f["threshold"] for r in results for f in r["features"].values()}
    assert thresholds == {0.6}


def test_evaluate_report_writes_html_per_drifted_window(capsys: pytest.CaptureFixture[str],
                                                        example_files: ExampleFiles,
                                                        example_baseline: Path,
                                                        tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    code, out, err = run(capsys, "evaluate", "--baseline", example_baseline, "--data",
                         example_files.current, "--window-rows", "5000", "--report", reports)
    assert code == 0, err
    drifted = [r["window"] for r in windows(out)
               if any(f["drift"] for f in r["features"].values())]
    written = sorted(p.name for p in reports.glob("*.html"))
    assert written == [f"carloan-window-{w:04d}.html" for w in drifted] and drifted
    html = (reports / written[0]).read_text()
    assert "car_value" in html and len(html) > 10_000


def test_evaluate_report_without_reference_rows_says_what_to_do(
        capsys: pytest.CaptureFixture[str], example_files: ExampleFiles,
        example_baseline: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.json"
    bare.write_text(example_baseline.read_text())
    code, _, err = run(capsys, "evaluate", "--baseline", bare, "--data", example_files.current,
                       "--window-rows", "5000", "--report", tmp_path / "r")
    assert_user_error(code, err, "--sample-rows", "--reference")


def test_bad_value_counts_as_type_violation_when_asked(capsys: pytest.CaptureFixture[str],
                                                       example_files: ExampleFiles,
                                                       example_baseline: Path,
                                                       tmp_path: Path) -> None:
    frame = pd.read_csv(example_files.current, nrows=500)
    frame["car_value"] = frame["car_value"].astype(object)
    frame.loc[3, "car_value"] = "lots"
    data = tmp_path / "bad.csv"
    frame.to_csv(data, index=False)
    code, out, err = run(capsys, "evaluate", "--baseline", example_baseline, "--data", data,
                         "--window-rows", "500", "--on-bad-value", "count")
    assert code == 0, err
    assert windows(out)[0]["quality"]["type_violations"] == {"car_value": 1}
    code, _, err = run(capsys, "evaluate", "--baseline", example_baseline, "--data", data,
                       "--window-rows", "500")
    assert_user_error(code, err, str(data), "'car_value'", "row 4", "'lots'", "not a number")


@pytest.mark.parametrize("problem", ["missing column", "empty file", "header only",
                                     "missing file", "not csv"])
def test_bad_data_file_is_one_error_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                                    example_files: ExampleFiles,
                                                    example_baseline: Path, tmp_path: Path,
                                                    problem: str) -> None:
    data = tmp_path / "data.csv"
    frame = pd.read_csv(example_files.current, nrows=200)
    expected = {"missing column": "'age'", "empty file": "file is empty",
                "header only": "no rows", "missing file": "file not found",
                "not csv": "not a readable CSV"}[problem]
    if problem == "missing column":
        frame.drop(columns=["age"]).to_csv(data, index=False)
    elif problem == "empty file":
        data.write_text("")
    elif problem == "header only":
        frame.iloc[:0].to_csv(data, index=False)
    elif problem == "not csv":
        data.write_text('a,b\n1,"2\n3,4\n')
    code, _, err = run(capsys, "evaluate", "--baseline", example_baseline, "--data", data,
                       "--window-rows", "100")
    assert_user_error(code, err, str(data), expected)


@pytest.mark.parametrize(("content", "expected"), [
    ("{oops", "not valid JSON"),
    ('{"schema": "driftloop/baseline/v0"}', "is not 'driftloop/baseline/v2'"),
    (None, "file not found"),
])
def test_bad_baseline_is_one_error_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                                   example_files: ExampleFiles, tmp_path: Path,
                                                   content: str | None, expected: str) -> None:
    baseline = tmp_path / "baseline.json"
    if content is not None:
        baseline.write_text(content)
    code, _, err = run(capsys, "evaluate", "--baseline", baseline, "--data",
                       example_files.current, "--window-rows", "100")
    assert_user_error(code, err, str(baseline), expected)


def test_bad_config_and_unknown_model_exit_2(capsys: pytest.CaptureFixture[str],
                                             example_files: ExampleFiles,
                                             example_baseline: Path, tmp_path: Path) -> None:
    config = tmp_path / "driftloop.yaml"
    config.write_text("models:\n  carloan:\n    baseline: b.json\n    window: {rows: -5}\n")
    code, _, err = run(capsys, "evaluate", "--baseline", example_baseline, "--data",
                       example_files.current, "--config", config)
    assert_user_error(code, err, "models.carloan.window.rows", "-5")
    config.write_text("models:\n  other:\n    baseline: b.json\n")
    code, _, err = run(capsys, "evaluate", "--baseline", example_baseline, "--data",
                       example_files.current, "--config", config, "--model", "carloan")
    assert_user_error(code, err, "no model 'carloan'", "other")


def test_baseline_build_bad_input_exit_2(capsys: pytest.CaptureFixture[str],
                                         example_files: ExampleFiles, tmp_path: Path) -> None:
    code, _, err = run(capsys, "baseline", "build", "--data", example_files.reference,
                       "--model", "m", "--target", "label", "--out", tmp_path / "b.json")
    assert_user_error(code, err, str(example_files.reference), "'label' not found")
    code, _, err = run(capsys, "baseline", "build", "--data", tmp_path / "none.parquet",
                       "--model", "m", "--out", tmp_path / "b.json")
    assert_user_error(code, err, "none.parquet", "file not found")


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "evaluate", "--window-rows", "0")
    assert code == 2 and "usage" in err


def test_demo_batch_runs_the_detectors_over_a_generated_file(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "demo-output"
    code, out, err = run(capsys, "demo", "--batch", "--out", out_dir)
    assert code == 0, err
    for name in ("reference.csv", "current.csv", "labels.csv", "baseline.json",
                 "baseline.reference.parquet", "results.jsonl"):
        assert (out_dir / name).exists(), name
    assert sorted(p.name for p in (out_dir / "reports").glob("*.html")) == [
        "carloan-window-0003.html", "carloan-window-0005.html"]
    assert "window 5: dataset drift (5 of 8 features" in out
    assert "window 2: no feature drift; salary_range missing" in out
    assert "window 6: no feature drift; accuracy" in out and "degraded" in out


@pytest.mark.integration
def test_console_script_runs_evaluate(example_files: ExampleFiles, example_baseline: Path,
                                      tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("driftloop")
    assert script.exists(), f"{script}: install the package (pip install -e .)"
    done = subprocess.run(
        [str(script), "evaluate", "--baseline", str(example_baseline), "--data",
         str(example_files.current), "--window-rows", "15000"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    assert [r["window"] for r in windows(done.stdout)] == [1, 2]
    missing = subprocess.run(
        [str(script), "evaluate", "--baseline", str(tmp_path / "nope.json"), "--data",
         str(example_files.current)], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("driftloop: error: baseline")
    assert "Traceback" not in missing.stderr


def _task_frames(task: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(reference, current without labels, labels): 1000 stable rows in the current file,
    then 1000 with ``x`` shifted by one std and worse predictions."""
    rng = np.random.default_rng(seed)

    def rows(n: int, shift: float, noise: float, first_id: int) -> pd.DataFrame:
        x = rng.normal(shift, 1.0, n)
        color = rng.choice(np.array(["red", "green", "blue"], dtype=object), n)
        if task == "multiclass":
            y = np.where(x < -0.5, "low", np.where(x < 0.5, "mid", "high")).astype(object)
            flip = rng.random(n) < noise
            p = np.where(flip, rng.choice(np.array(["low", "mid", "high"], dtype=object), n), y)
        else:
            y = 3.0 * x + 10.0 + rng.normal(0.0, 0.5, n)
            p = 3.0 * x + 10.0 + noise * 10.0
        return pd.DataFrame({"id": np.arange(first_id, first_id + n), "x": x, "color": color,
                             "y": y, "p": p})

    reference = rows(3000, 0.0, 0.1, 0)
    current = pd.concat([rows(1000, 0.0, 0.1, 10_000), rows(1000, 1.0, 0.5, 11_000)],
                        ignore_index=True)
    labels = current[["id", "y"]].sample(frac=1.0, random_state=seed)  # joined on id, any order
    return reference, current.drop(columns=["y"]), labels


@pytest.mark.parametrize(("task", "metric", "config_metric"), [
    ("multiclass", "f1", "f1"), ("regression", "mae", "mae")])
def test_multiclass_and_regression_go_through_build_and_evaluate(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, task: str, metric: str,
        config_metric: str) -> None:
    from sklearn.metrics import f1_score, mean_absolute_error

    reference, current, labels = _task_frames(task, seed=3)
    paths = {name: tmp_path / f"{name}.csv" for name in ("reference", "current", "labels")}
    for name, frame in zip(paths, (reference, current, labels), strict=True):
        frame.to_csv(paths[name], index=False)
    baseline_path = tmp_path / "baseline.json"
    code, _, err = run(capsys, "baseline", "build", "--data", paths["reference"], "--model",
                       task, "--target", "y", "--prediction", "p", "--id", "id", "--out",
                       baseline_path)
    assert code == 0, err
    baseline = Baseline.load(baseline_path)
    assert baseline.task == task and set(baseline.features) == {"x", "color"}
    config = tmp_path / "driftloop.yaml"
    config.write_text(f"models:\n  {task}:\n    baseline: {baseline_path}\n"
                      f"    performance: {{metric: {config_metric}, max_drop: 0.05}}\n")
    code, out, err = run(capsys, "evaluate", "--baseline", baseline_path, "--data",
                         paths["current"], "--labels", paths["labels"], "--window-rows",
                         "1000", "--config", config, "--model", task)
    assert code == 0, err
    stable, shifted = windows(out)
    truth = current.merge(labels, on="id")
    for result, part in ((stable, truth.iloc[:1000]), (shifted, truth.iloc[1000:])):
        perf = result["performance"]
        assert perf["metric"] == metric and perf["labeled_rows"] == 1000
        expected = (f1_score(part["y"], part["p"], average="macro") if task == "multiclass"
                    else mean_absolute_error(part["y"], part["p"]))
        assert perf["value"] == pytest.approx(expected, rel=1e-9)
        assert perf["max_drop"] == 0.05
    assert not stable["performance"]["degraded"] and shifted["performance"]["degraded"]
    assert not stable["features"]["x"]["drift"] and shifted["features"]["x"]["drift"]
    assert not stable["features"]["color"]["drift"] and not shifted["features"]["color"]["drift"]


def test_unwritable_outputs_are_one_error_line(capsys: pytest.CaptureFixture[str],
                                               example_files: ExampleFiles,
                                               example_baseline: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run(capsys, "baseline", "build", "--data", example_files.reference,
                       "--model", "m", "--out", blocker / "baseline.json")
    assert_user_error(code, err, str(blocker / "baseline.json"), "cannot be written")
    code, out, err = run(capsys, "evaluate", "--baseline", example_baseline, "--data",
                         example_files.current, "--window-rows", "5000", "--report",
                         blocker / "reports")
    assert_user_error(code, err, str(blocker / "reports"), "cannot create the directory")
    assert out == ""  # refused before any window ran


def test_evaluate_report_is_a_real_evidently_drift_report(
        capsys: pytest.CaptureFixture[str], example_files: ExampleFiles,
        example_baseline: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    code, out, err = run(capsys, "evaluate", "--baseline", example_baseline, "--data",
                         example_files.current, "--window-rows", "10000", "--report", reports)
    assert code == 0, err
    first = next(r for r in windows(out) if any(f["drift"] for f in r["features"].values()))
    html = (reports / f"carloan-window-{first['window']:04d}.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:500]
    # Evidently's own page: its bundled UI (megabytes) and DataDriftPreset's widgets,
    # with every feature of the baseline in them
    assert len(html) > 1_000_000
    for title in ("Share of Drifted Columns", "Dataset Drift", "Drift Score"):
        assert title in html, title
    for feature in json.loads(example_baseline.read_text())["columns"]["features"]:
        assert feature in html, feature
    # run with the window's methods and thresholds, it agrees with the window
    assert "Evidently agrees with the window on all" in html
    assert str(reports / f"carloan-window-{first['window']:04d}.html") in err


BAD_INPUTS = ["missing column", "empty file", "non-numeric value", "truncated baseline",
              "wrong schema", "baseline is a list", "no such file", "unreadable parquet",
              "unwritable out"]


@pytest.mark.integration
def test_console_script_bad_inputs_print_one_line_and_exit_2(
        example_files: ExampleFiles, example_baseline: Path, tmp_path: Path) -> None:
    # the real console script in subprocesses: nothing (pandas or pyarrow warnings,
    # logging, a traceback) may reach stderr besides the one error line
    script = Path(sys.executable).with_name("driftloop")
    frame = pd.read_csv(example_files.current, nrows=300)
    files = {name: tmp_path / name for name in
             ("nocol.csv", "empty.csv", "bad.csv", "trunc.json", "schema.json", "list.json",
              "broken.parquet")}
    frame.drop(columns=["age"]).to_csv(files["nocol.csv"], index=False)
    files["empty.csv"].write_text("")
    bad = frame.astype({"car_value": object})
    bad.loc[7, "car_value"] = "n/a?"
    bad.to_csv(files["bad.csv"], index=False)
    files["trunc.json"].write_text(example_baseline.read_text()[:500])
    files["schema.json"].write_text('{"schema": "driftloop/baseline/v9"}')
    files["list.json"].write_text("[]")
    files["broken.parquet"].write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "blocker").write_text("")
    def evaluate(baseline: Path, data: Path) -> list[str]:
        return [str(script), "evaluate", "--window-rows", "100", "--baseline", str(baseline),
                "--data", str(data)]

    current = example_files.current
    cases = {
        "missing column": (evaluate(example_baseline, files["nocol.csv"]),
                           [str(files["nocol.csv"]), "'age' not found"]),
        "empty file": (evaluate(example_baseline, files["empty.csv"]),
                       [str(files["empty.csv"]), "file is empty"]),
        "non-numeric value": (evaluate(example_baseline, files["bad.csv"]),
                              [str(files["bad.csv"]), "'car_value' row 8", "not a number"]),
        "truncated baseline": (evaluate(files["trunc.json"], current),
                               [str(files["trunc.json"]), "not valid JSON"]),
        "wrong schema": (evaluate(files["schema.json"], current),
                         [str(files["schema.json"]), "'driftloop/baseline/v9'"]),
        "baseline is a list": (evaluate(files["list.json"], current),
                               [str(files["list.json"]), "got a JSON list"]),
        "no such file": (evaluate(example_baseline, tmp_path / "absent.csv"),
                         [str(tmp_path / "absent.csv"), "file not found"]),
        "unreadable parquet": (evaluate(example_baseline, files["broken.parquet"]),
                               [str(files["broken.parquet"]), "cannot be read"]),
        "unwritable out": ([str(script), "baseline", "build", "--data",
                            str(example_files.reference), "--model", "m", "--out",
                            str(tmp_path / "blocker" / "b.json")],
                           [str(tmp_path / "blocker" / "b.json"), "cannot be written"]),
    }
    assert sorted(cases) == sorted(BAD_INPUTS)
    # in parallel: each process spends most of its time importing
    procs = {name: subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env={**os.environ, "NO_COLOR": "1"})
             for name, (argv, _) in cases.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (name, err)
        assert out == "", name
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("driftloop: error: "), (name, err)
        for needle in cases[name][1]:
            assert needle in lines[0], (name, lines[0])


def test_extra_columns_are_a_quality_issue_but_roles_and_excluded_ones_are_not(
        capsys: pytest.CaptureFixture[str], example_files: ExampleFiles,
        tmp_path: Path) -> None:
    reference = pd.read_csv(example_files.reference, nrows=3000)
    current = pd.read_csv(example_files.current, nrows=1000)
    current["coupon"] = "spring"
    current["repaid"] = 1  # the target column, a role: expected in a file
    paths = {"reference": tmp_path / "reference.csv", "current": tmp_path / "current.csv"}
    reference.to_csv(paths["reference"], index=False)
    current.to_csv(paths["current"], index=False)
    baseline = tmp_path / "baseline.json"
    code, _, err = run(capsys, "baseline", "build", "--data", paths["reference"], "--model",
                       "carloan", "--target", "repaid", "--prediction", "prediction",
                       "--score", "score", "--id", "request_id", "--timestamp", "timestamp",
                       "--exclude", "credit_score", "--out", baseline)
    assert code == 0, err
    assert Baseline.load(baseline).columns.excluded == ("credit_score",)
    code, out, err = run(capsys, "evaluate", "--baseline", baseline, "--data", paths["current"],
                         "--window-rows", "500")
    assert code == 0, err
    for result in windows(out):
        assert result["quality"]["extra_columns"] == ["coupon"]
        assert "column coupon is not in the baseline (in 500 of 500 rows)" in \
            result["quality"]["violations"]


def test_dashboards_build_writes_the_committed_dashboards(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    committed = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
    code, out, err = run(capsys, "dashboards", "build", "--out", tmp_path / "boards")
    assert code == 0, err
    written = sorted(Path(line) for line in out.splitlines())
    assert [p.name for p in written] == sorted(p.name for p in committed.glob("*.json"))
    for path in written:
        assert path.parent == tmp_path / "boards"
        assert path.read_text() == (committed / path.name).read_text(), path.name


def test_dashboards_build_into_an_unwritable_place_is_one_error_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, err = run(capsys, "dashboards", "build", "--out", blocker / "boards")
    assert_user_error(code, err, str(blocker / "boards"), "cannot be written")
    assert out == ""
