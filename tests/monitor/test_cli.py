"""The ``driftloop`` command line, in process (``monitor.cli.main``) and as a console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from monitor.baseline import Baseline
from monitor.cli import main
from monitor.examples import ExampleFiles


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
    ('{"schema": "driftloop/baseline/v0"}', "is not 'driftloop/baseline/v1'"),
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


def test_demo_runs_the_whole_batch_loop(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    out_dir = tmp_path / "demo-output"
    code, out, err = run(capsys, "demo", "--out", out_dir)
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
