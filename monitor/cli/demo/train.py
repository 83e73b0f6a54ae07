"""The retrain command the demo's driftloop launches: ``python -m monitor.cli.demo.train``.

It does what a training pipeline started by driftloop does:

1. read the labeled rows predicted since the evidence began (``--since``, which
   the service fills with ``{window_start}``; an alert or a performance window
   has none, and then it takes the rows predicted after its own start), waiting
   until there are ``--rows`` of them;
2. fit the model on them (``--mode flipped``: a training job with a bug that reads
   the labels upside down, the bad-challenger scenario);
3. log the baseline of those rows and the model in one MLflow run tagged
   ``driftloop.idempotency_key`` (the launch's key, ``DRIFTLOOP_IDEMPOTENCY_KEY``),
   registering a new version: driftloop finds it by that tag and judges it.

The command launcher gives it a minimal environment: the tracking URI and
``PYTHONPATH`` come from the launcher's ``env`` in the demo's config.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["main"]

KEY_TAG = "driftloop.idempotency_key"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monitor.cli.demo.train",
                                     description="retrain the demo's model on fresh labels")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--labeled", required=True, type=Path, help="the label feed's file")
    parser.add_argument("--since", default="", help="RFC 3339; empty: this command's start")
    parser.add_argument("--rows", type=int, default=1500, help="rows to train on")
    parser.add_argument("--wait-seconds", type=float, default=120.0)
    parser.add_argument("--mode", choices=("good", "flipped"), default="good")
    parser.add_argument("--key", default="", help="the launch's idempotency key")
    parser.add_argument("--reason", default="")
    parser.add_argument("--seed", type=int, default=7)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import os

    args = _parser().parse_args(argv)
    # imported here: --help stays fast, and a missing package is this message, not a trace
    from monitor.cli.demo.labeled import format_time, parse_time, read_labeled
    from monitor.cli.demo.training import fit_model, register_version, scored

    key = args.key or os.environ.get("DRIFTLOOP_IDEMPOTENCY_KEY", "")
    if not key:
        print("retrain: no idempotency key (--key or DRIFTLOOP_IDEMPOTENCY_KEY); driftloop "
              "could not tell this version came from its launch", file=sys.stderr)
        return 2
    since = parse_time(args.since) or datetime.now(UTC)
    deadline = time.monotonic() + args.wait_seconds
    features, labels = read_labeled(args.labeled, since)
    while len(labels) < args.rows:
        if time.monotonic() > deadline:
            print(f"retrain {args.model}: {len(labels)} labeled rows predicted since "
                  f"{format_time(since)} after {args.wait_seconds:.0f}s, expected {args.rows}",
                  file=sys.stderr)
            return 1
        time.sleep(0.5)
        features, labels = read_labeled(args.labeled, since)
    features, labels = features.iloc[:args.rows], labels[:args.rows]
    # the bug of the bad-challenger scenario: the label column read upside down
    seen = 1 - labels if args.mode == "flipped" else labels
    model = fit_model(features, seen)
    trained = register_version(
        model, scored(model, features, seen), model_name=args.model,
        tracking_uri=args.tracking_uri, seed=args.seed, fitted_rows=len(seen),
        tags={KEY_TAG: key, "driftloop.reason": args.reason, "demo.kind": "retrain",
              "demo.mode": args.mode},
        description=f"retrained by driftloop ({args.reason or 'no reason given'}) on "
                    f"{len(seen)} rows predicted since {format_time(since)}")
    print(f"retrain {args.model}: registered version {trained.version} (run {trained.run_id}), "
          f"trained on {trained.rows} rows predicted since {format_time(since)}, "
          f"accuracy {trained.accuracy:.3f} on them ({args.mode} labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
