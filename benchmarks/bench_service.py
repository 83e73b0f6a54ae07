"""``driftloop serve`` against the client's ceiling, on the same records, timed the same way.

For each setting the same records are pre-produced to one-partition topics of a Tansu
broker started for the run, then read ``--repeat`` times by each side, alternately:

- the service: ``driftloop serve`` (a subprocess, SQLite state store, default settings
  but the window and formats of the setting);
- the reference: ``benchmarks/reference_loop.py`` (a subprocess too): kafka-python with
  the service's consumer settings, orjson into per-column numpy buffers.

Same span: the service stamps each persist with the records it has processed
(``consumer_offsets`` in its store; :mod:`benchmarks.service_probe`). Its rate runs
from its first persist to its last one while records were still coming, and the
reference's rate is taken over exactly the same records (its progress after each
batch, interpolated). Start-up (process start to the first record, extrapolated back
from the first persist at the measured rate) is reported apart. Events are counted as
``driftloop_events_total`` counts them: predictions and labels; a KServe
request/response pair is one event.

Settings: count windows of 5000 without a target (no labels); the same with a target
and a labels topic where the label of prediction ``i`` is produced after prediction
``i + 1000`` (the reference decodes both topics; which topic the consumer's fetches
serve first is kafka-python's choice, on both sides); event-time windows (60 s,
10 s allowed lateness, events 10 ms apart); KServe CloudEvents (binary mode, V1).

The ratio is the median over the repetitions of each service run's rate against the
reference run right after it (the pair shares the machine's conditions); the target
lines (PASS/FAIL) are about it. Also: CPU per event (service: utime + stime from
``/proc/<pid>/stat``, every thread; reference: ``time.process_time``), both over the
timed span, and their ratio, which other work on the machine disturbs less than wall
time; peak RSS (VmHWM of each process, whole runs); checkpoint bytes per persist (state
bytes of the checkpoint rows each persist wrote over the timed span: the median, the mean
and the largest persist, and the bytes written per second; with snapshots every
``kafka.snapshot_interval_seconds`` most persists write a few hundred bytes and a few
write every stream, so the median alone would flatter; the largest persist's rows are
listed per run). Persists the store sampler did not see (two within 0.1 s) are missing
from these figures.

Run: ``python benchmarks/bench_service.py [--n 100000] [--repeat 3] [--settings a,b]``.
Figures taken on a machine shared with other work vary from run to run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench_kafka import MODEL, native_events  # noqa: E402
from service_events import (  # noqa: E402
    LABELS,
    PREDICTIONS,
    Outgoing,
    kserve_records,
    labelled_stream,
    produce,
)
from service_probe import (  # noqa: E402
    PersistPoint,
    StoreSampler,
    persist_points,
    span,
    status_kb,
    time_at,
    wait_until,
)

from monitor.baseline import build_baseline  # noqa: E402
from monitor.config import KafkaConfig  # noqa: E402
from monitor.ingest.clients import ensure_topics, make_producer  # noqa: E402
from tests.support.procs import Managed, free_port, start_tansu  # noqa: E402

__all__ = ["SETTINGS", "Setting", "main", "parse_args", "verdict"]

DRIFTLOOP = Path(sys.executable).with_name("driftloop")
LABEL_LAG = 1000


@dataclass(frozen=True)
class Setting:
    name: str
    topic: str
    target: float | None  # service rate / reference rate at least this
    window: dict[str, Any] = field(default_factory=lambda: {"rows": 5000})
    labels: bool = False
    kind: str = "native"  # or kserve
    events_per_record: float = 1.0  # per record counted in the store's offsets
    kafka: dict[str, Any] = field(default_factory=dict)  # more kafka.* keys of the service


SETTINGS = {s.name: s for s in (
    Setting("count", "bench-native", 0.80),
    Setting("labels", "bench-labelled", 0.65, labels=True),
    Setting("event-time", "bench-native", 0.70,
            window={"duration": "60s", "allowed_lateness": "10s"}),
    Setting("kserve", "bench-kserve", None, kind="kserve", events_per_record=0.5),
)}


@dataclass
class Run:
    rate: float  # events per second
    cpu_us: float  # CPU microseconds per event
    peak_mb: float
    startup: float | None = None
    checkpoint: Checkpoints | None = None
    note: str = ""


@dataclass(frozen=True)
class Checkpoints:
    """Checkpoint bytes of the persists of one timed span."""

    median: float
    mean: float
    largest: float
    per_second: float

    @classmethod
    def of(cls, points: list[PersistPoint]) -> Checkpoints:
        """The persists after the first point up to the last one (the span they were
        written in); the first point's bytes were written before the span began."""
        sizes = [p.checkpoint_bytes for p in points[1:]] or [points[0].checkpoint_bytes]
        seconds = points[-1].at - points[0].at
        return cls(statistics.median(sizes), statistics.mean(sizes), max(sizes),
                   sum(sizes) / seconds if seconds > 0 else 0.0)

    def line(self) -> str:
        return (f"{self.median / 1024:.1f}/{self.mean / 1024:.1f}/{self.largest / 1024:.1f} kB "
                f"{self.per_second / 1024:.1f} kB/s")


def verdict(ratio: float, target: float | None) -> str:
    if target is None:
        return "-"
    return "PASS" if ratio >= target else "FAIL"


def baseline_file(directory: Path, with_target: bool) -> Path:
    """A baseline of the 25 benchmark features, from events like the benchmark's."""
    path = directory / f"baseline-{'target' if with_target else 'plain'}.json"
    if path.exists():
        return path
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
    return baseline.save(path)


def prepare(bootstrap: str, settings: list[Setting], n: int) -> dict[str, int]:
    """Produce each setting's records once; returns records per topic."""
    producer = make_producer(KafkaConfig(bootstrap_servers=[bootstrap]), acks=1, linger_ms=20,
                             batch_size=1024 * 1024)
    sizes: dict[str, int] = {}
    try:
        for setting in settings:
            if setting.topic in sizes:
                continue
            topics = {PREDICTIONS: setting.topic, LABELS: f"{setting.topic}-labels"}
            ensure_topics(bootstrap, [*topics.values(), f"{setting.topic}-dlq"])
            if setting.kind == "kserve":
                records = kserve_records(n, seed=2)
            elif setting.labels:
                records = labelled_stream(native_events(n, seed=1), LABEL_LAG)
            else:
                records = [Outgoing(PREDICTIONS, v) for v in native_events(n, seed=0)]
            sizes[setting.topic] = produce(producer, topics, records)
        producer.flush()
    finally:
        producer.close()
    return sizes


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(f"{name}{{") or line.startswith(f"{name} "))


def run_service(directory: Path, bootstrap: str, setting: Setting, total: int,
                tag: str) -> tuple[Run, tuple[int, int]]:
    """One service run; returns it and the records (from, to) it was timed over."""
    group = f"bench-{tag}-{uuid.uuid4().hex[:6]}"
    state, port = directory / f"state-{tag}.db", free_port()
    config = {
        "kafka": {"bootstrap_servers": [bootstrap], "group_id": group,
                  "predictions_topic": setting.topic, "labels_topic": f"{setting.topic}-labels",
                  "dead_letter_topic": f"{setting.topic}-dlq",
                  "formats": ["kserve"] if setting.kind == "kserve" else ["native"],
                  **setting.kafka},
        "state": {"url": f"sqlite:///{state}"},
        "server": {"port": port, "auth_token_env": None},
        "models": {MODEL: {"baseline": str(baseline_file(directory, setting.labels)),
                           "window": setting.window, "retrain": {"on": []}}},
    }
    path = directory / f"driftloop-{tag}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP")}
    started = time.time()
    proc = Managed(f"driftloop-{tag}", [str(DRIFTLOOP), "serve", "--config", str(path)],
                   directory / f"driftloop-{tag}.log", port, env=env).start()
    note = ""
    try:
        with StoreSampler(state, group, proc.pid) as sampler:
            wait_until(lambda: sampler.latest()[1] >= total, 900, f"service {tag}", proc.alive)
        peak_kb = status_kb(proc.pid, "VmHWM")
        if setting.labels:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            note = f"joined {_metric(text, 'driftloop_label_joins_total'):.0f}; "
    except Exception:
        print(proc.log_tail(), file=sys.stderr)
        raise
    finally:
        proc.stop()
    points = persist_points(sampler.samples)
    first, last, exact = span(points, total)
    records = last.records - first.records
    rate = records / (last.at - first.at)
    if not exact:
        note += "timed to the last persist (too few points); "
    note += "largest persist " + ", ".join(
        f"{name} {size / 1024:.1f} kB" for name, size in
        sorted(sampler.largest.items(), key=lambda item: -item[1]))
    timed = [p for p in points if first.at <= p.at <= last.at]
    checkpoint = Checkpoints.of(timed)
    note += f"; checkpoints median/mean/largest {checkpoint.line()}"
    per_event = setting.events_per_record
    return Run(rate * per_event, (last.cpu - first.cpu) / records / per_event * 1e6,
               peak_kb / 1024, startup=first.at - first.records / rate - started,
               checkpoint=checkpoint, note=note.strip()), (first.records, last.records)


def run_reference(bootstrap: str, setting: Setting, total: int,
                  timed: tuple[int, int]) -> Run:
    argv = [sys.executable, str(HERE / "reference_loop.py"), "--bootstrap", bootstrap,
            "--topic", setting.topic, "--records", str(total), "--kind", setting.kind]
    if setting.labels:
        labels = f"{setting.topic}-labels"
        argv += ["--topic", labels, "--labels-topic", labels]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"reference loop failed:\n{done.stderr[-3000:]}")
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    points = [tuple(p) for p in result["points"]]
    (wall0, cpu0), (wall1, cpu1) = time_at(points, timed[0]), time_at(points, timed[1])
    records = timed[1] - timed[0]
    per_event = setting.events_per_record
    rows = result["rows"]
    return Run(records / (wall1 - wall0) * per_event, (cpu1 - cpu0) / records / per_event * 1e6,
               result["peak_rss_kb"] / 1024,
               note=" ".join(f"{k} {v}" for k, v in sorted(rows.items())))


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _median_checkpoints(runs: list[Checkpoints | None]) -> str:
    present = [r for r in runs if r is not None]
    if not present:
        return "-"
    return Checkpoints(*(statistics.median(getattr(r, name) for r in present)
                         for name in ("median", "mean", "largest", "per_second"))).line()


def report(setting: Setting, service: list[Run], reference: list[Run]) -> str:
    """One line: median rates, the median of the runs' ratios (each service run against the
    reference run right after it), CPU per event and its ratio, peak RSS, checkpoint bytes
    per persist and start-up."""
    svc, ref = statistics.median(r.rate for r in service), \
        statistics.median(r.rate for r in reference)
    ratio = statistics.median(s.rate / r.rate for s, r in zip(service, reference, strict=True))
    cpu_svc = statistics.median(r.cpu_us for r in service)
    cpu_ref = statistics.median(r.cpu_us for r in reference)
    target = f">={setting.target:.0%}" if setting.target is not None else "-"
    startup = _median([r.startup for r in service]) or 0.0
    ckpt = _median_checkpoints([r.checkpoint for r in service])
    cpu = f"{cpu_svc:.1f}/{cpu_ref:.1f} ({cpu_ref / cpu_svc:.0%})"
    rss = f"{max(r.peak_mb for r in service):.0f}/{max(r.peak_mb for r in reference):.0f}"
    return (f"{setting.name:<11} {svc / 1000:8.1f}k {ref / 1000:8.1f}k {ratio:6.0%} "
            f"{target:>6} {verdict(ratio, setting.target):>5} {cpu:>25} {rss:>15} "
            f"{ckpt:>30} {startup:7.1f} s")


HEADER = (f"{'setting':<11} {'svc ev/s':>9} {'ref ev/s':>9} {'ratio':>6} {'target':>6} "
          f"{'':>5} {'cpu µs/ev svc/ref (ratio)':>25} {'peak RSS MB s/r':>15} "
          f"{'ckpt/persist med/mean/max, per s':>32} {'start-up':>9}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="predictions per setting")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side per setting")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"comma-separated, of {', '.join(SETTINGS)}")
    args = parser.parse_args(argv)
    args.settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in args.settings if s not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting {unknown[0]!r}; known: {', '.join(SETTINGS)}")
    if args.n < 20_000 or args.repeat < 1:
        parser.error("--n must be at least 20000 (a few persists to time) and --repeat >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = [SETTINGS[name] for name in args.settings]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        broker = start_tansu(directory)
        try:
            bootstrap = f"127.0.0.1:{broker.port}"
            sizes = prepare(bootstrap, settings, args.n)
            lines = []
            for setting in settings:
                total = sizes[setting.topic]
                service: list[Run] = []
                reference: list[Run] = []
                for attempt in range(args.repeat):
                    run, timed = run_service(directory, bootstrap, setting, total,
                                             f"{setting.name}-{attempt}")
                    service.append(run)
                    reference.append(run_reference(bootstrap, setting, total, timed))
                    print(f"  {setting.name} #{attempt + 1}: service {run.rate / 1000:.1f}k "
                          f"ev/s, reference {reference[-1].rate / 1000:.1f}k ev/s "
                          f"({run.rate / reference[-1].rate:.0%}) over records "
                          f"{timed[0]}..{timed[1]} of {total}; start-up {run.startup:.1f} s "
                          f"{run.note} [reference {reference[-1].note}]", flush=True)
                lines.append(report(setting, service, reference))
        finally:
            broker.stop()
    print(f"service vs reference, {args.n // 1000}k predictions per setting, median of "
          f"{args.repeat} (machine shared: figures vary between runs)", flush=True)
    print(HEADER)
    for line in lines:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
