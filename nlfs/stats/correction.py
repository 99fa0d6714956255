"""Multiple-comparison corrections of p-values, returned in the input order.

A p-value may be None where its test was undefined for the data (see
:class:`~nlfs.stats.TestResult`): it is no hypothesis tested, so it is left out of the family
(``m`` counts the defined p-values only) and comes back as None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nlfs.stats._common import StatsError


def _adjust(
    p_values: Sequence[float | None], method: Callable[[np.ndarray], np.ndarray]
) -> list[float | None]:
    """Apply ``method`` to the defined p-values, keeping None where a test was undefined."""
    defined = [i for i, p in enumerate(p_values) if p is not None]
    p = np.asarray([p_values[i] for i in defined], dtype=float)
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise StatsError(
            f"p-values must be numbers in [0, 1] (or None for undefined tests), got {p_values}"
        )
    out: list[float | None] = [None] * len(p_values)
    if p.size:
        for i, value in zip(defined, method(p).tolist(), strict=True):
            out[i] = value
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = m / np.arange(1, m + 1) * p[order]
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (Holm 1979), controlling the family-wise error rate.

    Sorted ascending, the i-th smallest (1-based) becomes ``(m - i + 1) * p_(i)``, made monotone
    by a running maximum and capped at 1. An adjusted p-value below alpha is exactly a rejection
    by Holm's step-down: compare ``p_(i)`` with ``alpha / (m - i + 1)`` from the smallest up and
    stop at the first that is not below.

    Args:
        p_values: the raw p-values of the family; None for undefined tests (left out).

    Returns:
        Adjusted p-values in the order of the input, None where the input was None.
    """
    return _adjust(p_values, _holm)


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (1995), controlling the false discovery rate.

    Sorted ascending, the i-th smallest (1-based) becomes ``m / i * p_(i)``, made monotone by a
    running minimum from the largest down and capped at 1.

    Args:
        p_values: the raw p-values of the family; None for undefined tests (left out).

    Returns:
        Adjusted p-values in the order of the input, None where the input was None.
    """
    return _adjust(p_values, _benjamini_hochberg)
