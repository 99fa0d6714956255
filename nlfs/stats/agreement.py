"""Agreement between two rankings of the same candidates: does a cheap score order them as an
expensive one does?

Kendall's tau-b and Spearman's rho with a percentile bootstrap interval over the candidates
(Efron & Tibshirani 1993), the overlap of the two top-k sets, and the regret of acting on the
cheap score. Values arrive paired by candidate; a None on either side (a training that failed or
did not run) drops that candidate. Higher is better on both sides. Undefined results are None,
never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nlfs.stats._common import StatsError

MIN_PAIRS = 3
"""Fewest pairs a rank correlation is reported for: with two, tau and rho can only be +-1."""
CHUNK_ELEMENTS = 2_000_000
"""Pairwise comparisons held in memory at once while bootstrapping (16 MB of floats)."""


@dataclass(frozen=True)
class Correlation:
    """One rank correlation with its percentile bootstrap interval.

    Attributes:
        method: ``"kendall"`` (tau-b, ties corrected) or ``"spearman"`` (rho on average ranks).
        estimate: the correlation of the observed pairs; None where undefined.
        low: lower bound of the interval; None where no resample defines the correlation.
        high: upper bound.
        defined_resamples: resamples whose correlation is defined (a resample that draws one
            side constant has none); the bounds are quantiles over these.
    """

    method: str
    estimate: float | None
    low: float | None
    high: float | None
    defined_resamples: int


@dataclass(frozen=True)
class RankAgreement:
    """Kendall's tau-b and Spearman's rho of paired values, each with a bootstrap interval.

    Attributes:
        n: the pairs used (both sides defined).
        kendall: tau-b.
        spearman: rho.
        confidence: the intervals' coverage, ``1 - alpha``.
        resamples: B, the bootstrap resamples drawn (the same pairs for both correlations).
        note: empty, or why the correlations are undefined.
    """

    n: int
    kendall: Correlation
    spearman: Correlation
    confidence: float
    resamples: int
    note: str = ""

    @property
    def defined(self) -> bool:
        """Whether the observed pairs define the correlations."""
        return self.kendall.estimate is not None


@dataclass(frozen=True)
class TopKOverlap:
    """How many of the k best by one score are among the k best by the other.

    Attributes:
        k: the size of both top sets.
        n: the candidates with both values.
        shared: the size of the intersection; None when ``n < k``.
        fraction: ``shared / k``; None when ``n < k``.
        chance: the expected fraction for a random ranking, ``k / n``; None when ``n < k``.
    """

    k: int
    n: int
    shared: int | None
    fraction: float | None
    chance: float | None


@dataclass(frozen=True)
class Regret:
    """The cost of keeping the candidate the surrogate ranks first.

    Attributes:
        n: the candidates with both values.
        pick: index (in the order given) of the surrogate's best; None without candidates.
        pick_target: the pick's target value.
        best: index of the best target value (the first of equals).
        best_target: the best target value among the candidates.
        regret: ``best_target - pick_target`` (zero when the pick is the target's best).
        reference: the reference value given (e.g. cross-entropy's target accuracy), or None.
        reference_regret: ``reference - pick_target``: positive when the pick falls short of the
            reference, negative when it beats it; None without a reference.
    """

    n: int
    pick: int | None
    pick_target: float | None
    best: int | None
    best_target: float | None
    regret: float | None
    reference: float | None
    reference_regret: float | None


def paired_defined(
    x: Sequence[float | None], y: Sequence[float | None]
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The positions where both ``x`` and ``y`` have a value, and those values as arrays.

    Raises:
        StatsError: sequences of different lengths, or a NaN or infinite value (a missing value
            is None).
    """
    if len(x) != len(y):
        raise StatsError(
            f"paired values need equal lengths (one value per candidate), got {len(x)} and {len(y)}"
        )
    keep = [i for i, (a, b) in enumerate(zip(x, y, strict=True)) if a is not None and b is not None]
    xa = np.asarray([float(x[i]) for i in keep], dtype=float)
    ya = np.asarray([float(y[i]) for i in keep], dtype=float)
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise StatsError("paired values contain NaN or infinite values; use None for a missing one")
    return keep, xa, ya


def _signs(v: np.ndarray) -> np.ndarray:
    """``sign(v[..., i] - v[..., j])`` for every pair of positions: shape ``(..., n, n)``."""
    return np.sign(v[..., :, None] - v[..., None, :])


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Tau-b of each row pair of ``x`` and ``y`` (shape ``(B, n)``); NaN where a row is constant.

    Over the n(n-1) ordered pairs, ``sum(sx * sy)`` is twice concordant minus discordant and
    ``sum(|sx|)`` twice the pairs untied in x, so tau-b = (P - Q) / sqrt((n0 - n1)(n0 - n2)).
    """
    sx, sy = _signs(x), _signs(y)
    numerator = np.einsum("bij,bij->b", sx, sy)
    denominator = np.sqrt(np.abs(sx).sum(axis=(1, 2)) * np.abs(sy).sum(axis=(1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _average_ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (1 = smallest, ties share the mean rank) along the last axis."""
    diff = v[..., :, None] - v[..., None, :]
    below = (diff > 0).sum(axis=-1)
    equal = (diff == 0).sum(axis=-1)  # counts the value itself
    return below + (equal + 1) / 2.0


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rho (Pearson's r of average ranks) of each row pair; NaN where a row is constant."""
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(axis=1) / denominator, np.nan)


def _estimate(values: np.ndarray) -> float | None:
    value = float(values[0])
    return min(1.0, max(-1.0, value)) if math.isfinite(value) else None


def _interval(method: str, estimate: float | None, draws: np.ndarray, alpha: float) -> Correlation:
    defined = draws[np.isfinite(draws)]
    if estimate is None or defined.size == 0:
        return Correlation(method, estimate, None, None, int(defined.size))
    low, high = np.clip(np.quantile(defined, [alpha / 2.0, 1.0 - alpha / 2.0]), -1.0, 1.0)
    return Correlation(method, estimate, float(low), float(high), int(defined.size))


def rank_agreement(
    x: Sequence[float | None],
    y: Sequence[float | None],
    *,
    resamples: int = 2000,
    seed: int | np.random.SeedSequence = 0,
    alpha: float = 0.05,
) -> RankAgreement:
    """Kendall's tau-b and Spearman's rho of paired values with percentile bootstrap intervals.

    The bootstrap resamples whole pairs with replacement (the candidates are the sampling unit)
    and recomputes both correlations on each resample; a resample that draws one side constant
    defines neither and is left out of the quantiles (``defined_resamples`` counts the rest).

    Args:
        x: one score per candidate (e.g. surrogate fitness); None where missing.
        y: the other score, aligned with ``x``; None where missing.
        resamples: B, the bootstrap resamples.
        seed: seeds the generator that draws the resamples (never the global RNG).
        alpha: the intervals cover ``1 - alpha``.

    Returns:
        The agreement; with fewer than 3 pairs, or a constant side, every number is None and
        ``note`` says why.

    Raises:
        StatsError: unequal lengths, a NaN value, ``resamples < 1`` or ``alpha`` outside (0, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    if resamples < 1:
        raise StatsError(f"resamples must be positive, got {resamples}")
    _, xa, ya = paired_defined(x, y)
    n = int(xa.size)

    def undefined(note: str) -> RankAgreement:
        return RankAgreement(
            n,
            Correlation("kendall", None, None, None, 0),
            Correlation("spearman", None, None, None, 0),
            1.0 - alpha,
            resamples,
            note,
        )

    if n < MIN_PAIRS:
        return undefined(f"{n} pair(s) with both values; a rank correlation needs {MIN_PAIRS}")
    if np.all(xa == xa[0]) or np.all(ya == ya[0]):
        return undefined("one side is constant, so it ranks nothing")
    tau = _estimate(_kendall_rows(xa[None, :], ya[None, :]))
    rho = _estimate(_spearman_rows(xa[None, :], ya[None, :]))
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(resamples, n))
    taus, rhos = np.empty(resamples), np.empty(resamples)
    step = max(1, CHUNK_ELEMENTS // (n * n))
    for start in range(0, resamples, step):
        rows = index[start : start + step]
        taus[start : start + step] = _kendall_rows(xa[rows], ya[rows])
        rhos[start : start + step] = _spearman_rows(xa[rows], ya[rows])
    return RankAgreement(
        n,
        _interval("kendall", tau, taus, alpha),
        _interval("spearman", rho, rhos, alpha),
        1.0 - alpha,
        resamples,
    )


def _order(values: np.ndarray) -> list[int]:
    """Positions from the highest value down; equal values keep the order given."""
    return sorted(range(values.size), key=lambda i: -values[i])


def top_k_overlap(
    surrogate: Sequence[float | None], target: Sequence[float | None], k: int
) -> TopKOverlap:
    """``|top-k by surrogate ∩ top-k by target| / k`` over the candidates with both values.

    Args:
        surrogate: one score per candidate; None where missing.
        target: the target score, aligned with ``surrogate``; None where missing.
        k: the size of the top sets (ties broken by the order given).

    Returns:
        The overlap; undefined (None) when fewer than ``k`` candidates have both values.

    Raises:
        StatsError: ``k < 1``, unequal lengths or a NaN value.
    """
    if k < 1:
        raise StatsError(f"k must be at least 1, got {k}")
    _, xa, ya = paired_defined(surrogate, target)
    n = int(xa.size)
    if n < k:
        return TopKOverlap(k, n, None, None, None)
    shared = len(set(_order(xa)[:k]) & set(_order(ya)[:k]))
    return TopKOverlap(k, n, shared, shared / k, k / n)


def regret(
    surrogate: Sequence[float | None],
    target: Sequence[float | None],
    reference: float | None = None,
) -> Regret:
    """The target value of the surrogate's pick against the best target value among the
    candidates, and against ``reference`` when given.

    Args:
        surrogate: one score per candidate; None where missing.
        target: the target score, aligned with ``surrogate``; None where missing.
        reference: a value to beat on the target (e.g. cross-entropy's accuracy), or None.

    Returns:
        The regret; the pick is the highest surrogate score among the candidates with both
        values (the first of equals), and every field but ``reference`` is None without one.

    Raises:
        StatsError: unequal lengths or a NaN value.
    """
    keep, xa, ya = paired_defined(surrogate, target)
    if reference is not None and not math.isfinite(float(reference)):
        raise StatsError("the reference value is NaN or infinite; use None for a missing one")
    ref = None if reference is None else float(reference)
    if not keep:
        return Regret(0, None, None, None, None, None, ref, None)
    pick, best = _order(xa)[0], _order(ya)[0]
    pick_target, best_target = float(ya[pick]), float(ya[best])
    return Regret(
        len(keep),
        keep[pick],
        pick_target,
        keep[best],
        best_target,
        best_target - pick_target,
        ref,
        None if ref is None else ref - pick_target,
    )


__all__ = [
    "Correlation",
    "RankAgreement",
    "Regret",
    "TopKOverlap",
    "rank_agreement",
    "regret",
    "top_k_overlap",
]
