"""The consumer loop of ``driftloop serve``: records in, window results persisted, offsets out.

- :mod:`~monitor.stream.service`: ``Service.step``, one pass of the loop (poll, decode,
  windows, evaluate, persist, export, react, commit), and partitions taken, handed over
  and lost;
- :mod:`~monitor.stream.feed`: ``WindowFeed``, decoded runs into their windows (and the
  report rows, canary arms and label join beside them), closed windows evaluated or
  published to their model's owner, idle and retired streams;
- :mod:`~monitor.stream.holdings`: ``Holdings``, what this member holds per partition,
  taken and restored, forgotten at a rebalance, cleared after a failed step;
- :mod:`~monitor.stream.records`: records of a partition -> events or dead letters;
- :mod:`~monitor.stream.alignment`: label records ahead of their predictions wait while
  both topics hold a backlog, so the pairs join in memory;
- :mod:`~monitor.stream.export`: what a persist stored -> metrics and the reactor;
- :mod:`~monitor.stream.poison`: finding the record whose results cannot be stored;
- :mod:`~monitor.stream.partitions`: per consumed partition, the processed mark, the
  topic incarnation and the ownership epoch;
- :mod:`~monitor.stream.persist`: the one transaction of a persist, and reading it back;
- :mod:`~monitor.stream.consumer`: the consumer thread (connect, queued rebalances,
  rewinds, the poison hunt, offsets committed to Kafka);
- :mod:`~monitor.stream.pipeline`: ``ModelPipeline``, one model's baseline, windows and
  realized-performance windows;
- :mod:`~monitor.stream.performance`: ``RealizedPerformance``, joined pairs in tumbling
  windows per version, evaluated and checkpointed;
- :mod:`~monitor.stream.windows`: ``Stream``, count and event-time windows of one
  (model, version, partition), checkpointable;
- :mod:`~monitor.stream.window_state`: ``OpenWindow`` and ``ClosedWindow``, one window's
  state, open and closed;
- :mod:`~monitor.stream.fold`: a window's buffered rows -> its summary (and CBPE sums);
- :mod:`~monitor.stream.columns`: buffered events -> the detectors' column arrays;
- :mod:`~monitor.stream.report_rows`: rows of the open windows (all, or a uniform
  sample), handed to the report writer when a window closes with drift;
- :mod:`~monitor.stream.report_writer`: ``ReportWriter``, one thread behind a bounded
  queue writing Evidently reports of drifted windows;
- :mod:`~monitor.stream.arms`: ``ArmAccumulator``, per-version interval statistics the
  canary judge compares (fed by the loop, taken by the canary job).

May import: ``monitor.ingest``, ``monitor.evaluate``, ``monitor.baseline``,
``monitor.store``, ``monitor.config``, ``monitor.metrics``, ``monitor.tables``,
``detectors``.
"""

from monitor.stream.arms import ArmAccumulator, ArmSpec
from monitor.stream.columns import ColumnChunk, to_columns
from monitor.stream.export import Reactor
from monitor.stream.performance import PerformanceWindow
from monitor.stream.pipeline import ModelPipeline, WindowOutput
from monitor.stream.report_rows import ReportJob, ReportRows, WindowRows
from monitor.stream.report_writer import ReportWriter, rows_frame
from monitor.stream.service import Service, StepStats
from monitor.stream.window_state import ClosedWindow, OpenWindow
from monitor.stream.windows import Stream

__all__ = [
    "ArmAccumulator",
    "ArmSpec",
    "ClosedWindow",
    "ColumnChunk",
    "ModelPipeline",
    "OpenWindow",
    "PerformanceWindow",
    "Reactor",
    "ReportJob",
    "ReportRows",
    "ReportWriter",
    "Service",
    "StepStats",
    "Stream",
    "WindowOutput",
    "WindowRows",
    "rows_frame",
    "to_columns",
]
