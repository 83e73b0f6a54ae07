"""Reference profiles: what a window is compared with, built once from the reference.

A numeric profile keeps fine bin edges at the reference quantiles (so every bin
holds about the same share of the reference) with the reference count per bin,
and a few coarse quantile bins (indices into the fine edges) for PSI and
Jensen-Shannon. A categorical profile keeps the reference categories and counts.
Both are JSON-safe through ``to_dict`` / ``profile_from_dict``.

>>> import numpy as np
>>> p = profile_column(np.arange(10.0), "numeric")
>>> (p.min, p.max, float(p.edges[0]), float(p.edges[-1]), int(p.counts.sum()), int(p.counts[-1]))
(0.0, 9.0, 0.0, 9.0, 10, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "CategoricalProfile",
    "FeatureProfile",
    "NumericProfile",
    "profile_column",
    "profile_from_dict",
]

FINE_BINS = 1000
COARSE_BINS = 10
QUANTILES = {"p01": 0.01, "p05": 0.05, "p10": 0.1, "p25": 0.25, "p50": 0.5,
             "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """Reference distribution of one numeric column.

    ``n`` counts every reference row, ``missing`` the rows without a value.
    Fine bins are ``[edges[i], edges[i+1])`` except the last, which is the point
    ``[max, max]`` (``edges`` ends with the maximum twice), so the mass at the
    maximum is kept apart like every other edge's. Edges are reference values
    (the "lower" quantiles), strictly increasing up to that final repeat; a
    constant column has ``edges == [v, v]``.
    """

    n: int
    missing: int
    min: float
    max: float
    mean: float
    std: float
    quantiles: dict[str, float]
    edges: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    coarse: np.ndarray
    integer: bool
    kind: Literal["numeric"] = field(default="numeric", init=False)

    @property
    def n_values(self) -> int:
        return self.n - self.missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric", "n": self.n, "missing": self.missing, "min": self.min,
            "max": self.max, "mean": self.mean, "std": self.std,
            "quantiles": dict(self.quantiles), "edges": self.edges.tolist(),
            "counts": self.counts.tolist(), "sums": self.sums.tolist(),
            "coarse": self.coarse.tolist(),
            "integer": self.integer,
        }


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """Reference frequencies of one categorical column (categories as str)."""

    n: int
    missing: int
    categories: list[str]
    counts: np.ndarray
    kind: Literal["categorical"] = field(default="categorical", init=False)

    @property
    def n_values(self) -> int:
        return self.n - self.missing

    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.categories)}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "categorical", "n": self.n, "missing": self.missing,
                "categories": list(self.categories), "counts": self.counts.tolist()}


FeatureProfile = NumericProfile | CategoricalProfile


def profile_column(values: np.ndarray, kind: str) -> FeatureProfile:
    """Profile a reference column.

    ``kind`` is "numeric" (float values, NaN for missing) or "categorical"
    (str values, None or NaN for missing).
    """
    if kind == "numeric":
        return _numeric_profile(np.asarray(values, dtype=np.float64))
    if kind == "categorical":
        return _categorical_profile(np.asarray(values, dtype=object))
    raise ValueError(f"profile kind: got {kind!r}, expected 'numeric' or 'categorical'")


def _numeric_profile(values: np.ndarray) -> NumericProfile:
    present = values[~np.isnan(values)]
    if present.size == 0:
        raise ValueError(
            f"numeric column: got {values.size} rows and none has a value, expected at least one"
        )
    if not np.all(np.isfinite(present)):
        raise ValueError("numeric column: got infinite values, expected finite numbers or NaN")
    quantiles = np.quantile(present, np.linspace(0.0, 1.0, FINE_BINS + 1), method="lower")
    edges = np.unique(quantiles)
    edges = np.append(edges, edges[-1])
    counts, sums = bin_counts(edges, present)
    return NumericProfile(
        n=int(values.size),
        missing=int(values.size - present.size),
        min=float(edges[0]),
        max=float(edges[-1]),
        mean=float(present.mean()),
        std=float(present.std()),
        quantiles={k: float(v) for k, v in zip(
            QUANTILES, np.quantile(present, list(QUANTILES.values())), strict=True)},
        edges=edges,
        counts=counts,
        sums=sums,
        coarse=coarse_indices(counts, COARSE_BINS),
        integer=bool(np.all(present == np.round(present))),
    )


def bin_counts(edges: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count and sum of the values per fine bin (values inside ``[edges[0], edges[-1]]``)."""
    n_bins = edges.size - 1
    # the inner edges map anything below edges[1] to bin 0 and anything >= max to the last
    idx = np.searchsorted(edges[1:-1], present, side="right")
    counts = np.bincount(idx, minlength=n_bins).astype(np.int64)
    return counts, np.bincount(idx, weights=present, minlength=n_bins)


def coarse_indices(counts: np.ndarray, n_coarse: int) -> np.ndarray:
    """Fine-edge indices closest to the reference quantiles 0, 1/n_coarse, ..., 1."""
    cum = np.concatenate([[0], np.cumsum(counts)]) / max(int(counts.sum()), 1)
    targets = np.linspace(0.0, 1.0, n_coarse + 1)
    idx = np.searchsorted(cum, targets, side="left")
    idx = np.clip(idx, 0, counts.size)
    idx[0], idx[-1] = 0, counts.size
    return np.unique(idx).astype(np.int64)


def _categorical_profile(values: np.ndarray) -> CategoricalProfile:
    missing = np.array([v is None or (isinstance(v, float) and v != v) for v in values], bool)
    present = values[~missing].astype(str)
    cats, counts = np.unique(present, return_counts=True)
    order = np.lexsort((cats, -counts))  # most frequent first, ties by name
    return CategoricalProfile(
        n=int(values.size), missing=int(missing.sum()),
        categories=[str(c) for c in cats[order]], counts=counts[order].astype(np.int64),
    )


def profile_from_dict(data: Mapping[str, Any]) -> FeatureProfile:
    kind = data.get("kind")
    if kind == "numeric":
        return NumericProfile(
            n=int(data["n"]), missing=int(data["missing"]), min=float(data["min"]),
            max=float(data["max"]), mean=float(data["mean"]), std=float(data["std"]),
            quantiles={str(k): float(v) for k, v in data["quantiles"].items()},
            edges=np.asarray(data["edges"], dtype=np.float64),
            counts=np.asarray(data["counts"], dtype=np.int64),
            sums=np.asarray(data["sums"], dtype=np.float64),
            coarse=np.asarray(data["coarse"], dtype=np.int64), integer=bool(data["integer"]),
        )
    if kind == "categorical":
        return CategoricalProfile(
            n=int(data["n"]), missing=int(data["missing"]),
            categories=[str(c) for c in data["categories"]],
            counts=np.asarray(data["counts"], dtype=np.int64),
        )
    raise ValueError(f"feature profile kind: got {kind!r}, expected 'numeric' or 'categorical'")
