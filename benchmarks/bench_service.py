"""End-to-end throughput and memory of ``driftloop serve`` against a plain kafka-python loop.

Throughput: ``n`` native events (25 features, :mod:`benchmarks.bench_kafka`) are
pre-produced to a one-partition topic of a Tansu broker started for the run; a
plain kafka-python loop reads them (the reference), then ``driftloop serve`` (a
subprocess, count windows of 5000 rows, SQLite state store) consumes the same
topic. The service's rate is measured from its first persisted window to its last
(the ``updated_at_ms`` of the window rows in the state store, so polling the
service does not slow it down), which leaves out start-up and the group join.
Two configurations: a baseline without a target (no realized performance, so no
label-join state) and one with a target (every prediction is kept for the label
join in the state store).

Memory: the service consumes a topic fed at a steady rate for ``--sustain-seconds``
while its resident set size (``/proc/<pid>/status`` VmRSS) is sampled every
few seconds; the slope over the second half of the run must be about zero.

Run: ``python benchmarks/bench_service.py [--n 200000] [--sustain-seconds 180]``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
for path in (str(ROOT), str(ROOT / "benchmarks")):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench_kafka import MODEL, native_events, plain_consume_rate, produce_native_events  # noqa: E402

from monitor.baseline import build_baseline  # noqa: E402
from monitor.config import KafkaConfig  # noqa: E402
from monitor.ingest.clients import ensure_topics, make_producer  # noqa: E402
from tests.support.procs import Managed, free_port, start_tansu, wait_for  # noqa: E402

__all__ = ["main", "service_rate", "sustained_rss"]

WINDOW_ROWS = 5000
DRIFTLOOP = Path(sys.executable).with_name("driftloop")


def baseline_file(directory: Path, with_target: bool) -> Path:
    """A baseline of the 25 benchmark features, from events like the benchmark's."""
    rows = [orjson.loads(value) for value in native_events(20_000, seed=99)]
    frame = pd.DataFrame([row["features"] for row in rows])
    frame["prediction"] = [row["prediction"] for row in rows]
    frame["score"] = [row["score"] for row in rows]
    target = None
    if with_target:
        flip = np.random.default_rng(5).random(len(frame)) < 0.1
        frame["label"] = np.where(flip, 1 - frame["prediction"], frame["prediction"])
        target = "label"
    baseline = build_baseline(frame, MODEL, target=target, prediction="prediction",
                              score="score")
    return baseline.save(directory / f"baseline-{'target' if with_target else 'plain'}.json")


def start_service(directory: Path, bootstrap: str, topic: str, baseline: Path,
                  tag: str, poll_max_records: int | None = None) -> tuple[Managed, Path]:
    state = directory / f"state-{tag}.db"
    port = free_port()
    config = {
        "kafka": {"bootstrap_servers": [bootstrap],
                  "group_id": f"bench-{tag}-{uuid.uuid4().hex[:6]}",
                  "predictions_topic": topic, "labels_topic": f"{topic}-labels",
                  "dead_letter_topic": f"{topic}-dlq",
                  **({"poll_max_records": poll_max_records} if poll_max_records else {})},
        "state": {"url": f"sqlite:///{state}"},
        "server": {"port": port, "auth_token_env": None},
        "models": {MODEL: {"baseline": str(baseline), "window": {"rows": WINDOW_ROWS},
                           "retrain": {"on": []}}},
    }
    path = directory / f"driftloop-{tag}.yaml"
    path.write_text(yaml.safe_dump(config))
    ensure_topics(bootstrap, [f"{topic}-labels", f"{topic}-dlq"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP")}
    proc = Managed(f"driftloop-{tag}", [str(DRIFTLOOP), "serve", "--config", str(path)],
                   directory / f"driftloop-{tag}.log", port, env=env).start()
    return proc, state


def window_times(state: Path) -> list[tuple[int, int]]:
    """(rows, persisted at ms) of every window, in persist order."""
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5) as db:
            found = db.execute("SELECT result, updated_at_ms FROM windows ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    return [(int(orjson.loads(result)["rows"]), int(at)) for result, at in found]


def service_rate(directory: Path, bootstrap: str, topic: str, n: int, baseline: Path,
                 tag: str, poll_max_records: int | None = None) -> float:
    proc, state = start_service(directory, bootstrap, topic, baseline, tag, poll_max_records)
    try:
        wait_for(lambda: len(window_times(state)) >= n // WINDOW_ROWS, 600,
                 f"driftloop serve ({tag}) windows", proc)
    finally:
        proc.stop()
    times = window_times(state)
    first = times[0][1]
    # windows are written in batches: count those written after the first batch
    rows = sum(r for r, at in times if at > first)
    elapsed = (times[-1][1] - first) / 1000
    return rows / elapsed


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def sustained_rss(directory: Path, bootstrap: str, baseline: Path, seconds: float,
                  rate: int) -> list[tuple[float, float]]:
    """(seconds since start, RSS MB) samples while ``rate`` events/s are produced."""
    topic = f"sustain-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, [topic])
    proc, state = start_service(directory, bootstrap, topic, baseline, "sustain")
    stop = threading.Event()

    def feed() -> None:
        producer = make_producer(KafkaConfig(bootstrap_servers=[bootstrap]), acks=1)
        chunk, seed, started = rate // 10, 1000, time.monotonic()
        sent = 0
        try:
            while not stop.is_set():
                for value in native_events(chunk, seed):
                    producer.send(topic, value=value, partition=0)
                sent += chunk
                seed += 1
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    stop.wait(ahead)
        finally:
            producer.flush()
            producer.close()

    feeder = threading.Thread(target=feed, daemon=True)
    samples: list[tuple[float, float]] = []
    try:
        feeder.start()
        # sample from the first window on: start-up (imports, the group join) is not the run
        wait_for(lambda: len(window_times(state)) >= 1, 120, "a first window", proc)
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            samples.append((time.monotonic() - started, rss_mb(proc.pid)))
            time.sleep(5)
            if not proc.alive():
                raise RuntimeError(f"service exited:\n{proc.log_tail()}")
    finally:
        stop.set()
        feeder.join(30)
        proc.stop()
    return samples


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    t = np.array([s[0] for s in samples])
    m = np.array([s[1] for s in samples])
    return float(np.polyfit(t, m, 1)[0] * 60) if len(samples) > 2 else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--sustain-seconds", type=float, default=180.0)
    parser.add_argument("--sustain-rate", type=int, default=5000, help="events per second")
    parser.add_argument("--repeat", type=int, default=2, help="service runs per setting")
    parser.add_argument("--poll-max-records", type=int, default=None,
                        help="kafka.poll_max_records of the service (default: the config's)")
    args, _ = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        broker = start_tansu(directory)
        try:
            bootstrap = f"127.0.0.1:{broker.port}"
            if args.n > 0:
                throughput(directory, bootstrap, args.n, args.repeat, args.poll_max_records)
            if args.sustain_seconds > 0:
                memory(directory, bootstrap, args.sustain_seconds, args.sustain_rate)
        finally:
            broker.stop()
    return 0


def throughput(directory: Path, bootstrap: str, n: int, repeat: int,
               poll_max_records: int | None) -> None:
    topic = "bench-service"
    produce_native_events(bootstrap, topic, n, seed=0)
    # interleaved, best of several: other work on the machine slows single runs
    plain = plain_consume_rate(bootstrap, topic, n)
    results: dict[str, float] = {}
    for tag, with_target in (("no-labels", False), ("labels", True)):
        baseline = baseline_file(directory, with_target)
        for attempt in range(repeat):
            rate = service_rate(directory, bootstrap, topic, n, baseline, f"{tag}-{attempt}",
                                poll_max_records)
            results[tag] = max(results.get(tag, 0.0), rate)
            plain = max(plain, plain_consume_rate(bootstrap, topic, n))
    setting = poll_max_records or "default"
    for tag, rate in results.items():
        print(f"service {n // 1000}k ({tag}, poll_max_records {setting}): driftloop "
              f"{rate / 1000:.0f}k ev/s vs plain kafka-python {plain / 1000:.0f}k ev/s "
              f"-> {rate / plain:.0%}", flush=True)


def memory(directory: Path, bootstrap: str, seconds: float, rate: int) -> None:
    baseline = baseline_file(directory, with_target=True)
    samples = sustained_rss(directory, bootstrap, baseline, seconds, rate)
    rss = [m for _, m in samples]
    half = samples[len(samples) // 2:]
    print("service rss samples (s, MB): " + ", ".join(
        f"{t:.0f} {m:.0f}" for t, m in samples[::max(1, len(samples) // 12)]), flush=True)
    print(f"service rss over {seconds:.0f}s at {rate} ev/s (labels configured): "
          f"start {rss[0]:.0f} MB, end {rss[-1]:.0f} MB, max {max(rss):.0f} MB; "
          f"slope {slope_mb_per_min(samples):+.2f} MB/min "
          f"(second half {slope_mb_per_min(half):+.2f} MB/min)", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
