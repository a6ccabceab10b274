"""The Mann-Whitney U test, written out so that the gate needs no scipy.

Mann & Whitney (1947), "On a test of whether one of two random variables is
stochastically larger than the other". Conventions follow ``scipy.stats.mannwhitneyu``
(same statistic, same ``alternative`` and ``method`` names, same automatic choice), so
that the tests can check the p-values against it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby

ALTERNATIVES = ("two-sided", "greater", "less")
METHODS = ("auto", "exact", "asymptotic")


@dataclass(frozen=True)
class MannWhitneyResult:
    """``statistic`` is U of the first sample; ``method`` is the one actually used."""

    statistic: float
    pvalue: float
    method: str


def mann_whitney_u(
    x: Sequence[float],
    y: Sequence[float],
    *,
    alternative: str = "two-sided",
    method: str = "auto",
    continuity: bool = True,
) -> MannWhitneyResult:
    """Test whether ``x`` tends to be larger (``greater``), smaller (``less``) or either than ``y``.

    ``exact`` uses the exact null distribution of U (exact without ties);
    ``asymptotic`` the normal approximation with tie correction and, with
    ``continuity``, a continuity correction of 1/2; ``auto`` takes ``exact`` when one
    sample has at most 8 values and there are no ties, as scipy does.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}, not {alternative!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    x, y = [float(v) for v in x], [float(v) for v in y]
    if not x or not y:
        raise ValueError("both samples need at least one value")
    if any(math.isnan(v) for v in x + y):
        raise ValueError("samples must not contain NaN")
    n1, n2 = len(x), len(y)
    ranks, tie_sizes = _midranks(x + y)
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u2 = n1 * n2 - u1
    u, factor = {"greater": (u1, 1), "less": (u2, 1), "two-sided": (max(u1, u2), 2)}[alternative]
    if method == "auto":
        method = "asymptotic" if (n1 > 8 and n2 > 8) or any(t > 1 for t in tie_sizes) else "exact"
    p = _exact_sf(n1, n2, math.floor(u)) if method == "exact" else _normal_sf(u, n1, n2, tie_sizes, continuity)
    return MannWhitneyResult(statistic=u1, pvalue=min(1.0, max(0.0, p * factor)), method=method)


def smallest_pvalue(n1: int, n2: int) -> float:
    """The smallest one-sided p-value samples of these sizes can give (complete separation)."""
    return 1.0 / math.comb(n1 + n2, n1)


def _midranks(values: list[float]) -> tuple[list[float], list[int]]:
    """1-based ranks with ties given their average rank, and the size of each tie group."""
    ranks = [0.0] * len(values)
    sizes: list[int] = []
    start = 0  # how many values rank below this tie group
    for _, group in groupby(sorted(range(len(values)), key=values.__getitem__), key=values.__getitem__):
        members = list(group)
        for i in members:
            ranks[i] = start + (len(members) + 1) / 2
        sizes.append(len(members))
        start += len(members)
    return ranks, sizes


def _normal_sf(u: float, n1: int, n2: int, tie_sizes: list[int], continuity: bool) -> float:
    n = n1 + n2  # at least 2: both samples hold a value
    tie_term = sum(t**3 - t for t in tie_sizes)
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        # Every value tied: no evidence either way.
        return 1.0
    z = (u - n1 * n2 / 2 - (0.5 if continuity else 0.0)) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def _exact_sf(n1: int, n2: int, u: int) -> float:
    """P(U >= u) under the null, for samples without ties."""
    if u <= 0:
        return 1.0
    return sum(_u_counts(min(n1, n2), max(n1, n2))[u:]) / math.comb(n1 + n2, n1)


@lru_cache(maxsize=64)
def _u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """How many of the C(n1+n2, n1) orderings give U = 0, 1, ..., n1*n2.

    These are the coefficients of the Gaussian binomial [n1+n2 choose n1]_q
    = prod_{i=1..n1} (1 - q^(n2+i)) / (1 - q^i), computed with exact integers.
    """
    size = n1 * n2 + 1
    c = [1] + [0] * (size - 1)
    for i in range(1, n1 + 1):
        k = n2 + i
        for j in range(size - 1, k - 1, -1):  # times (1 - q^k), high degrees first
            c[j] -= c[j - k]
        for j in range(i, size):  # divided by (1 - q^i), as a power series
            c[j] += c[j - i]
    return tuple(c)
