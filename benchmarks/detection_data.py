"""Seeded synthetic features and the shifts the detection benchmark applies to them.

Seven features, each with a known generating distribution, so a null window is a
fresh draw from it (not a chunk of a finite stream) and a shifted window a draw from
its shifted version:

- ``normal`` N(50, 10); ``skewed`` 10 * lognormal(0, 0.75); ``heavy_tailed`` Student t
  with 3 degrees of freedom; ``integer`` Poisson(4); ``missing`` N(0, 1) with 20% of
  the values missing (shifts apply to the present values);
- ``cat3`` with shares 50/30/20%; ``cat30`` 30 levels, the first holding 35% and the
  others a geometric tail.

Numeric shifts: the mean by d standard deviations (for the Poisson feature its rate
moves by d sqrt(rate), which shifts the mean as much), and the variance times 1.5
around the mean (for the Poisson feature a negative binomial with the same mean).
Categorical shifts: the largest category's share moves by the given points, the
others keep their proportions; "new category" gives 5% of the rows a value the
reference never had. A categorical window is drawn as its category counts (a
multinomial draw, exactly the distribution of the counts of n independent rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CATEGORICAL_SHIFTS",
    "FEATURES",
    "NULL",
    "NUMERIC_SHIFTS",
    "Feature",
    "Shift",
]

NEW_CATEGORY_SHARE = 0.05
MISSING_SHARE = 0.2
_LOGNORMAL_SIGMA = 0.75
_T_DF = 3
_POISSON_RATE = 4.0


@dataclass(frozen=True)
class Shift:
    """``kind`` is "null", "mean" (size in sd), "variance" (size = factor), "share"
    (size in points of share) or "new"; ``material`` is False for the shifts below
    detectors.materiality's bounds (0.075 sd; 7 points of a category holding half the
    rows), which no detector should flag on a large window."""

    label: str
    kind: str
    size: float = 0.0
    material: bool = True


NULL = Shift("null", "null", material=False)
NUMERIC_SHIFTS = (
    NULL,
    Shift("mean +0.02 sd", "mean", 0.02, material=False),
    Shift("mean +0.05 sd", "mean", 0.05, material=False),
    Shift("mean +0.1 sd", "mean", 0.1),
    Shift("mean +0.2 sd", "mean", 0.2),
    Shift("mean +0.3 sd", "mean", 0.3),
    Shift("mean +0.5 sd", "mean", 0.5),
    Shift("variance x1.5", "variance", 1.5),
)
CATEGORICAL_SHIFTS = (
    NULL,
    Shift("share +2 pts", "share", 0.02, material=False),
    Shift("share +10 pts", "share", 0.10),
    Shift("share -10 pts", "share", -0.10),
    Shift("share +30 pts", "share", 0.30),
    Shift("share -30 pts", "share", -0.30),
    Shift("new category", "new", NEW_CATEGORY_SHARE),
)


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "numeric" or "categorical"
    shares: tuple[float, ...] = ()

    @property
    def shifts(self) -> tuple[Shift, ...]:
        return NUMERIC_SHIFTS if self.kind == "numeric" else CATEGORICAL_SHIFTS

    @property
    def levels(self) -> int:
        """Reference categories (a new category is index ``levels``)."""
        return len(self.shares)

    def values(self, rng: np.random.Generator, n: int, shift: Shift = NULL) -> np.ndarray:
        """n numeric values (NaN for missing) under ``shift``."""
        if self.name == "integer":
            return _poisson(rng, n, shift)
        if self.name == "normal":
            mean, sd, x = 50.0, 10.0, rng.normal(50.0, 10.0, n)
        elif self.name == "skewed":
            s2 = _LOGNORMAL_SIGMA ** 2
            mean, sd = 10.0 * math.exp(s2 / 2), 10.0 * math.sqrt((math.exp(s2) - 1) * math.exp(s2))
            x = 10.0 * rng.lognormal(0.0, _LOGNORMAL_SIGMA, n)
        elif self.name == "heavy_tailed":
            mean, sd = 0.0, math.sqrt(_T_DF / (_T_DF - 2))
            x = rng.standard_t(_T_DF, n)
        elif self.name == "missing":
            mean, sd, x = 0.0, 1.0, rng.normal(0.0, 1.0, n)
        else:
            raise ValueError(f"feature {self.name!r}: not a numeric feature")
        if shift.kind == "mean":
            x += shift.size * sd
        elif shift.kind == "variance":
            x = mean + (x - mean) * math.sqrt(shift.size)
        if self.name == "missing":
            x[rng.random(n) < MISSING_SHARE] = np.nan
        return x

    def counts(self, rng: np.random.Generator, n: int, shift: Shift = NULL) -> np.ndarray:
        """Category counts of n rows under ``shift``; index ``levels`` is the new category."""
        p = np.append(np.asarray(self.shares), 0.0)
        if shift.kind == "share":
            top = p[0] + shift.size
            p[1:-1] *= (1.0 - top) / (1.0 - p[0])
            p[0] = top
        elif shift.kind == "new":
            p *= 1.0 - shift.size
            p[-1] = shift.size
        return rng.multinomial(n, p / p.sum())


def _poisson(rng: np.random.Generator, n: int, shift: Shift) -> np.ndarray:
    if shift.kind == "variance":
        # negative binomial with mean r (1 - q) / q = 4 and variance 4 / q = 6
        q = 1.0 / shift.size
        r = _POISSON_RATE * q / (1.0 - q)
        return rng.negative_binomial(r, q, n).astype(np.float64)
    rate = _POISSON_RATE + (shift.size * math.sqrt(_POISSON_RATE) if shift.kind == "mean" else 0)
    return rng.poisson(rate, n).astype(np.float64)


def _cat30() -> tuple[float, ...]:
    tail = 0.85 ** np.arange(29)
    return (0.35, *(0.65 * tail / tail.sum()).tolist())


FEATURES = (
    Feature("normal", "numeric"),
    Feature("skewed", "numeric"),
    Feature("heavy_tailed", "numeric"),
    Feature("integer", "numeric"),
    Feature("missing", "numeric"),
    Feature("cat3", "categorical", (0.5, 0.3, 0.2)),
    Feature("cat30", "categorical", _cat30()),
)
