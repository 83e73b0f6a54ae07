"""One window against its baseline, the same way for a file and for the stream.

- :mod:`~monitor.evaluate.window`: ``evaluate_window`` (drift, quality, performance ->
  the window result of design 6.1) and ``evaluate_performance_window``;
- :mod:`~monitor.evaluate.estimate`: the label-free performance estimate (CBPE): a
  window's confidence counts (``WindowEstimator``) and its ``estimated_performance``;
- :mod:`~monitor.evaluate.batch`: a data file (and its labels) in row windows;
- :mod:`~monitor.evaluate.report`: the Evidently HTML report of a window, with the
  window's methods and thresholds (:mod:`~monitor.evaluate.report_plan`) and a header
  setting Evidently's verdicts beside the window's (:mod:`~monitor.evaluate.report_header`);
- :mod:`~monitor.evaluate.report_files`: reports on disk, the last N per model.

``driftloop evaluate`` and ``driftloop serve`` both call ``evaluate_window``, so their
results agree on the same rows.

May import: ``monitor.baseline``, ``monitor.config``, ``monitor.tables``,
``monitor.errors``, ``detectors``.
"""

from monitor.evaluate.batch import BadValues, WindowOutcome, evaluate_frame, read_labels
from monitor.evaluate.estimate import ScoredRow, WindowEstimator, evaluate_estimate
from monitor.evaluate.report import (
    DriftReport,
    build_drift_report,
    evidently_verdicts,
    report_frames,
    write_drift_report,
)
from monitor.evaluate.report_files import ReportFiles, StoredReport
from monitor.evaluate.report_header import RowsCovered, covered_sentence
from monitor.evaluate.report_plan import METHODS, ColumnVerdict, ReportPlan, drifted
from monitor.evaluate.window import (
    LabeledRows,
    WindowMeta,
    drift_settings,
    evaluate_performance_window,
    evaluate_window,
    quality_settings,
)

__all__ = [
    "METHODS",
    "BadValues",
    "ColumnVerdict",
    "DriftReport",
    "LabeledRows",
    "ReportFiles",
    "ReportPlan",
    "RowsCovered",
    "ScoredRow",
    "StoredReport",
    "WindowEstimator",
    "WindowMeta",
    "WindowOutcome",
    "build_drift_report",
    "covered_sentence",
    "drift_settings",
    "drifted",
    "evaluate_estimate",
    "evaluate_frame",
    "evaluate_performance_window",
    "evaluate_window",
    "evidently_verdicts",
    "quality_settings",
    "read_labels",
    "report_frames",
    "write_drift_report",
]
