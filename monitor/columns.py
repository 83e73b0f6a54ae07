"""Rows of decoded events -> the column arrays the detectors take.

The per-event path only appends a reference to the event to a list; this
module turns a chunk of buffered rows into one array per profiled column, with
the same canonical values as the batch path (``monitor.tables``): numbers as
float64 with NaN for missing, categories as ``str`` with None for missing,
booleans as ``"true"``/``"false"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import detectors
from monitor.tables import canonical_category

__all__ = ["ColumnChunk", "to_columns"]

_BOOLEAN_WORDS = {"true": "true", "false": "false", "1": "true", "0": "false"}


class ColumnChunk:
    """Arrays for one chunk of rows, the non-numeric cells per numeric column and the
    keys that are not in the baseline."""

    __slots__ = ("arrays", "extra_keys", "n_rows", "type_violations")

    def __init__(self, arrays: dict[str, np.ndarray], type_violations: dict[str, int],
                 extra_keys: set[str], n_rows: int) -> None:
        self.arrays = arrays
        self.type_violations = type_violations
        self.extra_keys = extra_keys
        self.n_rows = n_rows


def _numeric(values: list[Any]) -> tuple[np.ndarray, int]:
    try:
        # None becomes NaN, booleans 0/1, numeric strings their number
        return np.array(values, dtype=np.float64), 0
    except (TypeError, ValueError):
        pass
    out = np.empty(len(values), dtype=np.float64)
    bad = 0
    for i, value in enumerate(values):
        if value is None:
            out[i] = np.nan
            continue
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            out[i] = np.nan
            bad += 1
    return out, bad


def _categorical(values: list[Any], booleans: bool) -> np.ndarray:
    out = np.array([v if type(v) is str else canonical_category(v) for v in values], dtype=object)
    if booleans:
        out = np.array([v if v is None else _BOOLEAN_WORDS.get(v.lower(), v) for v in out],
                       dtype=object)
    return out


def to_columns(
    profiles: Mapping[str, detectors.FeatureProfile],
    rows: Sequence[Mapping[str, Any]],
    extra: Mapping[str, Sequence[Any]] | None = None,
) -> ColumnChunk:
    """``rows``: feature dicts; ``extra``: whole columns given directly (prediction, score).

    A profiled feature that no row carries is left out, so the summary records it as a
    missing column rather than as missing values.
    """
    arrays: dict[str, np.ndarray] = {}
    violations: dict[str, int] = {}
    seen_keys: set[str] = set().union(*(row.keys() for row in rows)) if rows else set()
    for name, profile in profiles.items():
        if extra is not None and name in extra:
            values = list(extra[name])
        elif name in seen_keys:
            values = [row.get(name) for row in rows]
        else:
            continue
        if profile.kind == "numeric":
            arrays[name], bad = _numeric(values)
            if bad:
                violations[name] = bad
        else:
            categories = getattr(profile, "categories", [])
            booleans = bool(categories) and set(categories) <= {"true", "false"}
            arrays[name] = _categorical(values, booleans)
    return ColumnChunk(arrays, violations, seen_keys - profiles.keys(), len(rows))
