"""Rows of decoded events -> the column arrays the detectors take.

The per-event path only appends a reference to the event to a list; this
module turns a chunk of buffered rows into one array per profiled column, with
the same canonical values as the batch path (``monitor.tables``): numbers as
float64 with NaN for missing, categories as ``str`` with None for missing,
booleans as ``"true"``/``"false"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

import detectors
from monitor.ingest.batch import PredictionBatch
from monitor.tables import canonical_category

__all__ = ["ColumnChunk", "batch_columns", "to_columns"]

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


def _categorical(values: Sequence[Any], booleans: bool) -> np.ndarray:
    kinds = set(map(type, values))
    if not booleans and kinds <= {str, int}:  # the common cases, without a Python loop
        out = np.empty(len(values), dtype=object)
        if kinds != {str}:  # str(int) is canonical; one text per distinct value, hashed once
            texts = {value: str(value) for value in set(values)}
            values = list(map(texts.__getitem__, values))
        out[:] = values
        return out
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
    fast = _to_columns_fast(profiles, rows, extra)
    if fast is not None:
        return fast
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


def _to_columns_fast(
    profiles: Mapping[str, detectors.FeatureProfile],
    rows: Sequence[Mapping[str, Any]],
    extra: Mapping[str, Sequence[Any]] | None,
) -> ColumnChunk | None:
    """The same chunk for the usual case (every row has exactly the profiled features,
    numeric cells are numbers or null), column-wise in C; None when a row differs."""
    extra = extra or {}
    names = [name for name in profiles if name not in extra]
    if not rows or not names or set(map(len, rows)) != {len(names)}:
        return None
    numeric = [n for n in names if profiles[n].kind == "numeric"]
    categorical = [n for n in names if profiles[n].kind != "numeric"]
    arrays: dict[str, np.ndarray] = {}
    try:  # a missing key (an extra one instead) raises KeyError
        if numeric:
            # None becomes NaN, booleans 0/1, numeric strings their number, as _numeric
            numbers: Iterable[Any] = map(itemgetter(*numeric), rows)
            if len(numeric) > 1:
                numbers = chain.from_iterable(numbers)
            table = np.fromiter(numbers, dtype=np.float64, count=len(rows) * len(numeric))
            table = table.reshape(len(rows), len(numeric)).T.copy()
            arrays.update(zip(numeric, table, strict=True))
        if categorical:
            cells = list(map(itemgetter(*categorical), rows))
            columns: list[Sequence[Any]] = (list(zip(*cells, strict=True))
                                            if len(categorical) > 1 else [cells])
            for name, column in zip(categorical, columns, strict=True):
                arrays[name] = _categorical(column, _is_boolean(profiles[name]))
    except (KeyError, TypeError, ValueError):
        return None
    violations: dict[str, int] = {}
    for name, values in extra.items():
        profile = profiles.get(name)
        if profile is None:
            continue
        if profile.kind == "numeric":
            arrays[name], bad = _numeric(list(values))
            if bad:
                violations[name] = bad
        else:
            arrays[name] = _categorical(list(values), _is_boolean(profile))
    return ColumnChunk({name: arrays[name] for name in profiles if name in arrays}, violations,
                       set(), len(rows))


def _is_boolean(profile: detectors.FeatureProfile) -> bool:
    categories = getattr(profile, "categories", [])
    return bool(categories) and set(categories) <= {"true", "false"}


def batch_columns(
    profiles: Mapping[str, detectors.FeatureProfile],
    batch: PredictionBatch,
    extra: Mapping[str, Sequence[Any]] | None = None,
) -> ColumnChunk | None:
    """``to_columns`` of a batch's rows, from its columns: the same arrays as
    ``to_columns(profiles, [e.features for e in batch.events()], extra)``; None when the
    batch's features are not exactly the profiled ones (not in ``extra``) with the same
    kinds (a window binned with an older baseline): the caller then goes by rows."""
    extra = extra or {}
    names = [name for name in profiles if name not in extra]
    if set(names) != batch.features.keys() or not names:
        return None
    arrays: dict[str, np.ndarray] = {}
    violations: dict[str, int] = {}
    for name, profile in profiles.items():
        if name in extra:
            if profile.kind == "numeric":
                arrays[name], bad = _numeric(list(extra[name]))
                if bad:
                    violations[name] = bad
            else:
                arrays[name] = _categorical(list(extra[name]), _is_boolean(profile))
            continue
        column = batch.features[name]
        if isinstance(column, np.ndarray):
            if profile.kind != "numeric":
                return None
            arrays[name] = column
        elif profile.kind == "numeric":
            return None
        else:
            arrays[name] = _categorical(column, _is_boolean(profile))
    return ColumnChunk(arrays, violations, set(), len(batch))
