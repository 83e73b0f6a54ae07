"""One window against its baseline, the same way for a file and for the stream.

- :mod:`~monitor.evaluate.window`: ``evaluate_window`` (drift, quality, performance ->
  the window result of design 6.1) and ``evaluate_performance_window``;
- :mod:`~monitor.evaluate.batch`: a data file (and its labels) in row windows;
- :mod:`~monitor.evaluate.report`: the Evidently HTML report of a window.

``driftloop evaluate`` and ``driftloop serve`` both call ``evaluate_window``, so their
results agree on the same rows.

May import: ``monitor.baseline``, ``monitor.config``, ``monitor.tables``,
``monitor.errors``, ``detectors``.
"""

from monitor.evaluate.batch import BadValues, WindowOutcome, evaluate_frame, read_labels
from monitor.evaluate.report import report_frames, write_drift_report
from monitor.evaluate.window import (
    LabeledRows,
    WindowMeta,
    drift_settings,
    evaluate_performance_window,
    evaluate_window,
    quality_settings,
)

__all__ = [
    "BadValues",
    "LabeledRows",
    "WindowMeta",
    "WindowOutcome",
    "drift_settings",
    "evaluate_frame",
    "evaluate_performance_window",
    "evaluate_window",
    "quality_settings",
    "read_labels",
    "report_frames",
    "write_drift_report",
]
