"""Soak: ``driftloop serve`` under a steady feed with labels and an hourly event-time window.

A Tansu broker and the service (SQLite state store, a baseline with a target so every
prediction is kept for the label join, ``window: {duration: 1h, allowed_lateness: 5m}``)
are started; once the service holds its partitions, a producer thread sends
``--rate`` events per second, counted as ``driftloop_events_total`` counts them
(predictions and labels): with ``--label-share 1`` half are predictions and half their
labels, each label sent ``--label-lag`` seconds after its prediction.

Event time is compressed so the hourly window closes during the soak, as it would
over hours of real traffic: each real second advances event time by ``--compress``
seconds (60: an hour of event time per real minute). It starts far enough in the past
(the soak's whole event-time span plus an hour) that no event is ever ahead of its
broker time (``kafka.max_future_skew``).

From the first persist on, the service's resident set size (VmRSS) and open file
descriptors (``/proc/<pid>/fd``) are sampled every ``--sample-every`` seconds for
``--seconds``; least-squares slopes over the second half are reported with the targets:
RSS under 1 MB/min, file descriptors flat (under 0.5 per minute either way). The
achieved producer and service rates are reported as measured: when the producer or the
service cannot keep the rate on this machine, the lines say so.

Run: ``python benchmarks/soak_service.py [--seconds 600] [--rate 20000]`` (not part of
``make bench``: it takes the whole ``--seconds``).
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench_kafka import MODEL  # noqa: E402
from bench_service import DRIFTLOOP, baseline_file  # noqa: E402
from service_events import EventPool  # noqa: E402
from service_probe import cpu_seconds, open_fds, slope_per_minute, status_kb  # noqa: E402

from monitor.config import KafkaConfig  # noqa: E402
from monitor.ingest.clients import ensure_topics, make_producer  # noqa: E402
from tests.support.procs import Managed, free_port, start_tansu, wait_for  # noqa: E402

__all__ = ["event_start_ms", "main", "parse_args", "second_half", "verdicts"]

RSS_SLOPE_MB_PER_MIN = 1.0
FD_SLOPE_PER_MIN = 0.5
TICK = 0.1  # seconds of events the producer sends at a time


def event_start_ms(now_ms: int, seconds: float, compress: float) -> int:
    """Event time of the first event: the soak's event-time span plus an hour before
    ``now_ms``, so event time stays behind the broker's clock to the end."""
    return int(now_ms - (seconds * compress + 3600) * 1000)


def second_half(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return samples[len(samples) // 2:]


def verdicts(rss_slope: float, fd_slope: float) -> tuple[str, str]:
    """PASS/FAIL of the RSS slope (MB/min) and of the fd slope (per minute); n/a when a
    slope could not be fitted (too few samples)."""
    if math.isnan(rss_slope) or math.isnan(fd_slope):
        return "n/a", "n/a"
    return ("PASS" if rss_slope < RSS_SLOPE_MB_PER_MIN else "FAIL",
            "PASS" if abs(fd_slope) < FD_SLOPE_PER_MIN else "FAIL")


class Feed:
    """Sends predictions and, ``lag`` seconds later, their labels at a steady rate."""

    def __init__(self, bootstrap: str, topic: str, rate: float, label_share: float,
                 lag: float, compress: float, start_ms: int) -> None:
        self.producer = make_producer(KafkaConfig(bootstrap_servers=[bootstrap]), acks=1)
        self.topic, self.labels_topic = topic, f"{topic}-labels"
        self.predictions_per_second = rate / (1 + label_share)
        self.label_share, self.lag, self.compress = label_share, lag, compress
        self.start_ms = start_ms
        self.sent = {"predictions": 0, "labels": 0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started = 0.0

    def _run(self) -> None:
        pool = EventPool()
        pending: collections.deque[tuple[float, int, int]] = collections.deque()
        started = self.started = time.monotonic()
        rng = np.random.default_rng(7)
        due, tick, index = 0.0, 0, 0
        lag_ms = int(self.lag * self.compress * 1000)
        send = self.producer.send
        while not self.stop.is_set():
            tick += 1
            due += self.predictions_per_second * TICK
            count = int(due) - self.sent["predictions"]
            elapsed = (tick - 1) * TICK  # on schedule: a late producer moves event time less
            stamps = self.start_ms + ((elapsed + np.linspace(0, TICK, count, endpoint=False))
                                      * self.compress * 1000).astype(np.int64)
            labelled = rng.random(count) < self.label_share
            for j in range(count):
                stamp = int(stamps[j])
                send(self.topic, value=pool.prediction(index, stamp), partition=0)
                if labelled[j]:
                    pending.append((elapsed + self.lag, index, stamp + lag_ms))
                index += 1
            self.sent["predictions"] += count
            while pending and pending[0][0] <= elapsed:
                _, i, stamp = pending.popleft()
                send(self.labels_topic, value=pool.label(i, stamp), partition=0)
                self.sent["labels"] += 1
            ahead = tick * TICK - (time.monotonic() - started)
            if ahead > 0:
                self.stop.wait(ahead)
        self.producer.flush()
        self.producer.close()

    def rate(self) -> float:
        return sum(self.sent.values()) / max(1e-9, time.monotonic() - self.started)


def _persisted(state: Path, group: str) -> int:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5) as db:
        (records,) = db.execute("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets "
                                "WHERE group_id = ?", (group,)).fetchone()
        return int(records)


def _count(state: Path, sql: str, *params: str) -> int:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5) as db:
        return int(db.execute(sql, params).fetchone()[0])


def _owned(state: Path, group: str) -> bool:
    """Whether the service holds both topics' partitions (taken in the store at assignment)."""
    return _count(state, "SELECT count(*) FROM partition_owners WHERE group_id = ?", group) >= 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="sampled run length")
    parser.add_argument("--rate", type=float, default=20_000.0,
                        help="events per second, predictions and labels together")
    parser.add_argument("--label-share", type=float, default=1.0,
                        help="share of predictions that get a label (0..1)")
    parser.add_argument("--label-lag", type=float, default=5.0,
                        help="real seconds from a prediction to its label")
    parser.add_argument("--compress", type=float, default=60.0,
                        help="event-time seconds per real second")
    parser.add_argument("--sample-every", type=float, default=10.0)
    args = parser.parse_args(argv)
    if not 0 <= args.label_share <= 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--label-share must be in 0..1, --rate and --seconds positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        broker = start_tansu(directory)
        try:
            return soak(directory, f"127.0.0.1:{broker.port}", args)
        finally:
            broker.stop()


def soak(directory: Path, bootstrap: str, args: argparse.Namespace) -> int:
    topic, group = "soak", f"soak-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, [topic, f"{topic}-labels", f"{topic}-dlq"])
    state, port = directory / "state.db", free_port()
    config = {
        "kafka": {"bootstrap_servers": [bootstrap], "group_id": group,
                  "predictions_topic": topic, "labels_topic": f"{topic}-labels",
                  "dead_letter_topic": f"{topic}-dlq"},
        "state": {"url": f"sqlite:///{state}"},
        "server": {"port": port, "auth_token_env": None},
        "models": {MODEL: {"baseline": str(baseline_file(directory, True)),
                           "window": {"duration": "1h", "allowed_lateness": "5m"},
                           "retrain": {"on": []}}},
    }
    (directory / "driftloop.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP")}
    proc = Managed("driftloop-soak", [str(DRIFTLOOP), "serve", "--config",
                                      str(directory / "driftloop.yaml")],
                   directory / "driftloop.log", port, env=env).start()
    start_ms = event_start_ms(int(time.time() * 1000), args.seconds + 60, args.compress)
    feed = Feed(bootstrap, topic, args.rate, args.label_share, args.label_lag, args.compress,
                start_ms)
    rss: list[tuple[float, float]] = []
    anon: list[tuple[float, float]] = []  # RssAnon: the heap, without mapped files
    fds: list[tuple[float, float]] = []
    try:
        wait_for(lambda: _owned(state, group), 120, "the service's partitions", proc)
        feed.thread.start()
        wait_for(lambda: _persisted(state, group) > 0, 120, "a first persist", proc)
        started, cpu0, done0 = time.monotonic(), cpu_seconds(proc.pid), _persisted(state, group)
        while (elapsed := time.monotonic() - started) < args.seconds:
            rss.append((elapsed, status_kb(proc.pid, "VmRSS") / 1024))
            anon.append((elapsed, status_kb(proc.pid, "RssAnon") / 1024))
            fds.append((elapsed, float(open_fds(proc.pid))))
            print(f"  {elapsed:5.0f} s: RSS {rss[-1][1]:6.1f} MB (anon {anon[-1][1]:6.1f}), "
                  f"{fds[-1][1]:.0f} fds, "
                  f"produced {sum(feed.sent.values())}, persisted {_persisted(state, group)}",
                  flush=True)
            time.sleep(max(0.0, args.sample_every - (time.monotonic() - started - elapsed)))
            if not proc.alive():
                raise RuntimeError(f"service exited:\n{proc.log_tail()}")
        ran = time.monotonic() - started
        cpu, done = cpu_seconds(proc.pid) - cpu0, _persisted(state, group) - done0
        produced_rate = feed.rate()
        feed.stop.set()
        feed.thread.join(60)
        backlog = sum(feed.sent.values()) - _persisted(state, group)
        windows = _count(state, "SELECT count(*) FROM windows")
        peak = status_kb(proc.pid, "VmHWM") / 1024
    finally:
        feed.stop.set()
        proc.stop()
    rss_slope, fd_slope = slope_per_minute(second_half(rss)), slope_per_minute(second_half(fds))
    rss_ok, fd_ok = verdicts(rss_slope, fd_slope)
    half_fds = [f for _, f in second_half(fds)]
    print(f"soak {ran:.0f} s, target {args.rate / 1000:.0f}k ev/s (predictions and labels, "
          f"label share {args.label_share:g}), event time x{args.compress:g}, 1h windows; "
          f"machine shared with other work", flush=True)
    print(f"produced {produced_rate / 1000:.1f}k ev/s; service persisted "
          f"{done / ran / 1000:.1f}k ev/s, {cpu / ran:.0%} of a core, "
          f"{cpu / max(done, 1) * 1e6:.1f} µs CPU per event; backlog at the end {backlog}; "
          f"{windows} windows stored", flush=True)
    print(f"RSS start {rss[0][1]:.1f} MB, end {rss[-1][1]:.1f} MB, peak {peak:.1f} MB; slope "
          f"second half {rss_slope:+.2f} MB/min (all {slope_per_minute(rss):+.2f}; anonymous "
          f"memory {slope_per_minute(second_half(anon)):+.2f})  "
          f"target < {RSS_SLOPE_MB_PER_MIN:g} MB/min  {rss_ok}", flush=True)
    print(f"open fds second half {min(half_fds):.0f}..{max(half_fds):.0f}; slope "
          f"{fd_slope:+.2f}/min  target flat (|slope| < {FD_SLOPE_PER_MIN:g}/min)  {fd_ok}",
          flush=True)
    if produced_rate < 0.95 * args.rate:
        print(f"note: the producer reached {produced_rate / args.rate:.0%} of the target rate "
              f"on this machine", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
