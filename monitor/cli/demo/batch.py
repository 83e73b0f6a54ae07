"""``driftloop demo --batch``: the detectors over a generated file, no processes.

Writes the example "carloan" dataset (a reference and six monitoring windows
with known shifts, plus late labels) into a directory, builds the baseline,
evaluates the windows (the table of ``driftloop evaluate --format table``),
writes Evidently HTML reports of the windows with drift and ends with one plain
sentence per window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import orjson
from rich.console import Console

from monitor.baseline import build_baseline, reference_sample, sample_path_for
from monitor.cli.evaluate import evaluate_data, render_table, table_console
from monitor.cli.examples import write_example
from monitor.config import ModelConfig
from monitor.evaluate import read_labels
from monitor.tables import read_table

__all__ = ["describe_window", "run_batch_demo"]

_SAMPLE_ROWS = 5000


def describe_window(result: dict[str, Any]) -> str:
    """One sentence a person can read: what drifted, the quality findings, performance."""
    features = result["features"]
    names = [n for n, f in features.items() if f["drift"]]
    parts = []
    if result["dataset_drift"]:
        parts.append(f"dataset drift ({len(names)} of {len(features)} features: "
                     f"{', '.join(names)})")
    elif names:
        parts.append(f"{len(names)} of {len(features)} features drifted ({', '.join(names)}), "
                     "below the dataset-drift share")
    else:
        parts.append("no feature drift")
    for name in names[:3]:
        f = features[name]
        parts.append(f"{name} {f['method']} {f['score']:.2f} >= {f['threshold']:.2f}")
    prediction = result["prediction_drift"]
    if prediction is not None and prediction["drift"]:
        parts.append(f"predictions shifted ({prediction['method']} {prediction['score']:.2f})")
    quality = result["quality"]
    for name, ratio in quality["missing"].items():
        parts.append(f"{name} missing in {ratio:.0%} of rows")
    for name, values in quality["unseen_categories"].items():
        parts.append(f"new {name} categories {', '.join(values)}")
    for name, share in quality["out_of_range"].items():
        parts.append(f"{name} out of range in {share:.0%} of rows")
    perf = result["performance"]
    if perf is not None and perf["value"] is not None:
        verdict = "degraded" if perf["degraded"] else "steady"
        parts.append(f"{perf['metric']} {perf['value']:.3f} vs {perf['baseline']:.3f} "
                     f"({verdict}, {perf['labeled_rows']} labels)")
    return f"window {result['window']}: " + "; ".join(parts) + "."


def _write_line(stream: BinaryIO, result: dict[str, Any]) -> None:
    stream.write(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def run_batch_demo(out: Path, seed: int = 7, report: bool = True) -> int:
    console = table_console()
    note = Console(stderr=True)
    files = write_example(out, seed=seed)
    note.print(f"[bold]1. data[/]: {files.reference}, {files.current} "
               f"(6 windows of {files.window_rows} rows), {files.labels}")

    reference = read_table(files.reference, "reference")
    baseline = build_baseline(
        reference, "carloan", target="repaid", prediction="prediction", score="score",
        id_column="request_id", timestamp="timestamp", source=f"data file {files.reference}")
    baseline_path = baseline.save(out / "baseline.json")
    sample = reference_sample(reference, baseline, _SAMPLE_ROWS, seed)
    sample.to_parquet(sample_path_for(baseline_path), index=False)
    note.print(f"[bold]2. baseline[/]: {baseline_path} ({len(baseline.features)} features, "
               f"task {baseline.task}, reference accuracy "
               f"{baseline.performance.metrics['accuracy'] if baseline.performance else 0:.3f})")

    current = read_table(files.current)
    labels = read_labels(files.labels, baseline, "request_id")
    results_path = out / "results.jsonl"
    with results_path.open("wb") as stream:
        results, reports = evaluate_data(
            baseline, current, ModelConfig(baseline=str(baseline_path)),
            window_rows=files.window_rows, source=f"data file {files.current}", labels=labels,
            id_column="request_id", version="1",
            emit=lambda r: _write_line(stream, r),
            report_dir=out / "reports" if report else None, reference=sample)
    note.print(f"[bold]3. evaluate[/]: {results_path}")
    console.print(render_table(results))
    for path in reports:
        note.print(f"report {path}")
    console.print("[bold]summary[/]")
    for result in results:
        console.print(describe_window(result), soft_wrap=True)
    return 0
