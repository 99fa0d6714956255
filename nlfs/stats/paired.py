"""Paired tests of one loss against a baseline, the samples aligned by seed.

Seeds are paired across losses in a transfer grid (same initial weights and data order), so the
per-seed difference removes the seed's own effect; these tests use that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from nlfs.stats._common import StatsError, TestResult, as_pairs, undefined


def pair_by_seed(
    x: Mapping[int, float], y: Mapping[int, float], *, what: str = "samples"
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Align two ``seed -> value`` mappings into paired arrays.

    Args:
        x: the first sample, by seed.
        y: the second sample, by seed.
        what: a label for error messages (e.g. the setting and losses compared).

    Returns:
        The common seeds in ascending order and the two value arrays in that order.

    Raises:
        StatsError: the seed sets differ, so the data are not paired.
    """
    only_x, only_y = sorted(set(x) - set(y)), sorted(set(y) - set(x))
    if only_x or only_y:
        raise StatsError(
            f"{what} are not paired by seed: seeds only in the first: {only_x or 'none'}, "
            f"only in the second: {only_y or 'none'}; run the missing seeds or compare unpaired"
        )
    seeds = sorted(x)
    return seeds, np.array([x[s] for s in seeds], float), np.array([y[s] for s in seeds], float)


def wilcoxon_signed_rank(x: Sequence[float], y: Sequence[float]) -> TestResult:
    """Two-sided Wilcoxon signed-rank test of ``x - y`` (Wilcoxon 1945).

    Zero differences are dropped (Wilcoxon's original treatment, scipy's ``zero_method="wilcox"``);
    the statistic is the smaller of the positive and negative rank sums. The exact null
    distribution is used for small samples without ties, the normal approximation otherwise (as
    scipy decides). With ``n`` non-zero pairs the smallest two-sided p-value is ``2 / 2**n``
    (0.0625 for five seeds), so a handful of seeds can never reach 0.05.

    Returns:
        A :class:`TestResult`; with fewer than two pairs, or all differences zero, the test is
        undefined: p is None and the note says why.
    """
    a, b = as_pairs(x, y)
    d = a - b
    nonzero = int(np.count_nonzero(d))
    if a.size < 2:
        return undefined("wilcoxon", int(a.size), "fewer than 2 pairs")
    if nonzero == 0:
        return undefined("wilcoxon", int(a.size), "all differences are zero")
    res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return TestResult("wilcoxon", float(res.statistic), float(res.pvalue), int(a.size))


def paired_t(x: Sequence[float], y: Sequence[float]) -> TestResult:
    """Two-sided paired (dependent-samples) t-test of ``mean(x - y) = 0``.

    ``t = mean(d) / (sd(d) / sqrt(n))`` with ``n - 1`` degrees of freedom, ``sd`` with ddof 1.

    Returns:
        A :class:`TestResult`. Fewer than two pairs or differences with zero variance (including
        all-zero differences) make t undefined: p is None with a note, rather than scipy's
        ``inf``/``p = 0`` which would claim certainty from a degenerate sample.
    """
    a, b = as_pairs(x, y)
    n = int(a.size)
    if n < 2:
        return undefined("paired_t", n, "fewer than 2 pairs")
    d = a - b
    sd = float(np.std(d, ddof=1))
    if sd == 0.0:
        note = "all differences are zero" if not d.any() else "differences have zero variance"
        return undefined("paired_t", n, note)
    t = float(np.mean(d)) / (sd / math.sqrt(n))
    p = float(2.0 * stats.t.sf(abs(t), n - 1))
    return TestResult("paired_t", t, min(p, 1.0), n)
