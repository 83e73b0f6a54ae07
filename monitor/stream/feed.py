"""Steps 3 and 4 of the loop: decoded runs into their model's windows, closed windows evaluated.

:class:`WindowFeed` takes the runs :mod:`monitor.stream.records` decoded from one
partition (a ``PredictionBatch`` or a list of events per (model, version)) and adds
them to the streams of their (model, version, partition); what reads the same runs
is fed beside the windows: the rows kept for drift reports
(:mod:`monitor.stream.report_rows`), the canary arms (:mod:`monitor.stream.arms`) and
the label join's predictions (:class:`monitor.stream.persist.Persister`). Each window
that closes (also when an idle or retired stream closes it) is evaluated into a
result the next persist stores; with ``kafka.partials`` a partition's event-time
window is published to its model's owner instead, and the owner's merged windows
are evaluated here when they are due (:mod:`monitor.stream.scaleout`).

It changes with what is fed beside the windows and with where a closed window goes;
the service decides which records reach it, and when.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

from monitor.ingest import Consumer, Decoder
from monitor.ingest.batch import LabelBatch, PredictionBatch
from monitor.metrics import Metrics
from monitor.stream.arms import ArmAccumulator
from monitor.stream.persist import Persister
from monitor.stream.pipeline import ModelPipeline
from monitor.stream.records import RunEvents, runs_of
from monitor.stream.report_rows import ReportRows
from monitor.stream.scaleout import ScaleOut
from monitor.stream.window_state import ClosedWindow

__all__ = ["HOUSEKEEPING_SECONDS", "WindowFeed"]

log = logging.getLogger("driftloop.service")

HOUSEKEEPING_SECONDS = 1.0  # how often idle and retired streams are looked for


class WindowFeed:
    def __init__(
        self,
        pipelines: Mapping[str, ModelPipeline],
        persister: Persister,
        metrics: Metrics,
        decoder: Decoder,
        clock: Callable[[], float],
        *,
        report_rows: ReportRows | None,
        arms: ArmAccumulator | None,
        scaleout: ScaleOut | None,
    ) -> None:
        self.pipelines = pipelines
        self.persister = persister
        self.metrics = metrics
        self.decoder = decoder
        self.clock = clock
        self.report_rows = report_rows
        self.arms = arms
        self.scaleout = scaleout
        self._last_housekeeping = clock()

    def add_runs(self, runs: Iterable[tuple[tuple[str, str], RunEvents]],
                 partition: int) -> int:
        """The runs decoded from one partition into the streams of ``partition``; returns
        the number of predictions added."""
        for (model, version), replayed in runs_of(self.decoder.take_replayed()):
            self.pipelines[model].replay(version, partition, replayed, int(self.clock() * 1000))
        added = 0
        for (model, version), run in runs:
            self.add_run(model, version, partition, run)
            self.persister.counts[(model, version, "prediction")] += len(run)
            added += len(run)
        return added

    def add_run(self, model: str, version: str, partition: int, run: RunEvents) -> None:
        pipeline = self.pipelines[model]
        if self.arms is not None:
            self.arms.add_predictions(model, version, run)
        if self.report_rows is not None:
            self.report_rows.feed(pipeline, version, partition, run)
        now_ms = int(self.clock() * 1000)
        last = int(run.offsets[-1]) if isinstance(run, PredictionBatch) else run[-1].offset
        self.evaluate(pipeline, pipeline.add_batch(run, now_ms)
                      if isinstance(run, PredictionBatch)
                      else pipeline.add_many(version, partition, run, now_ms), last)
        if self.report_rows is not None:
            self.report_rows.settle(pipeline, version, partition)
        if pipeline.joins_labels:  # else no reference performance: no join state to keep
            self.persister.add_predictions(model, version, run,
                                           pipeline.config.performance.label_ttl)

    def add_labels(self, batch: LabelBatch) -> None:
        pipeline = self.pipelines[batch.model]
        if pipeline.joins_labels:  # else counted, but nothing can be evaluated with it
            self.persister.add_labels(batch, pipeline.config.performance.label_ttl)

    def evaluate(self, pipeline: ModelPipeline, closed: list[ClosedWindow],
                 last_offset: int | None = None) -> None:
        """Evaluate closed windows; with partials, a partition's event-time window goes to
        its model's owner instead (``last_offset``: of the run that closed it)."""
        for window in closed:
            if self.scaleout is not None and window.partition is not None \
                    and self.scaleout.publishes(pipeline):
                self.scaleout.publish(pipeline, window, last_offset)
                continue
            started = time.perf_counter()
            output = pipeline.evaluate(window)
            self.persister.outputs.append(output)
            self.metrics.observe_evaluation(pipeline.name, time.perf_counter() - started)
            if self.report_rows is not None:
                self.report_rows.closed(pipeline, output)

    def own(self, consumer: Consumer | None) -> None:
        """Issue 15: report the held partitions' watermarks (after the windows they closed
        were published), then evaluate the owned models' merged windows that are due."""
        assert self.scaleout is not None
        self.scaleout.heartbeats(int(self.clock() * 1000))
        for window in self.scaleout.due(consumer):
            self.evaluate(self.pipelines[window.model], [window])

    def housekeeping_due(self) -> bool:
        return self.clock() - self._last_housekeeping >= HOUSEKEEPING_SECONDS

    def housekeep(self) -> None:
        """Close the windows of idle event-time streams and retire streams without events
        for ``window.retire_after``: their checkpoints go, their version frees a place."""
        now_ms = int(self.clock() * 1000)
        self._last_housekeeping = self.clock()
        for pipeline in self.pipelines.values():
            closed, retired = pipeline.housekeep(now_ms)
            self.evaluate(pipeline, closed)
            for version, partition in retired:
                log.info("stream %s/%s p%d retired: no events for %.0fs", pipeline.name,
                         version, partition, pipeline.config.window.retire_after)
                self.persister.retired.append((pipeline.name, version, partition))
                if version not in pipeline.versions:
                    self.metrics.forget_version(pipeline.name, version)
