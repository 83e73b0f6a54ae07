"""Checkpoint size and cost: the JSON checkpoints of before against the packed MessagePack ones.

A 25-feature baseline (the service benchmark's: 20 numbers, 5 categories, plus the
prediction and the score, :func:`bench_kafka.native_events`), count windows of
5,000 rows, events decoded as the service decodes them. For open windows of several
fill levels it prints the bytes of one stream checkpoint as stored before (JSON,
format 1) and now (MessagePack with packed summaries, format 2), their ratio, and
the time to encode (checkpoint + serialise) and decode (parse + restore) one.

Then a run through the real :class:`monitor.stream.persist.Persister` on a SQLite
store: a stream fed in batches of ``--batch`` rows with a persist after each (the
service persists at least every 0.5 s under load); the checkpoint bytes per persist
(``driftloop_checkpoint_bytes``) against what the JSON format wrote for the same
states.

For comparison, two things that are *not* what the service stores: the bins' counts
alone (without the per-bin float sums, which Wasserstein needs exactly), and the
counts with the sums rounded to float32 (not exact). They show where the bytes go.

Run: ``python benchmarks/bench_checkpoint.py [--rows 5000] [--batch 1000]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
for path in (str(ROOT), str(ROOT / "benchmarks")):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench_kafka import MODEL, bench_decoder, native_events  # noqa: E402
from kafka.consumer.fetcher import ConsumerRecord  # noqa: E402

from detectors import pack_bins, wasserstein_norm  # noqa: E402
from monitor.baseline import Baseline, build_baseline  # noqa: E402
from monitor.config import ModelConfig, WindowConfig  # noqa: E402
from monitor.ingest import Prediction  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.store.engine import dumps_json, pack_state, unpack_state  # noqa: E402
from monitor.stream.partitions import Partitions  # noqa: E402
from monitor.stream.persist import Persister  # noqa: E402
from monitor.stream.pipeline import ModelPipeline  # noqa: E402

__all__ = ["main"]

TP = ("predictions", 0)


def baseline() -> Baseline:
    """The service benchmark's baseline (bench_service.baseline_file, without a target)."""
    rows = [orjson.loads(value) for value in native_events(20_000, seed=99)]
    frame = pd.DataFrame([row["features"] for row in rows])
    frame["prediction"] = [row["prediction"] for row in rows]
    frame["score"] = [row["score"] for row in rows]
    return build_baseline(frame, MODEL, prediction="prediction", score="score")


def decoded(n: int, seed: int) -> list[Prediction]:
    decode = bench_decoder().decode_prediction
    out: list[Prediction] = []
    for offset, value in enumerate(native_events(n, seed)):
        record = ConsumerRecord(TP[0], TP[1], 0, offset, 1_700_000_000_000 + 10 * offset, 0, None,
                                value, [], None, -1, -1, -1)
        out += decode(record)
    return out


def new_pipeline(base: Baseline, rows: int) -> ModelPipeline:
    config = ModelConfig(baseline="unused", window=WindowConfig.model_validate({"rows": rows}))
    return ModelPipeline(MODEL, config, base)


def median_ms(work: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def where_bytes_go(pipeline: ModelPipeline) -> tuple[int, int, int]:
    """Bytes of the open windows' numeric bins: as packed, counts alone, sums as float32."""
    packed = counts_only = float32 = 0
    for stream in pipeline.streams.values():
        for window in stream.open.values():
            for counts in window.summary.numeric.values():
                packed += len(pack_bins(counts.counts, counts.sums))
                counts_only += len(pack_bins(counts.counts))
                used = int(np.count_nonzero(counts.counts))
                float32 += len(pack_bins(counts.counts)) + 4 * used
    return packed, counts_only, float32


def w1_without_sums(pipeline: ModelPipeline, base: Baseline) -> float:
    """The largest change of a feature's normalised Wasserstein distance were the window's
    per-bin sums dropped (the reference's bin means used instead): what counts alone cost."""
    profiles = base.summary_profiles()
    worst = 0.0
    for stream in pipeline.streams.values():
        for window in stream.open.values():
            for name, counts in window.summary.numeric.items():
                profile = profiles[name]
                exact = wasserstein_norm(profile, profile.counts, counts)
                approx = wasserstein_norm(profile, profile.counts, replace(counts, sums=None))
                worst = max(worst, abs(exact - approx))
    return worst


def sizes(base: Baseline, events: list[Prediction], rows: int, fill: int,
          repeat: int) -> dict[str, float]:
    pipeline = new_pipeline(base, rows)
    pipeline.add_many("1", 0, events[:fill])
    stream = pipeline.streams[("1", 0)]
    old = dumps_json(stream.checkpoint(packed=False)).encode()
    new = pack_state(stream.checkpoint())
    spare = new_pipeline(base, rows).stream("1", 0)
    packed, counts_only, float32 = where_bytes_go(pipeline)
    return {
        "old": len(old), "new": len(new),
        "old_encode": median_ms(lambda: dumps_json(stream.checkpoint(packed=False)), repeat),
        "new_encode": median_ms(lambda: pack_state(stream.checkpoint()), repeat),
        "old_decode": median_ms(lambda: spare.restore(orjson.loads(old)), repeat),
        "new_decode": median_ms(lambda: spare.restore(unpack_state(new)), repeat),
        "bins": packed, "counts_only": counts_only, "float32": float32,
        "w1_change": w1_without_sums(pipeline, base),
    }


def per_persist(base: Baseline, events: list[Prediction], rows: int,
                batch: int) -> tuple[list[int], list[int]]:
    """Checkpoint bytes of each persist (new), and what JSON would have written (old)."""
    with tempfile.TemporaryDirectory() as directory:
        store = Store(f"sqlite:///{Path(directory) / 'state.db'}")
        pipeline = new_pipeline(base, rows)
        persister = Persister(store, {MODEL: pipeline}, "bench", time.monotonic)
        partitions = Partitions()
        partitions.epochs = store.take_partitions("bench", {TP}, "bench")
        partitions.owned = {TP}
        new, old = [], []
        for start in range(0, len(events), batch):
            chunk = events[start:start + batch]
            pipeline.add_many("1", 0, chunk)
            partitions.advance(TP, chunk[-1].offset + 1)
            stream = pipeline.streams[("1", 0)]
            json_bytes = len(dumps_json(stream.checkpoint(packed=False)))
            json_bytes += sum(len(dumps_json(mark.to_dict())) for mark in
                              partitions.marks().values())
            persisted = persister.write(partitions, dict(partitions.processed), False)
            new.append(persisted.checkpoint_bytes)
            old.append(json_bytes)
        return new, old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="rows per count window")
    parser.add_argument("--batch", type=int, default=1000,
                        help="rows between two persists in the persister run")
    parser.add_argument("--repeat", type=int, default=15, help="timing repeats (median)")
    args = parser.parse_args(argv)

    base = baseline()
    numeric = sum(1 for p in base.summary_profiles().values() if p.kind == "numeric")
    events = decoded(4 * args.rows, seed=7)
    print(f"baseline: {len(base.summary_profiles())} profiled columns ({numeric} numeric, "
          f"fine bins up to 1000 each); count windows of {args.rows} rows")
    for fill in (args.rows // 10, args.rows // 2, args.rows - 1):
        s = sizes(base, events, args.rows, fill, args.repeat)
        print(f"open window of {fill:5d} rows: JSON {s['old']:8,d} B  packed {s['new']:8,d} B  "
              f"ratio {s['old'] / s['new']:5.2f}x | encode {s['old_encode']:6.2f} -> "
              f"{s['new_encode']:6.2f} ms  decode {s['old_decode']:6.2f} -> "
              f"{s['new_decode']:6.2f} ms")
        print(f"    numeric bins {s['bins']:8,d} B of which float64 sums "
              f"{s['bins'] - s['counts_only']:8,d} B; not stored, for comparison: counts "
              f"alone {s['counts_only']:7,d} B (ratio {s['old'] / (s['new'] - s['bins'] + s['counts_only']):5.1f}x), "  # noqa: E501
              f"sums as float32 {s['float32']:7,d} B (ratio "
              f"{s['old'] / (s['new'] - s['bins'] + s['float32']):4.1f}x); without sums a "
              f"feature's Wasserstein (norm.) would move by up to {s['w1_change']:.1e}")
    new, old = per_persist(base, events, args.rows, args.batch)
    print(f"persister, a persist every {args.batch} rows ({len(new)} persists): checkpoint "
          f"bytes per persist JSON mean {statistics.mean(old):9,.0f} B, packed mean "
          f"{statistics.mean(new):9,.0f} B (max {max(new):,d}), ratio "
          f"{sum(old) / sum(new):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
