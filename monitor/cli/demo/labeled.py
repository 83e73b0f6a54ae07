"""The file of labeled rows: what the demo's label feed knows, and what a retrain trains on.

The label feed appends one JSON line per label it publishes: the prediction's row
number and time, the features the model saw and the label. The retrain reads the
rows predicted since a given time (:func:`read_labeled`). One writer appends whole
lines; a reader may meet a last line still being written, which it skips (the
next read sees it whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from monitor.cli.demo.world import FEATURES

__all__ = ["append_labeled", "format_time", "parse_time", "read_labeled"]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 time (as driftloop's ``{window_start}`` or :func:`format_time` write
    it), or None for an empty value."""
    if not text.strip():
        return None
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def append_labeled(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append rows ``{"row", "timestamp", "features", "label"}``, one JSON line each."""
    data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    if data:
        with path.open("ab") as stream:
            stream.write(data)


def read_labeled(path: Path, since: datetime) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and labels of the rows predicted at or after ``since``, in row order."""
    found: list[dict[str, Any]] = []
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the line being appended right now
        moment = parse_time(row["timestamp"])
        if moment is not None and moment >= since:
            found.append(row)
    found.sort(key=lambda row: int(row["row"]))
    features = pd.DataFrame([row["features"] for row in found], columns=list(FEATURES))
    labels = np.asarray([int(row["label"]) for row in found], dtype=np.int64)
    return features, labels
