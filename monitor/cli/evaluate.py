"""``driftloop evaluate``: a file against a baseline, in row windows.

JSON lines (one window result per line, design section 6.1) by default; a rich
table for people with ``--format table``; Evidently HTML reports of the windows
with drift with ``--report DIR``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import orjson
import pandas as pd
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from monitor.baseline import Baseline, load_baseline, load_reference_sample
from monitor.config import ModelConfig, load_config
from monitor.errors import InputError
from monitor.evaluate import BadValues, drifted, evaluate_frame, read_labels
from monitor.tables import read_table

__all__ = ["drifted", "evaluate_data", "render_table", "run_evaluate", "table_console"]

_DEFAULT_WINDOW_ROWS = 5000


def _model_config(args: argparse.Namespace) -> tuple[ModelConfig, str | None, str | None]:
    """The model's settings, its name and the MLflow tracking URI from --config."""
    if args.config is None:
        return ModelConfig(baseline=str(args.baseline)), args.model, None
    config = load_config(args.config)
    name = args.model
    if name is None:
        if len(config.models) != 1:
            known = ", ".join(sorted(config.models)) or "none"
            raise InputError(f"config {args.config}: pass --model NAME; models: {known}")
        name = next(iter(config.models))
    if name not in config.models:
        known = ", ".join(sorted(config.models)) or "none"
        raise InputError(f"config {args.config}: no model {name!r}; models: {known}")
    return config.models[name], name, config.mlflow.tracking_uri


def _reference_rows(args: argparse.Namespace, model: str | None,
                    tracking_uri: str | None) -> pd.DataFrame:
    if args.reference is not None:
        return read_table(args.reference, "reference")
    sample = load_reference_sample(args.baseline, model, tracking_uri)
    if sample is None:
        raise InputError(
            f"--report needs reference rows: baseline {args.baseline} has no reference sample; "
            "rebuild it with --sample-rows N, or pass --reference FILE")
    return sample


def _prediction_text(prediction: dict[str, Any] | None) -> str:
    if prediction is None or prediction["score"] is None:
        return "-"
    state = "[red]drift[/]" if prediction["drift"] else "ok"
    return f"{state} {prediction['score']:.3f}"


def _quality_text(quality: dict[str, Any]) -> str:
    parts = [f"missing {name} {ratio:.0%}" for name, ratio in quality["missing"].items()]
    parts += [f"new {name}: {', '.join(values[:3])}"
              for name, values in quality["unseen_categories"].items()]
    parts += [f"out of range {name} {share:.0%}"
              for name, share in quality["out_of_range"].items()]
    parts += [f"type {name} x{count}" for name, count in quality["type_violations"].items()]
    parts += [f"no column {name}" for name in quality["missing_columns"]]
    parts += [f"extra column {name}" for name in quality.get("extra_columns", [])]
    return "\n".join(parts) or "ok"


def _performance_text(perf: dict[str, Any] | None) -> str:
    if perf is None or perf["value"] is None:
        return "-"
    text = f"{perf['metric']} {perf['value']:.3f}/{perf['baseline']:.3f}"
    return text + (" [red]degraded[/]" if perf["degraded"] else "")


def _estimate_text(estimate: dict[str, Any] | None) -> str:
    if estimate is None or estimate["value"] is None:
        return "-"
    text = (f"{estimate['metric']} {estimate['value']:.3f}/{estimate['baseline']:.3f}\n"
            f"band {estimate['lower']:.3f}..{estimate['upper']:.3f}")
    return text + (" [red]degraded[/]" if estimate["degraded"] else "")


def render_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="driftloop windows", header_style="bold")
    for column in ("window", "rows", "share", "dataset drift", "drifted features",
                   "prediction", "quality", "performance (now/ref)", "estimated (now/ref)"):
        table.add_column(column, justify="right" if column in ("window", "rows") else "left")
    for r in results:
        names = [n for n, f in r["features"].items() if f["drift"]]
        table.add_row(
            str(r["window"]), str(r["rows"]), f"{r['drift_share']:.2f}",
            "[red]yes[/]" if r["dataset_drift"] else "no",
            "\n".join(names) or "-",
            _prediction_text(r["prediction_drift"]),
            _quality_text(r["quality"]),
            _performance_text(r["performance"]),
            _estimate_text(r.get("estimated_performance")),
        )
    return table


def evaluate_data(
    baseline: Baseline,
    frame: pd.DataFrame,
    model_config: ModelConfig,
    *,
    window_rows: int,
    source: str,
    labels: pd.Series | None = None,
    id_column: str | None = None,
    version: str = "1",
    on_bad_value: BadValues = "error",
    emit: Callable[[dict[str, Any]], None] | None = None,
    report_dir: Path | None = None,
    reference: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], list[Path]]:
    """Every window's result (passed to ``emit`` as it is ready) and the reports written."""
    from monitor.evaluate import write_drift_report

    results: list[dict[str, Any]] = []
    reports: list[Path] = []
    n_windows = -(-len(frame) // window_rows)
    task = None if progress is None else progress.add_task("windows", total=n_windows)
    for outcome in evaluate_frame(baseline, frame, model_config, window_rows=window_rows,
                                  source=source, version=version, labels=labels,
                                  id_column=id_column, on_bad_value=on_bad_value):
        result = outcome.result
        results.append(result)
        if emit is not None:
            emit(result)
        if report_dir is not None and reference is not None and drifted(result):
            path = report_dir / f"{baseline.model}-window-{result['window']:04d}.html"
            reports.append(write_drift_report(baseline, reference, outcome.rows, result, path,
                                              title=f"window {result['window']}"))
        if progress is not None and task is not None:
            progress.advance(task)
    return results, reports


def table_console() -> Console:
    """Standard output for tables: the terminal's width, or 140 columns when piped (rich
    would use 80 and cut feature names)."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


def _json_writer(stream: TextIO) -> Callable[[dict[str, Any]], None]:
    def emit(result: dict[str, Any]) -> None:
        stream.write(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
        stream.flush()

    return emit


def run_evaluate(args: argparse.Namespace) -> int:
    model_config, model_name, tracking_uri = _model_config(args)
    baseline = load_baseline(args.baseline, model_name, tracking_uri)
    window_rows = args.window_rows or model_config.window.rows or _DEFAULT_WINDOW_ROWS
    reference = None
    if args.report is not None:
        reference = _reference_rows(args, model_name or baseline.model, tracking_uri)
        try:  # before the windows run: a long evaluation must not fail at its first report
            args.report.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--report {args.report}: cannot create the directory "
                             f"({exc.strerror or exc})") from None
    frame = read_table(args.data)
    id_column = args.id_column or baseline.columns.id
    labels = None
    if args.labels is not None:
        if id_column is None:
            raise InputError(f"labels file {args.labels}: pass --id COL to join labels "
                             "(the baseline has no id column)")
        labels = read_labels(args.labels, baseline, id_column)
    common: dict[str, Any] = dict(
        window_rows=window_rows, source=f"data file {args.data}", labels=labels,
        id_column=id_column, version=str(args.model_version), on_bad_value=args.on_bad_value,
        report_dir=args.report, reference=reference)
    stderr = Console(stderr=True, soft_wrap=True, highlight=False)
    if args.format == "json":
        _, reports = evaluate_data(baseline, frame, model_config,
                                   emit=_json_writer(sys.stdout), **common)
    else:
        with Progress(console=stderr, transient=True,
                      disable=len(frame) < 20 * window_rows) as progress:
            results, reports = evaluate_data(baseline, frame, model_config,
                                             progress=progress, **common)
        table_console().print(render_table(results))
    for path in reports:
        stderr.print(f"report {path}", markup=False)  # a path is not rich markup
    return 0
