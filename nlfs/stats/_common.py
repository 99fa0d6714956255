"""Shared pieces of the statistics package: the error type, the test result and input checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nlfs.errors import NLFSError


class StatsError(NLFSError, ValueError):
    """Data that a statistical test cannot be applied to (unpaired samples, empty groups)."""


@dataclass(frozen=True)
class TestResult:
    """The outcome of one hypothesis test.

    Attributes:
        test: the test's name, e.g. ``"wilcoxon"`` or ``"welch_t"``.
        statistic: the test statistic (NaN when the test is undefined for the data).
        p_value: the two-sided p-value, or None where the test is undefined for the data (fewer
            than two observations, no non-zero differences, zero variance); ``note`` then says
            why. Undefined is not "no evidence": a p-value of 1 would claim a test was run.
        n: the number of observations used (pairs for paired tests, both groups otherwise).
        note: empty, or why the result is degenerate.
    """

    __test__ = False  # not a pytest test class despite the name

    test: str
    statistic: float
    p_value: float | None
    n: int
    note: str = ""

    @property
    def defined(self) -> bool:
        """Whether the test could actually be computed (it has a p-value)."""
        return self.p_value is not None


def undefined(test: str, n: int, note: str) -> TestResult:
    """The result of ``test`` where the data do not define it: no statistic, no p-value."""
    return TestResult(test, math.nan, None, n, note)


def as_array(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    """Return ``values`` as a finite 1-D float array, raising :class:`StatsError` otherwise."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise StatsError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise StatsError(f"{what} contains NaN or infinite values; drop failed runs first")
    return arr


def as_pairs(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Check that ``x`` and ``y`` are paired samples (equal length, aligned by seed)."""
    a, b = as_array(x, "first sample"), as_array(y, "second sample")
    if a.shape != b.shape:
        raise StatsError(
            f"paired test needs samples of equal length (pairs by seed), got {a.size} and "
            f"{b.size}; use the unpaired tests (Welch t, Mann-Whitney U) instead"
        )
    return a, b


def finite_or_nan(value: float) -> float:
    """Return ``value`` as a float, mapping infinities to NaN (for statistics that blew up)."""
    value = float(value)
    return value if math.isfinite(value) else math.nan
