"""Compact, exact binary encoding of a summary's per-bin arrays (checkpoints).

A window summary is mostly arrays over the reference bins: a count per bin and,
for numeric features, the sum of the values per bin. :func:`pack_bins` turns one
such pair into bytes and :func:`unpack_bins` gives back arrays equal to the
originals bit for bit (a restored window must evaluate to exactly what it would
have without the restart, so the float sums are stored as they are, never rounded).

Layout (little-endian): a 16-byte header, then the arrays.

- header: ``b"DLB"``, format version (1), layout (0 dense, 1 sparse), the count
  dtype code, the index dtype code, flags (bit 0: sums present), the number of
  bins (uint32) and the number of bins stored (uint32);
- dense: every bin's count, then (if present) every bin's sum as float64;
- sparse: the stored bins' indices as deltas from the previous one (the first
  from 0), then their counts, then their sums as float64.

Only bins whose count is non-zero or whose sum is not +0.0 (bit pattern) are
stored in the sparse layout; the others are zero, as they were. Counts take the
smallest unsigned dtype that holds the largest (int64 if one is negative), the
deltas the smallest that holds the largest gap. The layout is whichever is smaller.

>>> import numpy as np
>>> counts, sums = np.zeros(1000, np.int64), np.zeros(1000)
>>> counts[[3, 500]] = [2, 7]
>>> sums[[3, 500]] = [0.25, 7.5]
>>> blob = pack_bins(counts, sums)
>>> len(blob), len(counts.tobytes()) + len(sums.tobytes())
(38, 16000)
>>> got_counts, got_sums = unpack_bins(blob)
>>> bool(np.array_equal(got_counts, counts) and np.array_equal(got_sums, sums))
True
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

__all__ = ["PACK_MAGIC", "PACK_VERSION", "pack_bins", "unpack_bins"]

PACK_MAGIC = b"DLB"
PACK_VERSION = 1
_HEADER = struct.Struct("<3sBBBBBII")  # magic, version, layout, counts, index, flags, n, stored
_DENSE, _SPARSE = 0, 1
_HAS_SUMS = 1
# dtype codes: 1, 2, 4, 8 = unsigned of that many bytes; 9 = int64
_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8"),
    9: np.dtype("<i8")}
_FLOAT = np.dtype("<f8")


def _code(values: np.ndarray) -> int:
    """The smallest dtype code whose dtype holds every value."""
    if values.size == 0:
        return 1
    if int(values.min()) < 0:
        return 9
    top = int(values.max())
    for code in (1, 2, 4):
        if top < 1 << (8 * code):
            return code
    return 8


def pack_bins(counts: np.ndarray, sums: np.ndarray | None = None) -> bytes:
    """Counts per bin (integers) and optionally a float64 sum per bin, as bytes."""
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.dtype.kind not in "iu":
        raise ValueError(f"pack_bins counts: got dtype {counts.dtype} of shape {counts.shape}, "
                         "expected a 1-d integer array")
    n = counts.size
    flags = 0
    if sums is not None:
        sums = np.asarray(sums, dtype=_FLOAT)
        if sums.shape != counts.shape:
            raise ValueError(f"pack_bins sums: got shape {sums.shape}, expected {counts.shape}")
        flags |= _HAS_SUMS
    # a bin is stored if anything about it is not zero: +0.0 is the only sum left out
    used = counts != 0
    if sums is not None:
        used |= sums.view(np.uint64) != 0
    stored = np.flatnonzero(used)
    count_code = _code(counts)
    value_bytes = _DTYPES[count_code].itemsize + (8 if sums is not None else 0)
    deltas = np.diff(stored, prepend=0)
    index_code = _code(deltas) if stored.size else 1
    sparse_size = stored.size * (_DTYPES[index_code].itemsize + value_bytes)
    if sparse_size < n * value_bytes:
        parts = [deltas.astype(_DTYPES[index_code]).tobytes(),
                 counts[stored].astype(_DTYPES[count_code]).tobytes()]
        if sums is not None:
            parts.append(sums[stored].tobytes())
        header = _HEADER.pack(PACK_MAGIC, PACK_VERSION, _SPARSE, count_code, index_code, flags,
                              n, stored.size)
    else:
        parts = [counts.astype(_DTYPES[count_code]).tobytes()]
        if sums is not None:
            parts.append(sums.astype(_FLOAT).tobytes())
        header = _HEADER.pack(PACK_MAGIC, PACK_VERSION, _DENSE, count_code, 1, flags, n, n)
    return b"".join([header, *parts])


def unpack_bins(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """The counts (int64) and sums (float64, or None) that :func:`pack_bins` packed."""
    if len(data) < _HEADER.size:
        raise ValueError(f"packed bins: got {len(data)} bytes, expected at least {_HEADER.size}")
    magic, version, layout, count_code, index_code, flags, n, n_stored = _HEADER.unpack_from(data)
    if magic != PACK_MAGIC:
        raise ValueError(f"packed bins: got magic {magic!r}, expected {PACK_MAGIC!r}")
    if version != PACK_VERSION:
        raise ValueError(f"packed bins: got format version {version}, expected {PACK_VERSION}")
    if layout not in (_DENSE, _SPARSE) or count_code not in _DTYPES or index_code not in _DTYPES:
        raise ValueError(f"packed bins: got layout {layout}, dtype codes {count_code} and "
                         f"{index_code}, expected layout 0 or 1 and codes in {sorted(_DTYPES)}")
    has_sums = bool(flags & _HAS_SUMS)
    count_dtype, index_dtype = _DTYPES[count_code], _DTYPES[index_code]
    index_size = index_dtype.itemsize if layout == _SPARSE else 0
    expected = _HEADER.size + n_stored * (index_size + count_dtype.itemsize
                                          + (8 if has_sums else 0))
    if len(data) != expected or n_stored > n:
        raise ValueError(f"packed bins: got {len(data)} bytes for {n_stored} of {n} bins, "
                         f"expected {expected}")
    offset = _HEADER.size
    indices = None
    if layout == _SPARSE:
        deltas = np.frombuffer(data, index_dtype, n_stored, offset)
        offset += n_stored * index_size
        indices = np.cumsum(deltas, dtype=np.int64)
        if n_stored and (indices[-1] >= n or np.any(deltas[1:] == 0)):
            raise ValueError(f"packed bins: got bin indices beyond {n - 1} or repeated")
    stored_counts = np.frombuffer(data, count_dtype, n_stored, offset).astype(np.int64)
    offset += n_stored * count_dtype.itemsize
    stored_sums = (np.frombuffer(data, _FLOAT, n_stored, offset).astype(np.float64)
                   if has_sums else None)
    if indices is None:
        return stored_counts, stored_sums
    counts = np.zeros(n, np.int64)
    counts[indices] = stored_counts
    sums = None
    if stored_sums is not None:
        sums = np.zeros(n, np.float64)
        sums[indices] = stored_sums
    return counts, sums
