"""Multiple-comparison corrections of p-values, returned in the input order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nlfs.stats._common import StatsError


def _check(p_values: Sequence[float]) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise StatsError(f"p-values must be a flat sequence of numbers in [0, 1], got {p_values}")
    return p


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), controlling the family-wise error rate.

    Sorted ascending, the i-th smallest (1-based) becomes ``(m - i + 1) * p_(i)``, made monotone
    by a running maximum and capped at 1.

    Args:
        p_values: the raw p-values of the family.

    Returns:
        Adjusted p-values in the order of the input.
    """
    p = _check(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (1995), controlling the false discovery rate.

    Sorted ascending, the i-th smallest (1-based) becomes ``m / i * p_(i)``, made monotone by a
    running minimum from the largest down and capped at 1.

    Args:
        p_values: the raw p-values of the family.

    Returns:
        Adjusted p-values in the order of the input.
    """
    p = _check(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = m / np.arange(1, m + 1) * p[order]
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()
