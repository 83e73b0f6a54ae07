"""Scale-out (issue 15): ``driftloop serve`` with 1, 2 and 3 replicas and ``kafka.partials`` on.

One Tansu broker started for the run; a 6-partition predictions topic pre-produced with
``--n`` native events of two models (``bench`` and ``bench_b``), event times 10 ms apart,
in blocks of ``--run-length`` (500) consecutive events of one model on one partition, round
the partitions, a partition's blocks alternating the models (:func:`placement`): every model
on every partition. Event-time windows of 60 s with 10 s allowed lateness: a model's
window holds 3,000 events, 500 per partition, and one closes every 6,000 events. The
service handles a partition's consecutive events of one model as one run
(``monitor.stream.records.runs_of``); ``--run-length 1`` (the models alternate record by
record, as when producers key by request id) makes every run one event long. For each
replica count R (``--replicas``, default 1,2,3; ``--repeat`` times each) a fresh
PostgreSQL database (127.0.0.1:5432, user postgres; dropped afterwards) and a new
consumer group read the whole topic: R ``driftloop serve`` processes started together.
Each replica publishes a partial summary per (model, version, partition, window) to the
group's partials topic and the replica owning the model's partials partition merges them.

Figures per R:

- rate: events per second between two persists of the store's ``consumer_offsets`` of the
  predictions topic (each stamped by the replica that wrote it, summed over the
  partitions; :mod:`benchmarks.service_probe`), from the first persist after the group
  settled (R members holding predictions partitions in ``partition_owners``) to the last
  one while records were still coming. Start-up and the join rebalances are left out; the
  rate from the first persist of all is reported too (``whole``).
- per replica and efficiency: rate / R, and rate(R) / (R * rate(1)) against the median
  rate of one replica in the same invocation.
- CPU per event: utime + stime of every replica (``/proc/<pid>/stat``), summed, over the
  timed span, per event. With 2 cores, R replicas can use at most 2 of them between
  them, and the broker and PostgreSQL share the same cores.
- peak RSS: VmHWM per replica, the largest of the R.
- partial bytes: every record of the partials topic read back after the run (value
  bytes, MessagePack): median and largest per window partial and per heartbeat, and all
  partials' bytes per 1,000 events.
- added latency, per merged window of the owner (``windows`` rows ``m:<index>``): its
  ``updated_at_ms`` (the owner's persist that stored the result) minus the time the last
  source partition published its partial of that window (the Kafka record timestamp,
  set by the source replica's producer at send; the first copy of each partial). A
  source partition publishes a window's partial when its watermark passes the window's
  end plus the allowed lateness, which is when one replica without partials would have
  evaluated it; so this is the time the merge adds: the flush before the source's
  persist, the owner's poll of the partials topic, the merge, evaluation and the owner's
  next persist. Median, 90th percentile and largest over the windows. Measured while the
  replicas work through a backlog at full CPU: the owner reads partials between batches
  of its own predictions partitions, so live traffic below capacity would see less.

``--no-partials`` runs the same replicas with ``kafka.partials`` off (windows per
(model, version, partition), nothing merged): what the partials cost.

Run: ``python benchmarks/bench_replicas.py [--n 200000] [--repeat 1] [--replicas 1,2,3]
[--no-partials]``.
Figures taken on a machine shared with other work vary from run to run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import yaml
from kafka import TopicPartition
from psycopg import sql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench_kafka import MODEL, native_events  # noqa: E402
from bench_service import DRIFTLOOP, baseline_file  # noqa: E402
from service_probe import cpu_seconds, persist_points, span, status_kb, wait_until  # noqa: E402

from monitor.config import KafkaConfig  # noqa: E402
from monitor.ingest.clients import ensure_topics, make_consumer, make_producer  # noqa: E402
from monitor.stream.partials import Partial  # noqa: E402
from tests.support.procs import Managed, free_port, start_tansu  # noqa: E402

__all__ = ["Run", "added_latency", "efficiency", "main", "parse_args", "percentile",
           "placement"]

MODELS = (MODEL, f"{MODEL}_b")  # owner partitions 1 and 5 of 6: two owners can differ
PARTITIONS = 6
TOPIC = "bench-replicas"
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
WINDOW = {"duration": "60s", "allowed_lateness": "10s"}


def placement(i: int, run_length: int) -> tuple[int, int]:
    """(model, partition) of event ``i``: blocks of ``run_length`` consecutive events go to
    one partition, round the partitions, and a partition's blocks alternate the models, so
    every model is on every partition in runs of ``run_length``."""
    block = i // run_length
    return (block // PARTITIONS) % len(MODELS), block % PARTITIONS


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def efficiency(rate: float, replicas: int, single: float) -> float:
    """rate(R) / (R * rate(1)): 1.0 is linear scaling."""
    return rate / (replicas * single)


@dataclass
class Run:
    replicas: int
    rate: float  # events per second, the settled span
    whole: float  # events per second from the first persist of all
    cpu_us: float  # CPU microseconds per event, all replicas
    peak_mb: float  # the largest replica's VmHWM
    owners: int  # replicas that own a model's partials partition
    windows: int  # merged windows stored
    latency: list[float]  # seconds per merged window
    partial_sizes: list[int]
    heartbeat_sizes: list[int]
    partial_bytes: int  # all records of the partials topic, value bytes
    events: int  # produced, both models
    note: str = ""


def produce(bootstrap: str, n: int, run_length: int) -> None:
    ensure_topics(bootstrap, [TOPIC, f"{TOPIC}-labels", f"{TOPIC}-dlq"], partitions=PARTITIONS)
    producer = make_producer(KafkaConfig(bootstrap_servers=[bootstrap]), acks=1, linger_ms=20,
                             batch_size=1024 * 1024)
    other = f'"model":"{MODELS[1]}"'.encode()
    try:
        for i, value in enumerate(native_events(n, seed=0)):
            model, partition = placement(i, run_length)
            if model:
                value = value.replace(f'"model":"{MODEL}"'.encode(), other, 1)
            producer.send(TOPIC, value=value, partition=partition)
        producer.flush()
    finally:
        producer.close()


class PgSampler:
    """Reads the progress of ``group`` on the predictions topic from PostgreSQL every
    ``interval`` seconds, with the replicas' CPU, and when R members first held
    predictions partitions (the group settled)."""

    def __init__(self, dsn: str, group: str, procs: list[Managed], interval: float = 0.1):
        self.dsn, self.group, self.procs, self.interval = dsn, group, procs, interval
        self.samples: list[tuple[int, int, float, int]] = []
        self.settled_ms: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PgSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def records(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as db:
            while not self._stop.wait(self.interval):
                try:
                    self._read(db)
                except psycopg.errors.UndefinedTable:  # not created yet
                    continue

    def _read(self, db: psycopg.Connection[Any]) -> None:
        cpu = sum(cpu_seconds(p.pid) for p in self.procs if p.alive())
        at_ms, records = db.execute(
            "SELECT max(updated_at_ms), sum(next_offset) FROM consumer_offsets "
            "WHERE group_id = %s AND topic = %s", (self.group, TOPIC)).fetchone() or (None, 0)
        if self.settled_ms is None:
            (members,) = db.execute(
                "SELECT count(DISTINCT owner) FROM partition_owners "
                "WHERE group_id = %s AND topic = %s", (self.group, TOPIC)).fetchone() or (0,)
            if members >= len(self.procs):
                self.settled_ms = int(time.time() * 1000)
        if at_ms is not None:
            self.samples.append((int(at_ms), int(records), cpu, 0))


def read_partials(bootstrap: str, topic: str) -> list[tuple[Partial, int, int]]:
    """Every record of the partials topic: (partial, value bytes, record timestamp ms)."""
    consumer = make_consumer(KafkaConfig(bootstrap_servers=[bootstrap]), group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(parts)
        out: list[tuple[Partial, int, int]] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(p) < ends[p] for p in parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"partials topic {topic}: not read to its end in 60 s")
            for batch in consumer.poll(timeout_ms=500).values():
                out += [(Partial.decode(r.value), len(r.value), r.timestamp) for r in batch]
        return out
    finally:
        consumer.close()


def added_latency(partials: list[tuple[Partial, int, int]],
                  stored: dict[tuple[str, int], int]) -> list[float]:
    """Seconds from the last source partition's partial of each merged window (the first
    copy of each) to the owner's stored result."""
    first: dict[tuple[str, str, int, int | None], int] = {}
    for partial, _, at_ms in partials:
        if partial.index is not None:
            first[partial.identity] = min(at_ms, first.get(partial.identity, at_ms))
    ready: dict[tuple[str, int], int] = defaultdict(int)
    for (model, _, _, index), at_ms in first.items():
        assert index is not None
        ready[(model, index)] = max(ready[(model, index)], at_ms)
    return [(stored_ms - ready[key]) / 1000 for key, stored_ms in stored.items()
            if key in ready]


def merged_windows(dsn: str) -> dict[tuple[str, int], int]:
    with psycopg.connect(dsn) as db:
        rows = db.execute("SELECT model, window_index, updated_at_ms FROM windows "
                          "WHERE window_key LIKE 'm:%'").fetchall()
    return {(model, int(index)): int(at) for model, index, at in rows}


def model_owners(dsn: str, group: str) -> int:
    """Distinct replicas holding a model's partition of the partials topic."""
    from monitor.stream.partials import owner_partition

    mine = [owner_partition(m, PARTITIONS) for m in MODELS]
    with psycopg.connect(dsn) as db:
        rows = db.execute("SELECT DISTINCT owner FROM partition_owners WHERE group_id = %s "
                          "AND topic = %s AND partition = ANY(%s)",
                          (group, f"{group}-partials", mine)).fetchall()
    return len(rows)


def config_for(directory: Path, bootstrap: str, group: str, state_url: str, tag: str,
               partials: bool = True) -> Path:
    baseline = str(baseline_file(directory, False))
    config = {
        "kafka": {"bootstrap_servers": [bootstrap], "group_id": group,
                  "predictions_topic": TOPIC, "labels_topic": f"{TOPIC}-labels",
                  "dead_letter_topic": f"{TOPIC}-dlq", "partials": partials,
                  "partials_partitions": PARTITIONS},
        "state": {"url": state_url},
        "server": {"host": "127.0.0.1", "port": free_port(), "auth_token_env": None},
        "reports": {"dir": str(directory / f"reports-{tag}")},
        "models": {m: {"baseline": baseline, "window": WINDOW, "retrain": {"on": []}}
                   for m in MODELS},
    }
    path = directory / f"driftloop-{tag}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_replicas(directory: Path, bootstrap: str, replicas: int, total: int,
                 partials_on: bool = True) -> Run:
    tag = f"r{replicas}-{uuid.uuid4().hex[:6]}"
    database, group = f"bench_{uuid.uuid4().hex[:12]}", f"bench-{tag}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={database}"
    state_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP")}
    procs: list[Managed] = []
    try:
        for i in range(replicas):
            path = config_for(directory, bootstrap, group, state_url, f"{tag}-{i}",
                              partials_on)
            port = int(yaml.safe_load(path.read_text())["server"]["port"])
            procs.append(Managed(f"driftloop-{tag}-{i}",
                                 [str(DRIFTLOOP), "serve", "--config", str(path)],
                                 directory / f"driftloop-{tag}-{i}.log", port, env=env).start())
        with PgSampler(dsn, group, procs) as sampler:
            wait_until(lambda: sampler.records() >= total, 900, f"{replicas} replicas",
                       lambda: all(p.alive() for p in procs))
            # the owner merges the windows the last partials closed: until none come for 3 s
            count, steady = -1, time.monotonic()
            while time.monotonic() - steady < 3 and time.monotonic() - steady < 30:
                now = len(merged_windows(dsn))
                if now != count:
                    count, steady = now, time.monotonic()
                time.sleep(0.5)
        peak_kb = max(status_kb(p.pid, "VmHWM") for p in procs)
        owners = model_owners(dsn, group)
        stored = merged_windows(dsn)
    except Exception:
        for p in procs:
            print(f"--- {p.name}\n{p.log_tail()}", file=sys.stderr)
        raise
    finally:
        for p in procs:
            p.stop()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)))
    points = persist_points(sampler.samples)
    first_all, last, _ = span(points, total)
    settled = [p for p in points if sampler.settled_ms is not None
               and p.at * 1000 >= sampler.settled_ms]
    note = ""
    try:
        first, last, exact = span(settled, total)
        if not exact:
            note = "timed to the last persist (too few points after settling); "
    except RuntimeError:
        first, note = first_all, "timed from the first persist (the group settled late); "
    records = last.records - first.records
    partials = read_partials(bootstrap, f"{group}-partials") if partials_on else []
    return Run(
        replicas, records / (last.at - first.at),
        (last.records - first_all.records) / (last.at - first_all.at),
        (last.cpu - first.cpu) / records * 1e6, peak_kb / 1024, owners, len(stored),
        added_latency(partials, stored),
        [size for p, size, _ in partials if p.index is not None],
        [size for p, size, _ in partials if p.index is None],
        sum(size for _, size, _ in partials), total,
        note + f"timed over {records} events, settled {first.records} events in")


HEADER = (f"{'R':>2} {'ev/s':>8} {'whole':>8} {'ev/s/rep':>9} {'eff':>5} {'cpu µs/ev':>10} "
          f"{'RSS MB':>7} {'own':>4} {'win':>4} {'latency s p50/p90/max':>22} "
          f"{'partial B med/max':>18} {'heartbeat B med/max':>20} {'B/1k ev':>8}")


def line(run: Run, single: float) -> str:
    """One row of the table; ``single``: the rate of one replica."""
    lat = run.latency
    latency = (f"{statistics.median(lat):.2f}/{percentile(lat, 90):.2f}/{max(lat):.2f}"
               if lat else "-")
    partial = (f"{statistics.median(run.partial_sizes):.0f}/{max(run.partial_sizes)}"
               if run.partial_sizes else "-")
    heartbeat = (f"{statistics.median(run.heartbeat_sizes):.0f}/{max(run.heartbeat_sizes)}"
                 if run.heartbeat_sizes else "-")
    return (f"{run.replicas:>2} {run.rate:8.0f} {run.whole:8.0f} {run.rate / run.replicas:9.0f} "
            f"{efficiency(run.rate, run.replicas, single):5.0%} {run.cpu_us:10.1f} "
            f"{run.peak_mb:7.0f} {run.owners:>4} {run.windows:>4} {latency:>22} "
            f"{partial:>18} {heartbeat:>20} {run.partial_bytes / run.events * 1000:8.0f}")


def summary(run: Run, single: float) -> str:
    merged = (f"{len(run.latency)} merged windows, added latency median "
              f"{statistics.median(run.latency):.2f} s" if run.latency else "nothing merged")
    return (f"R={run.replicas}: {run.rate / 1000:.1f}k ev/s, "
            f"{run.rate / run.replicas / 1000:.1f}k per replica, efficiency "
            f"{efficiency(run.rate, run.replicas, single):.0%}, {run.cpu_us:.0f} µs CPU/event, "
            f"{merged}; {run.note}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="events, both models")
    parser.add_argument("--repeat", type=int, default=1, help="runs per replica count")
    parser.add_argument("--replicas", default="1,2,3", help="comma-separated replica counts")
    parser.add_argument("--run-length", type=int, default=500,
                        help="consecutive events of one model on a partition (1: the models "
                        "alternate record by record)")
    parser.add_argument("--partials", action=argparse.BooleanOptionalAction, default=True,
                        help="kafka.partials (off: windows per partition, for comparison)")
    args = parser.parse_args(argv)
    args.replicas = [int(r) for r in args.replicas.split(",") if r.strip()]
    if args.n < 20_000 or args.repeat < 1 or args.run_length < 1 or not args.replicas \
            or min(args.replicas) < 1:
        parser.error("--n must be at least 20000 (a few persists to time), --repeat and "
                     "--run-length at least 1 and --replicas positive counts")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs: dict[int, list[Run]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        broker = start_tansu(directory)
        try:
            bootstrap = f"127.0.0.1:{broker.port}"
            started = time.perf_counter()
            produce(bootstrap, args.n, args.run_length)
            print(f"produced {args.n} events to {PARTITIONS} partitions in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            for _ in range(args.repeat):
                for replicas in args.replicas:
                    run = run_replicas(directory, bootstrap, replicas, args.n, args.partials)
                    runs[replicas].append(run)
                    print(f"R={replicas}: {run.rate:.0f} ev/s, {run.note}", flush=True)
        finally:
            broker.stop()
    # efficiency against one replica; without a run of one, the fewest replicas' rate per
    # replica stands in for it
    fewest = min(runs)
    single = statistics.median(r.rate for r in runs[fewest]) / fewest
    print(HEADER)
    for replicas in sorted(runs):
        for run in runs[replicas]:
            print(line(run, single))
    for replicas in sorted(runs):
        for run in runs[replicas]:
            print(summary(run, single))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
