"""Comparing several losses over many settings by ranks: Friedman test, Nemenyi post-hoc and the
critical difference, and each loss against a control (the baseline) under Holm's step-down,
following Demsar (2006), "Statistical Comparisons of Classifiers over Multiple Data Sets", JMLR 7.

Blocks are settings (architecture x dataset x augmentation), treatments are losses; each block
ranks the losses by their mean score, rank 1 the best, ties sharing the average rank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from nlfs.stats._common import StatsError
from nlfs.stats.correction import holm


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman's test over a blocks x treatments table.

    Attributes:
        names: the treatments (losses), in column order.
        average_ranks: the mean rank of each treatment (1 = best), in ``names`` order.
        n_blocks: N, the number of blocks (settings).
        statistic: Friedman's chi-square, with the correction for ties.
        p_value: from the chi-square distribution with k - 1 degrees of freedom.
        iman_davenport: Iman & Davenport's F = (N - 1) chi2 / (N (k - 1) - chi2), which Demsar
            recommends as less conservative (infinite, with p = 0, when every block ranks the
            losses identically).
        iman_davenport_p: its p-value from F(k - 1, (k - 1)(N - 1)).
        note: empty, or why the test is degenerate.
    """

    names: tuple[str, ...]
    average_ranks: tuple[float, ...]
    n_blocks: int
    statistic: float
    p_value: float
    iman_davenport: float
    iman_davenport_p: float
    note: str = ""


@dataclass(frozen=True)
class NemenyiResult:
    """Nemenyi's post-hoc comparison of all pairs of treatments by average rank.

    Attributes:
        alpha: the family-wise significance level.
        q_alpha: the critical value, ``studentized_range.ppf(1 - alpha, k, inf) / sqrt(2)``.
        critical_difference: CD = q_alpha * sqrt(k (k + 1) / (6 N)); two treatments differ
            significantly when their average ranks differ by more than CD.
        pairs: one entry per unordered pair ``(a, b, rank difference, p-value, significant)``,
            the p-value from the studentized range distribution.
    """

    alpha: float
    q_alpha: float
    critical_difference: float
    pairs: tuple[tuple[str, str, float, float, bool], ...]


def block_ranks(scores: np.ndarray, *, higher_is_better: bool = True) -> np.ndarray:
    """Rank each row of a blocks x treatments table, 1 = best, ties averaged."""
    table = np.asarray(scores, dtype=float)
    signed = -table if higher_is_better else table
    return np.vstack([stats.rankdata(row, method="average") for row in signed])


def friedman_statistic(average_ranks: Sequence[float], n_blocks: int) -> tuple[float, float]:
    """Friedman's chi-square and Iman-Davenport's F from average ranks alone (no tie correction).

    ``chi2 = 12 N / (k (k + 1)) * (sum R_j^2 - k (k + 1)^2 / 4)`` (Demsar 2006, section 3.2.2).

    Returns:
        ``(chi2, F_F)``; F_F is infinite when ``N (k - 1) == chi2`` (perfect agreement).
    """
    r = np.asarray(average_ranks, dtype=float)
    k, n = r.size, n_blocks
    chi2 = 12.0 * n / (k * (k + 1)) * (float(np.sum(r**2)) - k * (k + 1) ** 2 / 4.0)
    denom = n * (k - 1) - chi2
    ff = (n - 1) * chi2 / denom if denom > 1e-12 else math.inf
    return chi2, ff


def friedman(
    scores: np.ndarray, names: Sequence[str], *, higher_is_better: bool = True
) -> FriedmanResult:
    """Friedman's rank test that all treatments perform alike (Friedman 1937).

    Args:
        scores: an ``N x k`` table, one row per block (setting), one column per treatment (loss).
        names: the k treatment names.
        higher_is_better: whether a larger score ranks first (accuracy) or last (error).

    Returns:
        The :class:`FriedmanResult`. The chi-square is divided by
        ``1 - sum(t^3 - t) / (N k (k^2 - 1))`` over tie groups t, as scipy does; when every block
        is all ties the test is undefined and p = 1 with a note.

    Raises:
        StatsError: fewer than two treatments or one block, or a shape mismatch.
    """
    table = np.asarray(scores, dtype=float)
    if table.ndim != 2 or table.shape[1] != len(names):
        raise StatsError(f"scores must be blocks x {len(names)} treatments, got {table.shape}")
    n, k = table.shape
    if k < 2 or n < 2:
        raise StatsError(f"Friedman needs at least 2 losses and 2 settings, got {k} and {n}")
    if not np.all(np.isfinite(table)):
        raise StatsError("Friedman scores contain NaN or infinite values")
    ranks = block_ranks(table, higher_is_better=higher_is_better)
    avg = ranks.mean(axis=0)
    chi2, _ = friedman_statistic(avg, n)
    ties = 0.0
    for row in ranks:
        _, counts = np.unique(row, return_counts=True)
        ties += float(np.sum(counts**3 - counts))
    correction = 1.0 - ties / (n * k * (k * k - 1))
    names_t, avg_t = tuple(names), tuple(float(v) for v in avg)
    if correction <= 0:
        return FriedmanResult(names_t, avg_t, n, math.nan, 1.0, math.nan, 1.0, "all losses tie")
    chi2 /= correction
    p = float(stats.chi2.sf(chi2, k - 1))
    denom = n * (k - 1) - chi2
    ff = (n - 1) * chi2 / denom if denom > 1e-12 else math.inf
    ff_p = float(stats.f.sf(ff, k - 1, (k - 1) * (n - 1))) if math.isfinite(ff) else 0.0
    return FriedmanResult(names_t, avg_t, n, float(chi2), p, float(ff), ff_p)


def nemenyi_q(alpha: float, k: int) -> float:
    """The Nemenyi critical value q_alpha for k treatments (Demsar's Table 5a)."""
    if not 0.0 < alpha < 1.0:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    if k < 2:
        raise StatsError(f"Nemenyi needs at least 2 treatments, got {k}")
    return float(stats.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0))


def critical_difference(alpha: float, k: int, n_blocks: int) -> float:
    """Nemenyi's critical difference ``CD = q_alpha * sqrt(k (k + 1) / (6 N))``."""
    return nemenyi_q(alpha, k) * math.sqrt(k * (k + 1) / (6.0 * n_blocks))


def nemenyi(result: FriedmanResult, alpha: float = 0.05) -> NemenyiResult:
    """All-pairs Nemenyi post-hoc test on the average ranks of a Friedman result."""
    k, n = len(result.names), result.n_blocks
    q = nemenyi_q(alpha, k)
    se = math.sqrt(k * (k + 1) / (6.0 * n))
    cd = q * se
    pairs = []
    for i in range(k):
        for j in range(i + 1, k):
            diff = abs(result.average_ranks[i] - result.average_ranks[j])
            p = float(stats.studentized_range.sf(diff / se * math.sqrt(2.0), k, np.inf))
            pairs.append((result.names[i], result.names[j], diff, min(p, 1.0), diff > cd))
    return NemenyiResult(alpha, q, cd, tuple(pairs))


@dataclass(frozen=True)
class ControlComparison:
    """One treatment against the control by average Friedman rank.

    Attributes:
        name: the treatment.
        rank_difference: ``R_i - R_0``; negative means a better (smaller) rank than the control.
        z: ``(R_i - R_0) / SE``.
        p_value: the two-sided normal p-value of z.
        p_holm: after Holm's step-down over the k - 1 comparisons with the control.
        significant: ``p_holm < alpha``.
    """

    name: str
    rank_difference: float
    z: float
    p_value: float
    p_holm: float
    significant: bool


@dataclass(frozen=True)
class ControlResult:
    """Every treatment against one control by average rank (Demsar 2006, section 3.2.2).

    Comparing with a control needs only k - 1 tests rather than Nemenyi's k (k - 1) / 2, so it
    has more power when the question is "which losses differ from the baseline".

    Attributes:
        control: the control (the baseline loss).
        alpha: the family-wise significance level.
        standard_error: ``SE = sqrt(k (k + 1) / (6 N))``.
        comparisons: one per other treatment, in the Friedman result's order.
    """

    control: str
    alpha: float
    standard_error: float
    comparisons: tuple[ControlComparison, ...]


def friedman_vs_control(result: FriedmanResult, control: str, alpha: float = 0.05) -> ControlResult:
    """Compare each treatment with ``control`` by average rank, Holm-corrected.

    ``z = (R_i - R_0) / sqrt(k (k + 1) / (6 N))`` is standard normal under the null hypothesis;
    its two-sided p-values go through Holm's step-down over the k - 1 comparisons (Demsar 2006,
    section 3.2.2).

    Raises:
        StatsError: ``control`` is not a treatment, or alpha is out of range.
    """
    if not 0.0 < alpha < 1.0:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    if control not in result.names:
        raise StatsError(f"control {control!r} is not among {', '.join(result.names)}")
    k, n = len(result.names), result.n_blocks
    se = math.sqrt(k * (k + 1) / (6.0 * n))
    r0 = result.average_ranks[result.names.index(control)]
    others = [
        (name, r - r0)
        for name, r in zip(result.names, result.average_ranks, strict=True)
        if name != control
    ]
    zs = [diff / se for _, diff in others]
    ps = [min(float(2.0 * stats.norm.sf(abs(z))), 1.0) for z in zs]
    adjusted = holm(ps)
    comparisons = tuple(
        ControlComparison(name, diff, z, p, float(ph), float(ph) < alpha)
        for (name, diff), z, p, ph in zip(others, zs, ps, adjusted, strict=True)
    )
    return ControlResult(control, alpha, se, comparisons)
