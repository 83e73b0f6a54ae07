"""Reading user files (CSV, Parquet) and turning columns into detector arrays.

pandas is fine here: this runs at baseline-build time and in ``driftloop
evaluate``, never in the streaming hot path. The array conventions are the
detectors' (see docs/internals.md): numeric columns are float64 with NaN for
missing, categorical columns are object arrays of ``str`` with None for missing;
booleans are the categories ``"false"``/``"true"`` and integers their ``str()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from monitor.errors import InputError

__all__ = [
    "MAX_INTEGER_CATEGORIES",
    "FeatureKind",
    "canonical_category",
    "categorical_array",
    "columns_for",
    "infer_kind",
    "infer_kinds",
    "numeric_array",
    "read_table",
    "require_columns",
]

FeatureKind = Literal["numeric", "categorical"]

# integer columns with at most this many distinct values are read as categories
# (loan durations, counts of previous loans), as Evidently does for low-cardinality numbers
MAX_INTEGER_CATEGORIES = 10

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def read_table(path: str | Path, what: str = "data") -> pd.DataFrame:
    """Read a CSV or Parquet file; raises InputError naming the file on any problem."""
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise InputError(f"{what} file {path}: file not found")
    if path.is_dir():
        raise InputError(f"{what} file {path}: is a directory, expected a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise InputError(f"{what} file {path}: file is empty, expected a header and rows")
    try:
        if name.endswith(_PARQUET_SUFFIXES):
            frame = pd.read_parquet(path)
        elif name.endswith(_CSV_SUFFIXES):
            frame = pd.read_csv(path, low_memory=False)
        else:
            raise InputError(
                f"{what} file {path}: unknown file type {path.suffix!r}, expected .csv or .parquet"
            )
    except InputError:
        raise
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} file {path}: file is empty, expected a header and rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{what} file {path}: not a readable CSV file ({reason})") from None
    except Exception as exc:  # pyarrow raises a zoo of types for corrupt Parquet
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{what} file {path}: cannot be read ({reason})") from None
    if len(frame) == 0:
        raise InputError(f"{what} file {path}: no rows (only a header), expected at least one row")
    frame.columns = [str(column) for column in frame.columns]
    return frame


def require_columns(
    frame: pd.DataFrame, columns: Iterable[str], source: str | Path, role: str = "column"
) -> None:
    """Raise InputError naming the first column missing from ``frame``."""
    present = set(frame.columns)
    missing = [column for column in columns if column not in present]
    if missing:
        shown = ", ".join(list(frame.columns)[:12]) + (", ..." if frame.shape[1] > 12 else "")
        names = ", ".join(repr(m) for m in missing)
        raise InputError(f"{source}: {role} {names} not found; the file has columns: {shown}")


def infer_kind(series: pd.Series) -> FeatureKind:
    """numbers -> numeric; strings, booleans and low-cardinality integers -> categorical."""
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        values = series.dropna()
        if values.empty:
            return "numeric"
        integral = pd.api.types.is_integer_dtype(series) or bool(
            np.all(np.mod(values.to_numpy(dtype=np.float64), 1.0) == 0.0)
        )
        if integral and values.nunique() <= MAX_INTEGER_CATEGORIES:
            return "categorical"
        return "numeric"
    return "categorical"


def infer_kinds(
    frame: pd.DataFrame,
    exclude: Sequence[str] = (),
    categorical: Sequence[str] = (),
    source: str | Path = "data",
) -> dict[str, FeatureKind]:
    """Feature name -> kind for every column not excluded, in file order."""
    require_columns(frame, list(exclude), source, "excluded column")
    require_columns(frame, list(categorical), source, "categorical column")
    forced = set(categorical)
    skipped = set(exclude)
    kinds: dict[str, FeatureKind] = {}
    for column in frame.columns:
        if column in skipped:
            continue
        kinds[column] = "categorical" if column in forced else infer_kind(frame[column])
    return kinds


def numeric_array(series: pd.Series, source: str | Path = "") -> tuple[np.ndarray, int, str | None]:
    """float64 values with NaN for missing, the number of non-numeric cells and the first
    one, described as ``row N: 'value'`` (N counts data rows of ``series`` from 1)."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype(np.float64).to_numpy(), 0, None
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan), 0, None
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna() & series.notna()
    if series.dtype == object:
        # booleans inside an object column are numbers (0/1), not type violations
        bools = series.map(lambda v: isinstance(v, bool | np.bool_))
        converted = converted.where(~bools, series.where(bools).astype(float))
        bad = bad & ~bools
    n_bad = int(bad.sum())
    first = None
    if n_bad:
        position = int(np.flatnonzero(bad.to_numpy())[0])
        first = f"row {position + 1}: {series.iloc[position]!r}"
    return converted.to_numpy(dtype=np.float64, na_value=np.nan), n_bad, first


def canonical_category(value: object) -> str | None:
    """One value as the detectors' category string: booleans "true"/"false", integers
    and integral floats as ``str(int)``, None/NaN as None (missing)."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else str(float(value))
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def categorical_array(series: pd.Series, booleans: bool = False) -> np.ndarray:
    """object array of str with None for missing; ``booleans`` folds "True", "FALSE",
    "1", "0" to "true"/"false"."""
    n = len(series)
    out = np.full(n, None, dtype=object)
    mask = series.notna().to_numpy()
    if not mask.any():
        return out
    values = series[mask]
    if pd.api.types.is_bool_dtype(values):
        out[mask] = np.where(values.to_numpy(dtype=bool), "true", "false")
    elif pd.api.types.is_integer_dtype(values):
        out[mask] = values.astype(np.int64).astype(str).to_numpy(dtype=object)
    elif pd.api.types.is_float_dtype(values):
        floats = values.to_numpy(dtype=np.float64)
        if np.all(np.mod(floats, 1.0) == 0.0):
            out[mask] = floats.astype(np.int64).astype(str).astype(object)
        else:
            out[mask] = np.array([canonical_category(v) for v in floats], dtype=object)
    elif pd.api.types.infer_dtype(values, skipna=True) == "string":
        out[mask] = values.to_numpy(dtype=object)
    else:
        out[mask] = np.array([canonical_category(v) for v in values.to_numpy(dtype=object)],
                             dtype=object)
    if booleans:
        lowered = {"true": "true", "false": "false", "1": "true", "0": "false"}
        out[mask] = np.array([lowered.get(str(v).lower(), v) for v in out[mask]], dtype=object)
    return out


_canonical = canonical_category  # the name monitor.stream.columns imported first


def columns_for(
    frame: pd.DataFrame, kinds: Mapping[str, FeatureKind], source: str | Path
) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, str | None]]]:
    """Detector arrays for ``kinds``' columns, and per numeric column its non-numeric cells."""
    arrays: dict[str, np.ndarray] = {}
    violations: dict[str, tuple[int, str | None]] = {}
    for name, kind in kinds.items():
        if kind == "numeric":
            arrays[name], n_bad, first = numeric_array(frame[name], source)
            if n_bad:
                violations[name] = (n_bad, first)
        else:
            arrays[name] = categorical_array(frame[name])
    return arrays, violations
