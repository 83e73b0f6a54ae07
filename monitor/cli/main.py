"""The ``driftloop`` command line (design section 6).

Subcommands: ``serve``, ``baseline build``, ``evaluate``, ``demo``, ``dashboards build``,
``canary status|promote|rollback|abort``.
A user error
(a missing file or column, an unreadable value, a malformed baseline or config)
prints one line, ``driftloop: error: <what>``, and exits with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor.cli.demo.options import FORMATS, SCENARIOS
from monitor.config import ConfigError
from monitor.errors import InputError

__all__ = ["build_parser", "main"]


def _columns(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {value!r}, expected a positive integer") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"got {number}, expected a positive integer")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftloop",
        description="Monitoring and continuous-training feedback for models in production.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the service (consumers, scheduler, HTTP API)")
    serve.add_argument("--config", required=True, type=Path, help="driftloop.yaml")

    baseline = commands.add_parser("baseline", help="training baselines")
    baseline_commands = baseline.add_subparsers(dest="baseline_command", required=True,
                                                metavar="COMMAND")
    build = baseline_commands.add_parser("build", help="build a baseline from CSV or Parquet")
    build.add_argument("--data", required=True, type=Path, help="training or validation file")
    build.add_argument("--model", required=True, help="model name")
    build.add_argument("--target", help="ground-truth column")
    build.add_argument("--prediction", help="model output column")
    build.add_argument("--score", help="positive-class probability column (binary)")
    build.add_argument("--scores-prefix", metavar="PREFIX",
                       help="per-class probability columns PREFIX<class> (multiclass; for "
                            "the label-free performance estimate)")
    build.add_argument("--id", dest="id_column", help="request id column (joins labels)")
    build.add_argument("--timestamp", help="event time column")
    build.add_argument("--categorical", type=_columns, default=[], metavar="COL,...",
                       help="columns to treat as categories whatever their type")
    build.add_argument("--exclude", type=_columns, default=[], metavar="COL,...",
                       help="columns that are not features")
    build.add_argument("--out", required=True, type=Path, help="baseline JSON to write")
    build.add_argument("--sample-rows", type=_positive, metavar="N",
                       help="also write a seeded sample of N reference rows "
                            "(<out>.reference.parquet) for HTML reports")
    build.add_argument("--seed", type=int, default=0)

    evaluate = commands.add_parser("evaluate", help="evaluate a file in row windows")
    evaluate.add_argument("--baseline", required=True,
                          help="baseline file, runs:/..., or models:/name@alias")
    evaluate.add_argument("--data", required=True, type=Path, help="CSV or Parquet to evaluate")
    evaluate.add_argument("--labels", type=Path, help="labels file joined on --id")
    evaluate.add_argument("--id", dest="id_column", help="id column (default: the baseline's)")
    evaluate.add_argument("--window-rows", type=_positive, metavar="N",
                          help="rows per window (default: the config's window.rows, or 5000)")
    evaluate.add_argument("--config", type=Path, help="driftloop.yaml to take settings from")
    evaluate.add_argument("--model", help="model key in --config (default: the baseline's)")
    evaluate.add_argument("--model-version", default="1", help="version to report (default 1)")
    evaluate.add_argument("--format", choices=("json", "table"), default="json")
    evaluate.add_argument("--report", type=Path, metavar="DIR",
                          help="write an Evidently HTML report per window with drift")
    evaluate.add_argument("--reference", type=Path,
                          help="reference rows for --report (default: the baseline's sample)")
    evaluate.add_argument("--on-bad-value", choices=("error", "count"), default="error",
                          help="a non-number in a numeric column: stop (default) or count it "
                               "as a type violation")

    demo = commands.add_parser(
        "demo", help="the whole loop on this machine: broker, MLflow, driftloop, a model "
                     "server and labels; drift, retrain, canary")
    demo.add_argument("--scenario", choices=SCENARIOS, default="default",
                      help="default: the retrained version is promoted; bad-challenger: it is "
                           "rolled back; alert: an Alertmanager webhook starts the retrain")
    demo.add_argument("--format", dest="event_format", choices=FORMATS, default="native",
                      help="prediction logs: native events, or KServe CloudEvents (binary "
                           "mode, V1 bodies)")
    demo.add_argument("--short", action="store_true",
                      help="smaller windows and a shorter story (the tests use it)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the data and the models")
    demo.add_argument("--out", type=Path, metavar="DIR",
                      help="keep every file here (default: a temporary folder, removed)")
    demo.add_argument("--keep-running", action="store_true",
                      help="leave the stack up after the story, until Ctrl-C")
    demo.add_argument("--state-file", type=Path, metavar="PATH",
                      help="write the stack's URLs, PIDs and the story's phase here (JSON)")
    demo.add_argument("--batch", action="store_true",
                      help="no processes: the detectors over a generated file, with reports "
                           "(--out, default demo-output)")
    demo.add_argument("--no-report", action="store_true", help="--batch: skip the HTML reports")

    dashboards = commands.add_parser("dashboards", help="Grafana dashboards as code")
    dashboards_commands = dashboards.add_subparsers(dest="dashboards_command", required=True,
                                                    metavar="COMMAND")
    generate = dashboards_commands.add_parser(
        "build", help="write the dashboard JSON files Grafana's file provider reads")
    generate.add_argument("--out", type=Path, metavar="DIR",
                          help="output directory (default: grafana/dashboards, from the "
                               "repository root)")
    from monitor.cli.canary import add_canary_parser

    add_canary_parser(commands)
    return parser


def _baseline_build(args: argparse.Namespace) -> int:
    from rich.console import Console

    from monitor.baseline import build_baseline, reference_sample, sample_path_for
    from monitor.tables import read_table

    try:  # before the build: a large frame must not be profiled only to fail at the end
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"baseline {args.out}: cannot be written "
                         f"({exc.strerror or exc})") from None
    frame = read_table(args.data)
    prefix = args.scores_prefix
    class_scores = {} if not prefix else {
        str(c)[len(prefix):]: str(c) for c in frame.columns
        if str(c).startswith(prefix) and len(str(c)) > len(prefix)}
    if prefix and not class_scores:
        raise InputError(f"data file {args.data}: --scores-prefix {prefix!r}: no column "
                         f"starts with it, expected one per class ({prefix}<class>)")
    baseline = build_baseline(
        frame, args.model, target=args.target, prediction=args.prediction, score=args.score,
        id_column=args.id_column, timestamp=args.timestamp, categorical=args.categorical,
        exclude=args.exclude, class_scores=class_scores, seed=args.seed,
        source=f"data file {args.data}")
    baseline.save(args.out)
    # soft_wrap: a note is one line however narrow the terminal (and whole when piped)
    console = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)
    kinds = [p.kind for p in baseline.features.values()]
    console.print(
        f"baseline {args.out}: model {baseline.model}, task {baseline.task or 'none'}, "
        f"{len(kinds)} features ({kinds.count('numeric')} numeric, "
        f"{kinds.count('categorical')} categorical), {baseline.n_rows} rows"
        + ("" if baseline.cbpe is None else
           f", performance estimate ({', '.join(baseline.cbpe.metrics)})"))
    if args.sample_rows:
        sample_path = sample_path_for(args.out)
        try:
            reference_sample(frame, baseline, args.sample_rows, args.seed).to_parquet(
                sample_path, index=False)
        except OSError as exc:
            raise InputError(f"reference sample {sample_path}: cannot be written "
                             f"({exc.strerror or exc})") from None
        console.print(f"reference sample {sample_path}: {min(args.sample_rows, len(frame))} rows")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from monitor.cli.demo import DemoOptions, run_batch_demo, run_demo

    if args.batch:
        return run_batch_demo(args.out or Path("demo-output"), seed=args.seed,
                              report=not args.no_report)
    return run_demo(DemoOptions(
        scenario=args.scenario, event_format=args.event_format, short=args.short,
        seed=args.seed, out=args.out, keep_running=args.keep_running,
        state_file=args.state_file))


def _dashboards_build(args: argparse.Namespace) -> int:
    # imported here: the Grafana SDK is needed by this command only
    from dashboards import DEFAULT_OUT, build_all

    out = args.out or DEFAULT_OUT
    try:
        written = build_all(out)
    except OSError as exc:
        raise InputError(f"dashboards {out}: cannot be written "
                         f"({exc.strerror or exc})") from None
    for path in written:
        print(path)
    return 0


def _serve(args: argparse.Namespace) -> int:
    # imported here: the service pulls in Kafka, FastAPI and the store
    from monitor.runtime import run

    result = run(args.config)
    code = int(result) if isinstance(result, int) else 0
    # Everything is persisted and every client closed by now. Leave without interpreter
    # finalization: daemon threads of the Kafka clients and the HTTP server may still
    # be inside C extensions, and tearing modules down under them can crash the exit.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "baseline":
            return _baseline_build(args)
        if args.command == "evaluate":
            from monitor.cli.evaluate import run_evaluate

            return run_evaluate(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "dashboards":
            return _dashboards_build(args)
        if args.command == "canary":
            from monitor.cli.canary import run_canary

            return run_canary(args)
    except (InputError, ConfigError) as exc:
        message = str(exc).strip().replace("\n", "; ")
        print(f"driftloop: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:
        if args.command == "serve":
            raise
        # a file the batch commands read or write that the sites above did not name
        subject = exc.filename if exc.filename is not None else "file"
        print(f"driftloop: error: {subject}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("driftloop: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
