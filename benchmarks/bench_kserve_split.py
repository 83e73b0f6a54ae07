"""What ``kafka.kserve_split`` costs: one replica with the split on against one without.

With the split (issue 15), a replica does not pair the KServe halves it reads: it
forwards each to the internal ``<group_id>-kserve`` topic (keyed by CloudEvents id,
flushed before the persist that moves the source offsets) and pairs what it reads from
that topic's partitions, dropping copies by their source offsets. One replica pays both
sides of that: a produce and a read more per half. The same KServe records
(:func:`service_events.kserve_records`, binary-mode V1 calls, one partition) are read
``--repeat`` times by ``driftloop serve`` without and with the split, alternately,
timed as :mod:`bench_service` times the service (from its first persist to its last one
while records were still coming, on the offsets it stores: with the split they count
the forwarded records too, two per event instead of one per half).

Reported per side: events per second (a pair is one event), CPU per event (every thread
of the service), peak RSS, and the ratio split / plain of each (median over the pairs of
runs). Several replicas, where the split is needed, share this cost; this is its price
on one.

Run: ``python benchmarks/bench_kserve_split.py [--n 100000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_service import SETTINGS, Run, prepare, run_service  # noqa: E402

from tests.support.procs import start_tansu  # noqa: E402

PLAIN = SETTINGS["kserve"]
# forwarded halves are stored offsets too: a call is 2 records read + 2 forwarded
SPLIT = dataclasses.replace(PLAIN, name="kserve-split",
                            events_per_record=PLAIN.events_per_record / 2,
                            kafka={"kserve_split": True})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="KServe calls (2 records each)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.n < 20_000 or args.repeat < 1:
        parser.error("--n must be at least 20000 (a few persists to time) and --repeat >= 1")
    return args


def line(name: str, runs: list[Run]) -> str:
    return (f"{name:<14} {statistics.median(r.rate for r in runs) / 1000:>7.1f}k ev/s "
            f"{statistics.median(r.cpu_us for r in runs):>8.1f} µs/ev "
            f"{statistics.median(r.peak_mb for r in runs):>7.0f} MB")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plain: list[Run] = []
    split: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        broker = start_tansu(directory)
        try:
            bootstrap = f"127.0.0.1:{broker.port}"
            records = prepare(bootstrap, [PLAIN], args.n)[PLAIN.topic]
            for attempt in range(args.repeat):
                plain.append(run_service(directory, bootstrap, PLAIN, records,
                                         f"plain-{attempt}")[0])
                split.append(run_service(directory, bootstrap, SPLIT, 2 * records,
                                         f"split-{attempt}")[0])
                print(f"  #{attempt + 1}: without {plain[-1].rate / 1000:.1f}k ev/s "
                      f"({plain[-1].cpu_us:.1f} µs/ev), with the split "
                      f"{split[-1].rate / 1000:.1f}k ev/s ({split[-1].cpu_us:.1f} µs/ev)",
                      flush=True)
        finally:
            broker.stop()
    rate = statistics.median(s.rate / p.rate for s, p in zip(split, plain, strict=True))
    cpu = statistics.median(s.cpu_us / p.cpu_us for s, p in zip(split, plain, strict=True))
    print(f"one replica, {args.n // 1000}k KServe calls, median of {args.repeat}")
    print(line("without split", plain))
    print(line("with split", split))
    print(f"with / without: rate {rate:.0%}, CPU per event {cpu:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
