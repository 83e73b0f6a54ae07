"""The consumer loop of ``driftloop serve``: records in, window results persisted, offsets out.

- :mod:`~monitor.stream.service`: ``Service.step``, one pass of the loop (poll, decode,
  windows, evaluate, persist, export, react, commit);
- :mod:`~monitor.stream.recovery`: start-up, rebalances and rewinds (checkpoints back
  into memory);
- :mod:`~monitor.stream.pipeline`: ``ModelPipeline``, one model's baseline, windows and
  realized-performance windows;
- :mod:`~monitor.stream.windows`: ``Stream``, count and event-time windows of one
  (model, version, partition), checkpointable;
- :mod:`~monitor.stream.columns`: buffered events -> the detectors' column arrays.

May import: ``monitor.ingest``, ``monitor.evaluate``, ``monitor.baseline``,
``monitor.store``, ``monitor.config``, ``monitor.metrics``, ``monitor.tables``,
``detectors``.
"""

from monitor.stream.columns import ColumnChunk, to_columns
from monitor.stream.pipeline import ModelPipeline, PerformanceWindow, WindowOutput
from monitor.stream.service import Reactor, Service, StepStats
from monitor.stream.windows import ClosedWindow, OpenWindow, Stream

__all__ = [
    "ClosedWindow",
    "ColumnChunk",
    "ModelPipeline",
    "OpenWindow",
    "PerformanceWindow",
    "Reactor",
    "Service",
    "StepStats",
    "Stream",
    "WindowOutput",
    "to_columns",
]
