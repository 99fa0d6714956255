"""Unpaired (independent-samples) tests, for results whose seeds do not line up."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from nlfs.stats._common import TestResult, as_array, undefined


def welch_t(x: Sequence[float], y: Sequence[float]) -> TestResult:
    """Two-sided Welch t-test (unequal variances) of ``mean(x) = mean(y)`` (Welch 1947).

    ``t = (mean x - mean y) / sqrt(vx/nx + vy/ny)`` with Welch-Satterthwaite degrees of freedom.

    Returns:
        A :class:`TestResult`; a group with fewer than two values, or both groups constant, leave
        the test undefined: p is None with a note.
    """
    a, b = as_array(x, "first sample"), as_array(y, "second sample")
    n = int(a.size + b.size)
    if a.size < 2 or b.size < 2:
        return undefined("welch_t", n, "a group has fewer than 2 values")
    va, vb = float(np.var(a, ddof=1)) / a.size, float(np.var(b, ddof=1)) / b.size
    if va + vb == 0.0:
        return undefined("welch_t", n, "both groups are constant")
    t = (float(np.mean(a)) - float(np.mean(b))) / math.sqrt(va + vb)
    # Welch-Satterthwaite df, written with the variance shares so tiny variances cannot
    # underflow to 0/0: (va + vb)^2 / (va^2/(na-1) + vb^2/(nb-1)).
    ra, rb = va / (va + vb), vb / (va + vb)
    df = 1.0 / (ra**2 / (a.size - 1) + rb**2 / (b.size - 1))
    p = float(2.0 * stats.t.sf(abs(t), df))
    return TestResult("welch_t", t, min(p, 1.0), n)


def mann_whitney_u(x: Sequence[float], y: Sequence[float]) -> TestResult:
    """Two-sided Mann-Whitney U test (Mann & Whitney 1947).

    The statistic is U of the first sample; the exact distribution is used for small samples
    without ties, the tie-corrected normal approximation otherwise (scipy's ``method="auto"``).

    Returns:
        A :class:`TestResult`; an empty group, or all values equal, leave the test undefined:
        p is None with a note.
    """
    a, b = as_array(x, "first sample"), as_array(y, "second sample")
    n = int(a.size + b.size)
    if a.size == 0 or b.size == 0:
        return undefined("mann_whitney_u", n, "a group is empty")
    if np.all(np.concatenate([a, b]) == a[0]):
        return undefined("mann_whitney_u", n, "all values are equal")
    res = stats.mannwhitneyu(a, b, alternative="two-sided", method="auto")
    return TestResult("mann_whitney_u", float(res.statistic), float(res.pvalue), n)
