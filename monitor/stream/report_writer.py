"""The writer of drift reports: one thread, fed through a bounded queue.

An Evidently report takes about half a second for a few thousand rows (and
seconds to import Evidently the first time), far too slow for the consumer
thread, which only offers :class:`~monitor.stream.report_rows.ReportJob`\\ s here.
When the queue is full the window gets no report: the offer returns False and
is counted in ``driftloop_drift_reports_total{outcome="queue_full"}``; the
consumer never waits.

Each job's reference rows are the baseline's reference sample
(``monitor.baseline.load_reference_sample``: the file beside a baseline file, or
the run's ``driftloop/reference.parquet`` artifact), loaded once per baseline.
A baseline without one gets no reports; that is logged once per baseline.

Outcomes, counted per model: ``written``, ``queue_full``, ``no_reference``,
``no_rows`` (counted by the feed), ``failed`` (logged with the reason; the next
drifted window is tried again).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from monitor.baseline import Baseline
from monitor.evaluate import ReportFiles, StoredReport, build_drift_report
from monitor.ingest import Prediction
from monitor.metrics import Metrics
from monitor.stream.report_rows import ReportJob

__all__ = ["ReportWriter", "rows_frame"]

log = logging.getLogger("driftloop.reports")

SampleLoader = Callable[[str, str], pd.DataFrame | None]  # (model, baseline key) -> rows


def rows_frame(baseline: Baseline, rows: list[Prediction]) -> pd.DataFrame:
    """Events as a frame with the baseline's column names: features, prediction, score."""
    frame = pd.DataFrame.from_records([event.features for event in rows])
    roles = baseline.columns
    if roles.prediction:
        frame[roles.prediction] = [event.prediction for event in rows]
    if roles.score:
        frame[roles.score] = [event.score for event in rows]
    return frame


class ReportWriter:
    def __init__(self, files: ReportFiles, metrics: Metrics, load_sample: SampleLoader, *,
                 queue_size: int = 8) -> None:
        self.files = files
        self.metrics = metrics
        self._load_sample = load_sample
        self._samples: dict[tuple[str, str], pd.DataFrame | None] = {}
        self.queue: queue.Queue[ReportJob] = queue.Queue(maxsize=queue_size)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the consumer thread's side ---------------------------------------------------
    def offer(self, job: ReportJob) -> bool:
        """Queue a job without waiting; False (and counted) when the queue is full."""
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            self.metrics.count_drift_report(job.model, "queue_full")
            log.warning("drift report %s/%s %s dropped: %d reports are waiting already "
                        "(reports.queue_size)", job.model, job.version, job.key,
                        self.queue.maxsize)
            return False
        return True

    # -- the writer thread ----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="driftloop-reports",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the report being written; the ones waiting are dropped."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if not self.queue.empty():
            log.info("drift reports: %d waiting report(s) not written at shutdown",
                     self.queue.qsize())

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.write(job)
            except Exception as exc:  # one report must not stop the next
                self.metrics.count_drift_report(job.model, "failed")
                log.exception("drift report %s/%s %s failed (%s: %s)", job.model, job.version,
                              job.key, type(exc).__name__, exc)

    def _sample(self, model: str, key: str) -> pd.DataFrame | None:
        if (model, key) not in self._samples:
            # an exception (MLflow unreachable) is not cached: the next window tries again
            sample = self._load_sample(model, key)
            self._samples[(model, key)] = sample
            if sample is None:
                log.warning("drift reports of %s: baseline %s has no reference sample, so no "
                            "report is written (build it with --sample-rows N)",
                            model, key or "(the configured file)")
        return self._samples[(model, key)]

    def write(self, job: ReportJob) -> StoredReport | None:
        """Build and store one report (the thread's work; tests call it directly)."""
        reference = self._sample(job.model, job.baseline_key)
        if reference is None:
            self.metrics.count_drift_report(job.model, "no_reference")
            return None
        started = time.perf_counter()
        report = build_drift_report(job.baseline, reference, rows_frame(job.baseline, job.rows),
                                    job.result, covered=job.covered,
                                    title=f"window {job.key}")
        meta: dict[str, Any] = {
            "seconds": round(time.perf_counter() - started, 3),
            "window": job.result.get("window"), "start": job.result.get("start"),
            "end": job.result.get("end"), "rows": job.result.get("rows"),
            "dataset_drift": job.result.get("dataset_drift"),
            "covered": job.covered.to_dict(), "reference_rows": report.reference_rows,
            "evidently": {
                "dataset_drift": report.dataset_drift, "drift_share": report.drift_share,
                "columns": {c: {"method": v.method, "threshold": v.threshold, "score": v.score,
                                "drift": v.drift} for c, v in report.verdicts.items()},
                "disagreements": list(report.disagreements),
            },
        }
        stored = self.files.write(job.model, job.version, job.key, report.html, meta)
        seconds = time.perf_counter() - started
        self.metrics.count_drift_report(job.model, "written")
        self.metrics.observe_drift_report(job.model, seconds)
        agreement = ("Evidently disagrees on " + ", ".join(report.disagreements)
                     if report.disagreements
                     else f"Evidently agrees on all {len(report.verdicts)} columns")
        log.info("drift report %s/%s %s: %d of %d rows, %s (%.1f s)", job.model, job.version,
                 job.key, job.covered.shown, job.covered.seen, agreement, seconds)
        return stored
