"""Drift reports on disk: one gzip-compressed HTML file and one JSON note per report,
the last ``keep`` per model.

Layout: ``<dir>/<model>/<version>/<window key>.html.gz`` and ``.json`` beside it,
each name percent-encoded (so ``p0:7`` is ``p0%3A7`` and no name can be ``..``).
An Evidently page is about 4 MB of HTML, mostly its bundled scripts, and 1.2 MB
compressed. A file is written under a temporary name and renamed, so a reader
never sees half a report; the note is renamed last, and only reports with a note
are listed. "Newest" is by the window's end (event time), then by when the
report was written; pruning keeps the ``keep`` newest of each model.

The writer is one thread (``monitor.stream.report_writer``); readers are HTTP
threads, which may find a report pruned between listing and reading it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

__all__ = ["ReportFiles", "StoredReport", "safe_name"]

log = logging.getLogger("driftloop.reports")


def safe_name(text: str) -> str:
    """``text`` as one file name: percent-encoded, dots too (no ``.`` or ``..``)."""
    return quote(text, safe="-_~").replace(".", "%2E") or "%00"


@dataclass(frozen=True)
class StoredReport:
    """A report on disk and its note (``meta``: model, version, key, window, start,
    end, rows covered, Evidently's verdicts, written_at_ms, and what the writer adds)."""

    model: str
    version: str
    key: str
    html_path: Path
    meta: dict[str, Any]

    @property
    def order(self) -> tuple[str, int]:
        return str(self.meta.get("end") or ""), int(self.meta.get("written_at_ms") or 0)

    def gzip_bytes(self) -> bytes:
        """The compressed page; FileNotFoundError when it was pruned meanwhile."""
        return self.html_path.read_bytes()

    def html_bytes(self) -> bytes:
        return gzip.decompress(self.gzip_bytes())


class ReportFiles:
    """Reports under ``directory``; None: a new temporary directory, made when the first
    report is written (a service that never sees drift leaves nothing behind)."""

    def __init__(self, directory: str | Path | None, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"reports keep: got {keep}, expected a positive integer")
        self.directory = None if directory is None else Path(directory)
        self.keep = keep
        self._temporary = False  # the directory is one this object made

    def close(self) -> None:
        """Remove the temporary directory this object made (a configured one stays)."""
        if self._temporary and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self._temporary = False

    def _root(self) -> Path:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="driftloop-reports-"))
            self._temporary = True
            log.info("drift reports go to %s (set reports.dir to keep them elsewhere)",
                     self.directory)
        return self.directory

    def _dir(self, model: str, version: str) -> Path:
        return self._root() / safe_name(model) / safe_name(version)

    def write(self, model: str, version: str, key: str, html: str,
              meta: dict[str, Any]) -> StoredReport:
        """Store a report (replacing one of the same window), then prune the model's."""
        folder = self._dir(model, version)
        folder.mkdir(parents=True, exist_ok=True)
        stem = safe_name(key)
        meta = {**meta, "model": model, "version": version, "key": key,
                "written_at_ms": int(time.time() * 1000)}
        html_path = folder / f"{stem}.html.gz"
        _replace(html_path, gzip.compress(html.encode("utf-8"), compresslevel=6))
        _replace(folder / f"{stem}.json", json.dumps(meta, sort_keys=True).encode("utf-8"))
        self.prune(model)
        return StoredReport(model, version, key, html_path, meta)

    def newest_first(self, model: str) -> list[StoredReport]:
        """The model's reports, newest first."""
        if self.directory is None:
            return []
        found = []
        for note in (self.directory / safe_name(model)).glob("*/*.json"):
            try:
                meta = json.loads(note.read_bytes())
            except (OSError, ValueError):
                continue  # pruned meanwhile, or not ours
            html_path = note.with_name(note.name[:-len(".json")] + ".html.gz")
            found.append(StoredReport(model, unquote(note.parent.name),
                                      unquote(note.name[:-len(".json")]), html_path, meta))
        return sorted(found, key=lambda r: r.order, reverse=True)

    def latest(self, model: str) -> StoredReport | None:
        reports = self.newest_first(model)
        return reports[0] if reports else None

    def find(self, model: str, key: str, version: str | None = None) -> StoredReport | None:
        """The report of window ``key`` (of ``version``, or of the newest version that has
        one)."""
        for report in self.newest_first(model):
            if report.key == key and (version is None or report.version == version):
                return report
        return None

    def prune(self, model: str) -> list[StoredReport]:
        """Delete all but the ``keep`` newest reports of ``model``; returns those deleted."""
        gone = self.newest_first(model)[self.keep:]
        for report in gone:
            note = report.html_path.with_name(report.html_path.name[:-len(".html.gz")] + ".json")
            for path in (note, report.html_path):  # the note first: unlisted, then deleted
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return gone


def _replace(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
