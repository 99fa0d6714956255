"""Effect sizes: how large a difference is, independent of how many seeds detected it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nlfs.stats._common import as_array, as_pairs


def cohens_d_paired(x: Sequence[float], y: Sequence[float]) -> float:
    """Cohen's d for paired samples, the ``d_z`` variant: ``mean(x - y) / sd(x - y)``.

    ``sd`` uses ddof 1. This standardizes by the spread of the per-seed differences, which is what
    the paired tests see (Lakens 2013, eq. 6).

    Returns:
        d_z, or NaN with fewer than two pairs or zero-variance differences.
    """
    a, b = as_pairs(x, y)
    if a.size < 2:
        return math.nan
    d = a - b
    sd = float(np.std(d, ddof=1))
    return float(np.mean(d)) / sd if sd > 0 else math.nan


def cohens_d_pooled(x: Sequence[float], y: Sequence[float]) -> float:
    """Cohen's d for independent samples, standardized by the pooled standard deviation.

    ``d = (mean x - mean y) / s_p`` with
    ``s_p = sqrt(((nx - 1) vx + (ny - 1) vy) / (nx + ny - 2))`` and ddof-1 variances.

    Returns:
        d, or NaN when a group has fewer than two values or the pooled deviation is zero.
    """
    a, b = as_array(x, "first sample"), as_array(y, "second sample")
    if a.size < 2 or b.size < 2:
        return math.nan
    pooled = ((a.size - 1) * np.var(a, ddof=1) + (b.size - 1) * np.var(b, ddof=1)) / (
        a.size + b.size - 2
    )
    sd = math.sqrt(float(pooled))
    return (float(np.mean(a)) - float(np.mean(b))) / sd if sd > 0 else math.nan


def cliffs_delta(x: Sequence[float], y: Sequence[float]) -> float:
    """Cliff's delta (Cliff 1993): ``P(X > Y) - P(X < Y)`` over all cross pairs, in [-1, 1].

    Positive means values of ``x`` tend to be larger. Ties count for neither side.

    Returns:
        delta, or NaN when a group is empty.
    """
    a, b = as_array(x, "first sample"), as_array(y, "second sample")
    if a.size == 0 or b.size == 0:
        return math.nan
    diff = a[:, None] - b[None, :]
    return float((np.count_nonzero(diff > 0) - np.count_nonzero(diff < 0)) / diff.size)
