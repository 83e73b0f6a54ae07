"""Window summaries: bounded, mergeable counts over a reference profile's bins.

A window never keeps raw rows. Per numeric feature it keeps the count per fine
reference bin, the counts and summed distances below the reference minimum and
above its maximum (which make Wasserstein's tails exact), missing values and
moments; per categorical feature the count per reference category and the
counts of unseen categories (at most ``MAX_UNSEEN`` names, the rest pooled).
Merging adds counts, so summaries from several replicas merge exactly.

>>> import numpy as np
>>> from detectors.profile import profile_column
>>> profiles = {"x": profile_column(np.arange(100.0), "numeric")}
>>> s = WindowSummary.empty(profiles)
>>> s.add({"x": np.array([1.0, 200.0, np.nan])}, 3)
>>> (s.n_rows, s.numeric["x"].above, s.numeric["x"].missing)
(3, 1, 1)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from detectors.packing import pack_bins, unpack_bins
from detectors.profile import CategoricalProfile, FeatureProfile, NumericProfile

__all__ = ["MAX_UNSEEN", "SUMMARY_PACKED_FORMAT", "CategoricalCounts", "NumericCounts",
           "WindowSummary"]

MAX_UNSEEN = 50
_UNSEEN = -1
# version of the ``to_packed`` dicts (their arrays are detectors.packing bytes)
SUMMARY_PACKED_FORMAT = 1


@dataclass
class NumericCounts:
    counts: np.ndarray
    sums: np.ndarray | None = None  # sum of the values per fine bin (None: bin means assumed)
    below: int = 0
    above: int = 0
    below_distance: float = 0.0
    above_distance: float = 0.0
    missing: int = 0
    type_violations: int = 0
    total: float = 0.0
    total_squares: float = 0.0
    min: float = float("inf")
    max: float = float("-inf")

    @property
    def n_values(self) -> int:
        return int(self.counts.sum())

    def add(self, profile: NumericProfile, values: np.ndarray) -> None:
        # Sorting the chunk once and searching the edges in it is about 10x faster than
        # searching every value among the edges. NaN sorts last, so the missing values are
        # the tail from the first NaN. Few numpy calls per chunk: each costs microseconds
        # whatever its size, and a poll folds every feature of every window it touches.
        x = np.sort(np.asarray(values, dtype=np.float64))
        present = int(np.searchsorted(x, np.nan, side="left"))
        self.missing += x.size - present
        x = x[:present]
        if x.size == 0:
            return
        edges = profile.edges
        # ends[i]: values < edges[i], and the last one: values <= maximum
        ends = np.searchsorted(x, edges, side="left")
        below = int(ends[0])
        at_most_max = int(np.searchsorted(x, edges[-1], side="right"))
        ends[-1] = at_most_max
        counts = ends[1:] - ends[:-1]
        self.counts += counts
        # each non-empty bin's run of x ends where the next non-empty one starts
        if at_most_max > below:
            filled = counts > 0
            bin_sums = np.zeros(counts.size)
            bin_sums[filled] = np.add.reduceat(x[:at_most_max], ends[:-1][filled])
            self.sums = bin_sums if self.sums is None else self.sums + bin_sums
        elif self.sums is None:
            self.sums = np.zeros(counts.size)
        if below:
            self.below += below
            self.below_distance += float(edges[0] * below - x[:below].sum())
        if at_most_max < x.size:
            n_above = x.size - at_most_max
            self.above += n_above
            self.above_distance += float(x[at_most_max:].sum() - edges[-1] * n_above)
        self.total += float(x.sum())
        # einsum, not np.dot: BLAS threads cost milliseconds on a busy machine for one dot
        self.total_squares += float(np.einsum("i,i->", x, x))
        self.min = min(self.min, float(x[0]))
        self.max = max(self.max, float(x[-1]))

    def merge(self, other: NumericCounts) -> NumericCounts:
        return NumericCounts(
            counts=self.counts + other.counts, sums=_add(self.sums, other.sums),
            below=self.below + other.below,
            above=self.above + other.above,
            below_distance=self.below_distance + other.below_distance,
            above_distance=self.above_distance + other.above_distance,
            missing=self.missing + other.missing,
            type_violations=self.type_violations + other.type_violations,
            total=self.total + other.total, total_squares=self.total_squares + other.total_squares,
            min=min(self.min, other.min), max=max(self.max, other.max),
        )

    @property
    def n_total(self) -> int:
        """Values present, including those outside the reference range."""
        return self.n_values + self.below + self.above

    def to_dict(self) -> dict[str, Any]:
        finite = self.n_total > 0
        return {
            "counts": self.counts.tolist(),
            "sums": None if self.sums is None else self.sums.tolist(),
            "below": self.below, "above": self.above,
            "below_distance": self.below_distance, "above_distance": self.above_distance,
            "missing": self.missing, "type_violations": self.type_violations,
            "total": self.total, "total_squares": self.total_squares,
            "min": self.min if finite else None, "max": self.max if finite else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericCounts:
        return cls(
            counts=np.asarray(data["counts"], dtype=np.int64),
            sums=None if data.get("sums") is None else np.asarray(data["sums"], np.float64),
            below=int(data["below"]),
            above=int(data["above"]), below_distance=float(data["below_distance"]),
            above_distance=float(data["above_distance"]), missing=int(data["missing"]),
            type_violations=int(data["type_violations"]), total=float(data["total"]),
            total_squares=float(data["total_squares"]),
            min=float("inf") if data["min"] is None else float(data["min"]),
            max=float("-inf") if data["max"] is None else float(data["max"]),
        )

    def to_packed(self) -> dict[str, Any]:
        """Like ``to_dict`` but the bins as :func:`detectors.packing.pack_bins` bytes and
        every float as it is (min and max included): for a binary container."""
        return {
            "bins": pack_bins(self.counts, self.sums),
            "below": int(self.below), "above": int(self.above),
            "below_distance": float(self.below_distance),
            "above_distance": float(self.above_distance),
            "missing": int(self.missing), "type_violations": int(self.type_violations),
            "total": float(self.total), "total_squares": float(self.total_squares),
            "min": float(self.min), "max": float(self.max),
        }

    @classmethod
    def from_packed(cls, data: Mapping[str, Any]) -> NumericCounts:
        counts, sums = unpack_bins(data["bins"])
        return cls(
            counts=counts, sums=sums, below=int(data["below"]), above=int(data["above"]),
            below_distance=float(data["below_distance"]),
            above_distance=float(data["above_distance"]), missing=int(data["missing"]),
            type_violations=int(data["type_violations"]), total=float(data["total"]),
            total_squares=float(data["total_squares"]), min=float(data["min"]),
            max=float(data["max"]),
        )


def _add(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None or b is None:
        return b if a is None else a
    return a + b


@dataclass
class CategoricalCounts:
    counts: np.ndarray
    unseen: dict[str, int] = field(default_factory=dict)
    unseen_other: int = 0  # unseen values beyond the MAX_UNSEEN names kept
    missing: int = 0
    type_violations: int = 0

    @property
    def n_values(self) -> int:
        """Values present, seen or unseen."""
        return int(self.counts.sum()) + sum(self.unseen.values()) + self.unseen_other

    def add(self, index: Mapping[Any, int], values: Sequence[Any] | np.ndarray) -> None:
        """``index``: category -> bin, strings only (a dict of one key type looks up
        faster); missing values (None, NaN) go the way of unseen ones and are told apart
        there. A dict lookup per value runs in C through map(); only values outside the
        index go through Python."""
        codes = np.fromiter(map(index.get, values, repeat(_UNSEEN)), np.int64, len(values))
        self.counts += np.bincount(codes[codes >= 0], minlength=self.counts.size)
        unseen = codes == _UNSEEN
        if np.any(unseen):
            for value, count in Counter(np.asarray(values, dtype=object)[unseen]).items():
                if value is None or (isinstance(value, float) and value != value):
                    self.missing += count
                else:
                    self._add_unseen(str(value), count)

    def _add_unseen(self, name: str, count: int) -> None:
        if name in self.unseen or len(self.unseen) < MAX_UNSEEN:
            self.unseen[name] = self.unseen.get(name, 0) + count
        else:
            self.unseen_other += count

    def merge(self, other: CategoricalCounts) -> CategoricalCounts:
        merged = CategoricalCounts(
            counts=self.counts + other.counts, unseen=dict(self.unseen),
            unseen_other=self.unseen_other + other.unseen_other,
            missing=self.missing + other.missing,
            type_violations=self.type_violations + other.type_violations,
        )
        for name, count in other.unseen.items():
            merged._add_unseen(name, count)
        return merged

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.tolist(), "unseen": dict(self.unseen),
                "unseen_other": self.unseen_other, "missing": self.missing,
                "type_violations": self.type_violations}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalCounts:
        return cls(counts=np.asarray(data["counts"], dtype=np.int64),
                   unseen={str(k): int(v) for k, v in data["unseen"].items()},
                   unseen_other=int(data["unseen_other"]), missing=int(data["missing"]),
                   type_violations=int(data["type_violations"]))

    def to_packed(self) -> dict[str, Any]:
        """Like ``to_dict`` but the counts as :func:`detectors.packing.pack_bins` bytes."""
        return {"counts": pack_bins(self.counts), "unseen": dict(self.unseen),
                "unseen_other": int(self.unseen_other), "missing": int(self.missing),
                "type_violations": int(self.type_violations)}

    @classmethod
    def from_packed(cls, data: Mapping[str, Any]) -> CategoricalCounts:
        counts, _ = unpack_bins(data["counts"])
        return cls(counts=counts, unseen={str(k): int(v) for k, v in data["unseen"].items()},
                   unseen_other=int(data["unseen_other"]), missing=int(data["missing"]),
                   type_violations=int(data["type_violations"]))


@dataclass
class WindowSummary:
    """Counts of one window over the reference profiles' bins (mutable while it fills)."""

    profiles: Mapping[str, FeatureProfile]
    numeric: dict[str, NumericCounts]
    categorical: dict[str, CategoricalCounts]
    n_rows: int = 0
    absent_rows: dict[str, int] = field(default_factory=dict)
    # columns the window had that the reference did not profile -> rows they came in
    extra_rows: dict[str, int] = field(default_factory=dict)
    _indexes: dict[str, dict[Any, int]] = field(default_factory=dict, repr=False)

    @classmethod
    def empty(cls, profiles: Mapping[str, FeatureProfile]) -> WindowSummary:
        numeric, categorical = {}, {}
        for name, profile in profiles.items():
            if isinstance(profile, NumericProfile):
                numeric[name] = NumericCounts(counts=np.zeros(profile.counts.size, np.int64),
                                              sums=np.zeros(profile.counts.size))
            else:
                categorical[name] = CategoricalCounts(
                    counts=np.zeros(len(profile.categories), np.int64))
        return cls(profiles=profiles, numeric=numeric, categorical=categorical)

    @property
    def missing_columns(self) -> list[str]:
        """Profiled features absent from at least one added chunk."""
        return sorted(name for name, rows in self.absent_rows.items() if rows > 0)

    def add(self, columns: Mapping[str, np.ndarray], n_rows: int) -> None:
        for name, values in columns.items():
            if name in self.profiles and len(values) != n_rows:
                raise ValueError(
                    f"window column {name!r}: got {len(values)} values, expected {n_rows} rows")
        for name, profile in self.profiles.items():
            if name not in columns:
                self.absent_rows[name] = self.absent_rows.get(name, 0) + n_rows
                self._counts(name).missing += n_rows
            elif isinstance(profile, NumericProfile):
                self.numeric[name].add(profile, columns[name])
            else:
                self.categorical[name].add(self._index(name, profile), columns[name])
        self.n_rows += n_rows

    def add_type_violations(self, feature: str, count: int) -> None:
        self._counts(feature).type_violations += count

    def add_extra_columns(self, names: Iterable[str], n_rows: int) -> None:
        """Record columns outside the reference profile seen in ``n_rows`` rows (the caller
        leaves out columns that are not features: ids, timestamps, labels)."""
        for name in names:
            if name not in self.profiles:
                self.extra_rows[name] = self.extra_rows.get(name, 0) + n_rows

    @property
    def extra_columns(self) -> list[str]:
        return sorted(name for name, rows in self.extra_rows.items() if rows > 0)

    def merge(self, other: WindowSummary) -> WindowSummary:
        if set(other.profiles) != set(self.profiles):
            raise ValueError(
                f"window merge: got features {sorted(other.profiles)}, "
                f"expected {sorted(self.profiles)}")
        absent = dict(self.absent_rows)
        for name, rows in other.absent_rows.items():
            absent[name] = absent.get(name, 0) + rows
        extra = dict(self.extra_rows)
        for name, rows in other.extra_rows.items():
            extra[name] = extra.get(name, 0) + rows
        return WindowSummary(
            profiles=self.profiles,
            numeric={k: v.merge(other.numeric[k]) for k, v in self.numeric.items()},
            categorical={k: v.merge(other.categorical[k]) for k, v in self.categorical.items()},
            n_rows=self.n_rows + other.n_rows, absent_rows=absent, extra_rows=extra,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "absent_rows": dict(self.absent_rows),
                "extra_rows": dict(self.extra_rows),
                "numeric": {k: v.to_dict() for k, v in self.numeric.items()},
                "categorical": {k: v.to_dict() for k, v in self.categorical.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any],
                  profiles: Mapping[str, FeatureProfile]) -> WindowSummary:
        return cls(
            profiles=profiles, n_rows=int(data["n_rows"]),
            absent_rows={str(k): int(v) for k, v in data["absent_rows"].items()},
            # absent from summaries stored before extra columns were tracked
            extra_rows={str(k): int(v) for k, v in (data.get("extra_rows") or {}).items()},
            numeric={k: NumericCounts.from_dict(v) for k, v in data["numeric"].items()},
            categorical={k: CategoricalCounts.from_dict(v)
                         for k, v in data["categorical"].items()},
        )

    def to_packed(self) -> dict[str, Any]:
        """The summary for a binary container (a checkpoint): plain values, and bytes for
        the per-bin arrays (:mod:`detectors.packing`); ``from_packed`` gives back a summary
        equal to this one bit for bit, so a restored window evaluates as it would have."""
        return {"format": SUMMARY_PACKED_FORMAT, "n_rows": int(self.n_rows),
                "absent_rows": dict(self.absent_rows), "extra_rows": dict(self.extra_rows),
                "numeric": {k: v.to_packed() for k, v in self.numeric.items()},
                "categorical": {k: v.to_packed() for k, v in self.categorical.items()}}

    @classmethod
    def from_packed(cls, data: Mapping[str, Any],
                    profiles: Mapping[str, FeatureProfile]) -> WindowSummary:
        if data.get("format") != SUMMARY_PACKED_FORMAT:
            raise ValueError(f"packed window summary: got format {data.get('format')!r}, "
                             f"expected {SUMMARY_PACKED_FORMAT}")
        return cls(
            profiles=profiles, n_rows=int(data["n_rows"]),
            absent_rows={str(k): int(v) for k, v in data["absent_rows"].items()},
            extra_rows={str(k): int(v) for k, v in data["extra_rows"].items()},
            numeric={k: NumericCounts.from_packed(v) for k, v in data["numeric"].items()},
            categorical={k: CategoricalCounts.from_packed(v)
                         for k, v in data["categorical"].items()},
        )

    def _counts(self, feature: str) -> NumericCounts | CategoricalCounts:
        if feature in self.numeric:
            return self.numeric[feature]
        if feature in self.categorical:
            return self.categorical[feature]
        raise KeyError(f"window feature {feature!r}: not profiled; known: {sorted(self.profiles)}")

    def _index(self, name: str, profile: CategoricalProfile) -> dict[Any, int]:
        index = self._indexes.get(name)
        if index is None:
            index = profile.index()
            self._indexes[name] = index
        return index
