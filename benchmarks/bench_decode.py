"""Decode and window fold of the consumer loop, in process, without a broker: the
per-record path (a Prediction per event) against the batch path (one msgspec pass per
poll into columns, windows folding column slices).

``n`` native events of the service benchmark (25 features, no labels) are cut into polls
of ``--poll`` records and fed to ``WindowFeed.add_run`` as ``driftloop serve`` does
(count windows of 5000 rows, drift-report rows on, as by default); the time is decode,
validation, windows, their evaluation and report rows.

Times are the process's CPU time, best of ``--repeat`` runs (the machine may be shared).

Run: ``python benchmarks/bench_decode.py [--n 100000] [--poll 5000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (str(ROOT), str(ROOT / "benchmarks")):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench_kafka import MODEL, native_events  # noqa: E402
from bench_service import baseline_file  # noqa: E402
from kafka.consumer.fetcher import ConsumerRecord  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from reference_loop import WINDOW_ROWS  # noqa: E402

from monitor.baseline import Baseline  # noqa: E402
from monitor.config import Config  # noqa: E402
from monitor.ingest import Decoder  # noqa: E402
from monitor.metrics import Metrics  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.stream import ModelPipeline, ReportRows, Service  # noqa: E402
from monitor.stream.records import runs_of  # noqa: E402

TOPIC = "predictions"


class _Letters:
    def write(self, record: Any, error: Any) -> None:
        raise AssertionError(f"a dead letter in the benchmark: {error}")

    def flush(self, timeout_seconds: float | None = 30.0) -> int:
        return 0


def _service(directory: Path, baseline: Path) -> Service:
    config = Config.model_validate({"models": {MODEL: {
        "baseline": str(baseline), "window": {"rows": WINDOW_ROWS}}}})
    pipeline = ModelPipeline(MODEL, config.models[MODEL], Baseline.load(baseline))
    decoder = Decoder(["native"], max_record_bytes=1 << 20, feature_order=lambda m: None,
                      endpoint_version=lambda m, e: None, known_models=lambda m: m == MODEL)
    return Service(config, {MODEL: pipeline}, Store(f"sqlite:///{directory / 'state.db'}"),
                   Metrics(CollectorRegistry()), decoder, None, _Letters(),
                   report_rows=ReportRows(5000, lambda job: True))


def run(polls: list[list[Any]], directory: Path, baseline: Path, batch: bool) -> float:
    service = _service(directory, baseline)
    reader, key = service.reader, (TOPIC, 0)
    started = time.process_time()  # CPU time: other processes on the machine count less
    for records in polls:
        runs = (reader.prediction_runs(key, records, 0) if batch
                else runs_of(reader.predictions(key, records, 0)))
        for (model, version), events in runs:
            service.feed.add_run(model, version, 0, events)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--poll", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    values = native_events(args.n, seed=1)
    stamp = 1_700_000_000_000 + 10 * args.n
    records = [ConsumerRecord(TOPIC, 0, 0, i, stamp, 0, None, v, [], None, -1, -1, -1)
               for i, v in enumerate(values)]
    polls = [records[i:i + args.poll] for i in range(0, len(records), args.poll)]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        baseline = baseline_file(directory, with_target=False)
        best = {False: float("inf"), True: float("inf")}
        for attempt in range(args.repeat):
            for batch in (False, True):
                target = directory / f"{attempt}-{batch}"
                target.mkdir()
                best[batch] = min(best[batch], run(polls, target, baseline, batch))
        for batch, seconds in best.items():
            name = "batch path     " if batch else "per-record path"
            print(f"{name}: {args.n} events in {seconds:.3f}s CPU = {args.n / seconds:,.0f} "
                  f"ev/s (decode + windows, poll {args.poll}, best of {args.repeat})")


if __name__ == "__main__":
    main()
