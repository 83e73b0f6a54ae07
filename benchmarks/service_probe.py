"""Watching a ``driftloop serve`` process from outside, without slowing it down.

- ``/proc/<pid>``: CPU seconds (utime + stime of all threads), VmRSS, VmHWM (peak
  RSS), open file descriptors.
- the SQLite state store, read-only: every persist writes the next offsets of the
  consumed partitions with one ``updated_at_ms`` (``consumer_offsets``) and the
  checkpoints it changed (``checkpoints``). :class:`StoreSampler` reads both a few
  times a second; each distinct ``updated_at_ms`` is a persist point ``(seconds,
  records processed)`` stamped by the service itself, so the sampling rate only
  decides how many points are seen, not their times.

Rates are taken between two persist points (:func:`span`). A persist after the last
record may wait up to half a second (closed windows are written at most every
``WINDOW_PERSIST_SECONDS``), so the points used are those while records were still
coming (fewer than all processed); the reference loop is timed over the same
records (:func:`time_at`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "PersistPoint",
    "StoreSampler",
    "cpu_seconds",
    "open_fds",
    "persist_points",
    "slope_per_minute",
    "span",
    "status_kb",
    "time_at",
    "wait_until",
]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process, all its threads."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` line of ``/proc/<pid>/status``: ``VmRSS`` (now) or ``VmHWM`` (peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass(frozen=True)
class PersistPoint:
    at: float  # the service's own clock at the persist, seconds since the epoch
    records: int  # records processed (next offsets summed over the partitions)
    cpu: float  # service CPU seconds when the sampler first saw this persist
    checkpoint_bytes: int  # state bytes of the checkpoints this persist wrote


def persist_points(samples: list[tuple[int, int, float, int]]) -> list[PersistPoint]:
    """Distinct persists among ``(updated_at_ms, records, cpu, checkpoint bytes)`` samples,
    in order, each with what the first sample that saw it read."""
    points: list[PersistPoint] = []
    for at_ms, records, cpu, ckpt in samples:
        if points and at_ms <= points[-1].at * 1000:
            continue
        points.append(PersistPoint(at_ms / 1000, records, cpu, ckpt))
    return points


def span(points: list[PersistPoint], total: int) -> tuple[PersistPoint, PersistPoint, bool]:
    """First and last persist point while records were still coming (fewer than
    ``total`` processed); ``exact`` is False when fewer than two such points were seen
    and the last persist (perhaps delayed) had to be used."""
    loaded = [p for p in points if p.records < total]
    if len(loaded) >= 2:
        return loaded[0], loaded[-1], True
    if len(points) >= 2:
        return points[0], points[-1], False
    raise RuntimeError(f"saw {len(points)} persist(s): too few records to time the service")


def time_at(points: list[tuple[int, float, float]], records: int) -> tuple[float, float]:
    """(wall, CPU) seconds at which a loop with progress ``points`` (records, wall, CPU)
    had processed ``records``, interpolated between its batches."""
    counts = np.array([p[0] for p in points], dtype=np.float64)
    if not counts[0] <= records <= counts[-1]:
        raise ValueError(f"{records} records is outside the points' {counts[0]:.0f}.."
                         f"{counts[-1]:.0f}")
    wall = float(np.interp(records, counts, [p[1] for p in points]))
    cpu = float(np.interp(records, counts, [p[2] for p in points]))
    return wall, cpu


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` samples, per minute; NaN for fewer
    than 3 (two points always lie on a line)."""
    if len(samples) < 3:
        return float("nan")
    t = np.array([s[0] for s in samples], dtype=np.float64)
    v = np.array([s[1] for s in samples], dtype=np.float64)
    return float(np.polyfit(t, v, 1)[0] * 60)


class StoreSampler:
    """Reads the persist points of consumer group ``group`` from a SQLite state store
    every ``interval`` seconds on a thread of its own, with the service's CPU time."""

    def __init__(self, state: Path, group: str, pid: int, interval: float = 0.1) -> None:
        self.state, self.group, self.pid, self.interval = state, group, pid, interval
        self.samples: list[tuple[int, int, float, int]] = []
        self.largest: dict[str, int] = {}  # bytes per checkpoint row of the largest persist
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StoreSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def latest(self) -> tuple[int, int]:
        """(updated_at_ms, records) of the newest sample, (0, 0) before any persist."""
        return self.samples[-1][:2] if self.samples else (0, 0)

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        while not self._stop.wait(self.interval):
            try:
                if db is None:
                    if not self.state.exists():
                        continue
                    db = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True, timeout=1,
                                         isolation_level=None)
                sample = self._read(db)
            except sqlite3.OperationalError:  # tables not created yet
                continue
            if sample is not None:
                self.samples.append(sample)
        if db is not None:
            db.close()

    def _read(self, db: sqlite3.Connection) -> tuple[int, int, float, int] | None:
        cpu = cpu_seconds(self.pid)
        db.execute("BEGIN")  # one snapshot for both reads (WAL: the writer goes on)
        try:
            at_ms, records = db.execute(
                "SELECT max(updated_at_ms), sum(next_offset) FROM consumer_offsets "
                "WHERE group_id = ?", (self.group,)).fetchone()
            if at_ms is None:
                return None
            # a persist writes its checkpoints in one transaction, right around the
            # offsets (monitor.stream.persist.Persister.write; the processed marks come
            # after them), and persists under load are at least half a second apart
            rows = db.execute(
                "SELECT model, version, kind, length(state) FROM checkpoints "
                "WHERE updated_at_ms BETWEEN ? - 250 AND ? + 250", (at_ms, at_ms)).fetchall()
        finally:
            db.rollback()
        written = {f"{kind} {version}" if model == "*" else kind: int(size)
                   for model, version, kind, size in rows}
        total = sum(written.values())
        if total > sum(self.largest.values()):
            self.largest = written
        return int(at_ms), int(records), cpu, total


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               alive: Callable[[], bool]) -> None:
    """Poll ``check()`` every 0.2 s until true; raise if ``alive()`` turns false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what}: the service exited")
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
