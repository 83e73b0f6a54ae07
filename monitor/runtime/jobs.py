"""The service's periodic work, as named APScheduler jobs.

=====================  ==============================  =====================================
job                    every                           does
=====================  ==============================  =====================================
``broker-check``       ``jobs.broker_check_interval``  probes the bootstrap servers (readiness)
``consumer-lag``       ``jobs.metrics_interval``       ``driftloop_consumer_lag`` per partition
``label-join-expiry``  ``jobs.label_expiry_interval``  drops unjoined rows past the label TTL
``label-join-gauges``  ``jobs.label_expiry_interval``  ``driftloop_label_join_pending``
``retrain``            ``jobs.retrain_interval``       retries due launches, polls running runs
``retrain-run-prune``  ``jobs.run_pruning_interval``   deletes finished runs past
                                                       ``retrain.keep_runs`` per model
``malloc-trim``        10 s                            gives glibc's free heap memory back
                                                       (``monitor.runtime.malloc``)
``registry-poll``      ``mlflow.poll_interval``        follows the MLflow aliases of baselines
``canary``             ``jobs.canary_interval``        applies pending canary moves and hooks,
                                                       finds new challengers (the registry
                                                       every ``mlflow.poll_interval``, or at
                                                       once after a webhook), judges models
                                                       whose ``canary.interval`` elapsed
=====================  ==============================  =====================================

Every job coalesces missed runs and never overlaps itself. A job that raises is
logged with its name, counted in ``driftloop_job_errors_total{job}`` and runs
again at its next time; the other jobs are not affected. ``stop`` waits for
running jobs, so SIGTERM leaves none half-done. ``run_soon(name)`` brings a job's next
run forward to now (a webhook or an operator request wakes the canary job).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from kafka import TopicPartition
from kafka.errors import IllegalStateError

from monitor.ingest import Consumer, broker_reachable
from monitor.metrics import Metrics
from monitor.react import FINISHED_RUN_STATUSES, RetrainReactor
from monitor.runtime.malloc import TRIM_SECONDS, trimmer
from monitor.stream.poison import transient

if TYPE_CHECKING:  # only for annotations: build imports this module's caller
    from monitor.runtime.build import Runtime

__all__ = ["Jobs", "processed_lag", "prune_runs", "schedule_service_jobs"]

log = logging.getLogger("driftloop.jobs")


class Jobs:
    """A background scheduler whose jobs are guarded: a failure is counted, not fatal."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._running = threading.Condition()
        self._in_flight = 0
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def add(self, name: str, every_seconds: float, work: Callable[[], object]) -> None:
        """Run ``work`` every ``every_seconds`` under the job name ``name``."""
        self.scheduler.add_job(self._guarded(name, work), "interval", seconds=every_seconds,
                               id=name, name=name)
        self.metrics.job_errors.labels(name)  # a series at 0 from the start, not at the first error

    def _guarded(self, name: str, work: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with self._running:
                self._in_flight += 1
            try:
                work()
            except Exception as exc:
                self.metrics.count_job_error(name)
                if transient(exc):  # an outage: one line per run, /readyz tells the rest
                    reason = " ".join(str(exc).split())[:300]
                    log.warning("job %s failed (%s: %s); it runs again at its next time",
                                name, type(exc).__name__, reason)
                else:
                    log.exception("job %s failed (%s: %s); it runs again at its next time",
                                  name, type(exc).__name__, exc)
            finally:
                with self._running:
                    self._in_flight -= 1
                    self._running.notify_all()

        return run

    def run_soon(self, name: str) -> None:
        """Move job ``name``'s next run to now (a job coalesces, so a burst of calls runs
        it once more, never twice at the same time); a stopped scheduler ignores it."""
        job = self.scheduler.get_job(name)
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    @property
    def names(self) -> list[str]:
        return sorted(job.id for job in self.scheduler.get_jobs())

    def start(self) -> None:
        self.scheduler.start()

    def stop(self, timeout_seconds: float = 10.0) -> bool:
        """No new runs; wait up to ``timeout_seconds`` for running jobs. A job still
        running then (a launcher hanging on its target) is left behind: its run is
        recorded before the launch, so the next start retries it. True when none was."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        with self._running:
            finished = self._running.wait_for(lambda: self._in_flight == 0, timeout_seconds)
        if not finished:
            log.warning("%d job(s) still running after %.0fs; leaving them", self._in_flight,
                        timeout_seconds)
        return finished


def processed_lag(consumer: Consumer,
                  processed: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """Records between what the service has handled and the end of each partition.

    The end is the high-water mark of the last fetch response, kept in memory by the
    consumer (safe to read from another thread; ``end_offsets()`` would be a request
    on the consumer, which is not thread-safe, and reads low against Tansu).
    Partitions not fetched yet have no lag.
    """
    lags: dict[tuple[str, int], int] = {}
    for (topic, partition), offset in list(processed.items()):
        try:
            end = consumer.highwater(TopicPartition(topic, partition))
        except (IllegalStateError, AssertionError, KeyError):
            continue  # revoked since the mark was read: another member reports it
        if end is not None:
            lags[(topic, partition)] = max(0, end - offset)
    return lags


def prune_runs(runtime: Runtime) -> int:
    """Delete each model's finished retrain runs beyond its ``retrain.keep_runs``; runs in
    flight are kept whatever their age. Returns how many were deleted."""
    removed = 0
    for name, model in runtime.config.models.items():
        count = runtime.store.prune_runs(name, keep=model.retrain.keep_runs,
                                         statuses=FINISHED_RUN_STATUSES)
        if count:
            log.info("retrain %s: deleted %d finished run(s) beyond the newest %d", name,
                     count, model.retrain.keep_runs)
        removed += count
    return removed


def schedule_service_jobs(jobs: Jobs, runtime: Runtime) -> None:
    """Add the jobs of ``driftloop serve`` (the table of the module docstring)."""
    config, loop, service, metrics = runtime.config, runtime.loop, runtime.service, jobs.metrics
    every = config.jobs

    def check_broker() -> None:
        if loop.consumer is None:
            return  # still connecting: the loop reports readiness itself
        loop.broker_ok = broker_reachable(config.kafka.bootstrap_servers, timeout=1.0)
        loop.last_error = None if loop.broker_ok else (
            f"no answer from {', '.join(config.kafka.bootstrap_servers)}")

    def refresh_lag() -> None:
        if loop.consumer is not None:
            processed = dict(service.partitions.processed)
            metrics.set_offsets(processed)
            metrics.set_lags(processed_lag(loop.consumer, processed))

    shown: set[str] = set()  # models with a pending gauge: 0 once nothing waits

    def refresh_pending() -> None:
        stored = runtime.store.pending_counts()
        shown.update(stored)
        for model in sorted(shown):
            counts = stored.get(model)
            metrics.set_join_pending(model, counts.predictions if counts else 0,
                                     counts.labels if counts else 0)

    jobs.add("broker-check", every.broker_check_interval, check_broker)
    jobs.add("consumer-lag", every.metrics_interval, refresh_lag)
    jobs.add("label-join-expiry", every.label_expiry_interval, service.expire_labels)
    jobs.add("label-join-gauges", every.label_expiry_interval, refresh_pending)
    if isinstance(runtime.reactor, RetrainReactor):
        jobs.add("retrain", every.retrain_interval, runtime.reactor.tick)
        # evidence queued by the consumer thread is decided at once, on the job's thread
        runtime.reactor.wake = lambda: jobs.run_soon("retrain")
    jobs.add("retrain-run-prune", every.run_pruning_interval, lambda: prune_runs(runtime))
    trim = trimmer()
    if trim is not None:  # see monitor.runtime.malloc
        jobs.add("malloc-trim", TRIM_SECONDS, trim)
    if runtime.watch is not None:
        jobs.add("registry-poll", config.mlflow.poll_interval, runtime.watch.check)
    if runtime.canary is not None:
        jobs.add("canary", every.canary_interval, runtime.canary.tick)
        runtime.canary.wake = lambda: jobs.run_soon("canary")
