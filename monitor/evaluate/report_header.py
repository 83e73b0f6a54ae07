"""The header driftloop puts on top of an Evidently drift report: which window, which
rows, and Evidently's verdict beside driftloop's for every column.

Plain HTML with inline styles (Evidently's page brings its own fonts and scripts).
Everything that comes from data (model, version, feature and category names,
sentences) goes through :func:`html.escape`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from monitor.evaluate.report_plan import LINF, ColumnVerdict, ReportPlan

__all__ = ["RowsCovered", "covered_sentence", "header_html"]


@dataclass(frozen=True)
class RowsCovered:
    """Which of the window's rows the report shows.

    ``shown``: rows in the report; ``seen``: rows of the window the service read
    (``shown`` is a uniform sample of them when smaller); ``window_rows``: the
    window's rows (``seen`` is smaller when the service restarted while the window
    was open: rows read before the restart are not kept). Offsets are those of the
    rows seen, on ``partition``; ``window_first_offset`` is where the window began.
    """

    shown: int
    seen: int
    window_rows: int | None = None
    partition: int | None = None
    first_offset: int | None = None
    last_offset: int | None = None
    window_first_offset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def covered_sentence(rows: RowsCovered) -> str:
    """``all 1000 rows of the window`` or ``a uniform sample of 5000 of ...``, plainly."""
    total = rows.window_rows if rows.window_rows is not None else rows.seen
    where = ""
    if rows.partition is not None and rows.first_offset is not None:
        where = (f" (offsets {rows.first_offset} to {rows.last_offset} of partition "
                 f"{rows.partition})")
    if rows.seen >= total:
        if rows.shown >= rows.seen:
            return f"all {rows.seen} rows of the window{where}"
        return f"a uniform sample of {rows.shown} of the window's {rows.seen} rows{where}"
    lead = (f"all {rows.seen}" if rows.shown >= rows.seen
            else f"a uniform sample of {rows.shown} of the {rows.seen}")
    began = ("" if rows.window_first_offset is None
             else f", from offset {rows.window_first_offset},")
    return (f"{lead} rows read since the service restarted{where}: the window's first "
            f"{total - rows.seen} of its {total} rows{began} were read before the restart "
            "and are not kept")


_STYLE = ("font:14px/1.45 system-ui,sans-serif;margin:16px 24px;padding:12px 16px;"
          "border:1px solid #ccd;border-radius:6px;background:#f8f9fc;color:#222")
_CELL = "padding:2px 10px;border-bottom:1px solid #e3e6ee;text-align:left"


def _number(value: Any) -> str:
    if value is None:
        return "-"
    number = float(value)
    return f"{number:.3g}" if abs(number) < 0.001 and number != 0.0 else f"{number:.3f}"


def _verdict(drift: bool | None) -> str:
    if drift is None:
        return "-"
    return '<b style="color:#b3261e">drift</b>' if drift else "no drift"


def header_html(
    result: Mapping[str, Any],
    *,
    plan: ReportPlan,
    ours: Mapping[str, Mapping[str, Any]],
    verdicts: Mapping[str, ColumnVerdict],
    disagreements: tuple[str, ...],
    evidently_share: float | None,
    covered: RowsCovered,
    reference_rows: int,
    baseline_rows: int,
    title: str | None = None,
) -> str:
    """The header block (a ``<section>``) for the report of window ``result``."""
    model = escape(str(result.get("model", "")))
    version = escape(str(result.get("version", "")))
    key = result.get("partition")
    window = escape(title or (f"window p{key}:{result.get('window')}" if key is not None
                              else f"window {result.get('window')}"))
    span = ""
    if result.get("start") or result.get("end"):
        span = f", {escape(str(result.get('start')))} to {escape(str(result.get('end')))}"
    share = result.get("drift_share")
    verdict = "dataset drift" if result.get("dataset_drift") else "no dataset drift"
    lines = [
        f"<h2 style=\"margin:0 0 6px;font-size:18px\">driftloop drift report: {model} "
        f"version {version}, {window}{span}</h2>",
        f"<p style=\"margin:4px 0\">Window result: <b>{verdict}</b> (share of drifting "
        f"features {_number(share)}, threshold {_number(plan.share)}). Evidently: share "
        f"{_number(evidently_share)}.</p>",
        f"<p style=\"margin:4px 0\">Current rows: {escape(covered_sentence(covered))}. "
        f"Reference rows: {reference_rows} rows of the baseline's reference sample "
        f"(driftloop compares with the baseline's profile of all {baseline_rows} training "
        "rows).</p>",
    ]
    if disagreements:
        lines.append(
            "<p style=\"margin:4px 0;color:#b3261e\">Evidently disagrees with the window on: "
            f"{escape(', '.join(disagreements))}. Evidently tests rows (a sample of the "
            "reference), driftloop the window's summary against the full profile; the "
            "window result is the verdict of record.</p>")
    else:
        lines.append(f"<p style=\"margin:4px 0\">Evidently agrees with the window on all "
                     f"{len(verdicts)} columns tested, with driftloop's methods and "
                     "thresholds.</p>")
    lines.append(_table(plan, ours, verdicts))
    notes = _notes(plan)
    if notes:
        lines.append("<ul style=\"margin:6px 0 0;padding-left:20px\">"
                     + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    return f"<section id=\"driftloop-header\" style=\"{_STYLE}\">{''.join(lines)}</section>"


def _table(plan: ReportPlan, ours: Mapping[str, Mapping[str, Any]],
           verdicts: Mapping[str, ColumnVerdict]) -> str:
    head = "".join(f"<th style=\"{_CELL}\">{h}</th>" for h in (
        "column", "method", "threshold", "driftloop score", "driftloop", "Evidently score",
        "Evidently"))
    rows = []
    for column in (*plan.features, *plan.roles, *plan.untested):
        mine = ours.get(column) or {}
        theirs = verdicts.get(column)
        cells = [
            escape(column), escape(str(mine.get("method", "-"))), _number(mine.get("threshold")),
            _number(mine.get("score")),
            _verdict(mine.get("drift")) if column not in plan.untested
            else escape(plan.untested[column]),
            _number(theirs.score) if theirs else "-",
            _verdict(theirs.drift) if theirs else "not tested",
        ]
        rows.append("<tr>" + "".join(f"<td style=\"{_CELL}\">{c}</td>" for c in cells) + "</tr>")
    return ("<table style=\"border-collapse:collapse;margin-top:8px\"><thead><tr>"
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _notes(plan: ReportPlan) -> list[str]:
    methods = set(plan.methods.values())
    notes = []
    if LINF in methods:
        notes.append("L-infinity is not one of Evidently's drift methods: driftloop adds it "
                     f"to Evidently as '{LINF}' (the largest change of a category's share).")
    if methods & {"ks", "chisquare", "z"}:
        notes.append("p-value methods (ks, chisquare, z): the threshold is the significance "
                     "level driftloop used, after its multiple-testing correction; drift when "
                     "the p-value is below it.")
    binned = [c for c in plan.numeric if plan.methods[c] in ("psi", "jensenshannon")]
    if binned:
        notes.append(f"PSI and Jensen-Shannon of numeric columns ({', '.join(binned)}): "
                     "Evidently bins them in equal-width Sturges bins, driftloop in ten "
                     "reference quantile bins, so their scores differ.")
    return notes
