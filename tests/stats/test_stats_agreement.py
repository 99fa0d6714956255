"""Rank agreement: tau-b and rho equal scipy, the bootstrap equals a resample loop over scipy and
is reproducible from its seed, top-k overlap and regret equal hand counts, and missing values
drop their pair."""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
from scipy import stats

from nlfs.stats import StatsError, rank_agreement, regret, top_k_overlap

# Ties on both sides, so tau-b's tie correction and rho's average ranks are exercised.
TIED_X = [0.61, 0.55, 0.72, 0.55, 0.80, 0.43, 0.72, 0.66, 0.50, 0.58]
TIED_Y = [0.83, 0.79, 0.86, 0.81, 0.86, 0.70, 0.84, 0.79, 0.77, 0.82]


def noisy_pairs(n: int, noise: float, seed: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.3, 0.8, n)
    return x.tolist(), (0.5 * x + rng.normal(0.0, noise, n)).tolist()


@pytest.mark.parametrize(
    ("x", "y"),
    [
        (TIED_X, TIED_Y),
        noisy_pairs(24, 0.05, 1),
        noisy_pairs(7, 0.5, 2),
        ([1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]),
    ],
)
def test_tau_b_and_rho_equal_scipy(x, y):
    result = rank_agreement(x, y, resamples=10)
    assert result.n == len(x)
    assert result.kendall.estimate == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert result.spearman.estimate == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_a_none_on_either_side_drops_the_pair():
    x = [None, *TIED_X, 0.9]
    y = [0.5, *TIED_Y, None]
    result = rank_agreement(x, y, resamples=10)
    assert result.n == len(TIED_X)
    assert result.kendall.estimate == pytest.approx(stats.kendalltau(TIED_X, TIED_Y).statistic)


def test_the_interval_is_the_percentile_bootstrap_of_scipy_over_resampled_pairs():
    """The documented algorithm, written as a plain loop: resample pairs with the seeded
    generator, compute scipy's correlations, drop undefined resamples, take the quantiles."""
    x, y = np.asarray(TIED_X), np.asarray(TIED_Y)
    resamples, seed = 300, 11
    index = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")  # scipy warns on the resamples that draw a constant side
        taus = [stats.kendalltau(x[i], y[i]).statistic for i in index]
        rhos = [stats.spearmanr(x[i], y[i]).statistic for i in index]
    result = rank_agreement(x.tolist(), y.tolist(), resamples=resamples, seed=seed, alpha=0.1)
    for found, draws in ((result.kendall, taus), (result.spearman, rhos)):
        defined = [d for d in draws if math.isfinite(d)]
        assert found.defined_resamples == len(defined)
        low, high = np.quantile(defined, [0.05, 0.95])
        assert found.low == pytest.approx(low, abs=1e-12)
        assert found.high == pytest.approx(high, abs=1e-12)
    assert result.confidence == pytest.approx(0.9)


def test_the_interval_is_reproducible_from_the_seed_and_leaves_the_global_rng_alone():
    x, y = noisy_pairs(15, 0.1, 3)
    numpy_state = np.random.get_state()[1].copy()
    random_state = random.getstate()
    first = rank_agreement(x, y, seed=5)
    assert rank_agreement(x, y, seed=5) == first
    assert rank_agreement(x, y, seed=np.random.SeedSequence(5)) == first
    other = rank_agreement(x, y, seed=6)
    assert (other.kendall.low, other.kendall.high) != (first.kendall.low, first.kendall.high)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert random.getstate() == random_state


def test_a_clear_monotone_relation_has_an_interval_above_zero_around_the_estimate():
    x, y = noisy_pairs(20, 0.02, 4)
    result = rank_agreement(x, y)
    for c in (result.kendall, result.spearman):
        assert 0.0 < c.low <= c.estimate <= c.high <= 1.0
        assert c.defined_resamples == result.resamples


def test_a_perfect_ranking_has_a_degenerate_interval_at_one():
    x = [0.1, 0.2, 0.3]
    result = rank_agreement(x, [2 * v for v in x], resamples=200)
    assert (result.kendall.estimate, result.kendall.low, result.kendall.high) == (1.0, 1.0, 1.0)
    # A resample that draws one pair three times (1 in 9) ranks nothing and is left out.
    assert result.kendall.defined_resamples < 200


@pytest.mark.parametrize(
    ("x", "y", "n", "why"),
    [
        ([0.1, 0.2], [0.3, 0.4], 2, "needs 3"),
        ([0.1, None, 0.3, 0.4], [0.3, 0.4, None, None], 1, "needs 3"),
        ([None, None], [None, None], 0, "needs 3"),
        ([0.5, 0.5, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4], 4, "constant"),
        ([0.1, 0.2, 0.3, 0.4], [0.7, 0.7, 0.7, 0.7], 4, "constant"),
    ],
)
def test_too_few_pairs_or_a_constant_side_leave_the_correlations_undefined(x, y, n, why):
    result = rank_agreement(x, y, resamples=20)
    assert result.n == n and not result.defined and why in result.note
    for c in (result.kendall, result.spearman):
        assert (c.estimate, c.low, c.high, c.defined_resamples) == (None, None, None, 0)


@pytest.mark.parametrize(
    ("x", "y", "kwargs"),
    [
        ([0.1, 0.2, 0.3], [0.1, 0.2], {}),
        ([0.1, math.nan, 0.3], [0.1, 0.2, 0.3], {}),
        ([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], {"alpha": 1.0}),
        ([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], {"resamples": 0}),
    ],
)
def test_bad_input_is_refused(x, y, kwargs):
    with pytest.raises(StatsError):
        rank_agreement(x, y, **kwargs)


SURROGATE = [0.9, 0.8, 0.7, 0.6, 0.5]
TARGET = [0.5, 0.9, 0.8, 0.1, 0.7]


@pytest.mark.parametrize(
    ("k", "shared"),
    # By surrogate: 0, 1, 2, 3, 4; by target: 1, 2, 4, 0, 3.
    [(1, 0), (2, 1), (3, 2), (4, 3), (5, 5)],
)
def test_top_k_overlap_counts_the_shared_candidates(k, shared):
    result = top_k_overlap(SURROGATE, TARGET, k)
    assert (result.k, result.n, result.shared) == (k, 5, shared)
    assert result.fraction == pytest.approx(shared / k)
    assert result.chance == pytest.approx(k / 5)


def test_top_k_overlap_breaks_ties_by_the_order_given():
    # Two candidates tie on the surrogate; the first one given is its top-1.
    assert top_k_overlap([1.0, 1.0, 0.0], [0.0, 5.0, 2.0], 1).shared == 0
    assert top_k_overlap([0.0, 1.0, 1.0], [2.0, 5.0, 0.0], 1).shared == 1


def test_top_k_overlap_drops_missing_values_and_is_undefined_beyond_n():
    result = top_k_overlap([0.9, None, 0.7, 0.6], [0.1, 0.9, 0.8, None], 1)
    assert (result.n, result.shared) == (2, 0)  # index 0 vs index 2
    undefined = top_k_overlap([0.9, None, 0.7], [0.1, 0.9, 0.8], 3)
    assert (undefined.n, undefined.shared, undefined.fraction, undefined.chance) == (
        2,
        None,
        None,
        None,
    )
    with pytest.raises(StatsError):
        top_k_overlap(SURROGATE, TARGET, 0)


def test_regret_is_the_target_lost_by_the_surrogates_pick():
    result = regret([0.9, 0.8, 0.7], [0.80, 0.85, 0.60], reference=0.82)
    assert (result.n, result.pick, result.best) == (3, 0, 1)
    assert (result.pick_target, result.best_target) == (0.80, 0.85)
    assert result.regret == pytest.approx(0.05)
    assert result.reference == 0.82
    assert result.reference_regret == pytest.approx(0.02)  # the pick falls short of it
    beaten = regret([0.9, 0.8, 0.7], [0.80, 0.85, 0.60], reference=0.75)
    assert beaten.reference_regret == pytest.approx(-0.05)
    assert regret([0.9, 0.8], [0.8, 0.7]).reference_regret is None


def test_regret_of_a_pick_that_is_the_targets_best_is_zero():
    assert regret([0.1, 0.9, 0.5], [0.3, 0.9, 0.4]).regret == 0.0


def test_regret_skips_candidates_missing_a_value_and_keeps_their_positions():
    result = regret([None, 0.8, 0.95, 0.6], [0.9, 0.7, None, 0.75])
    assert (result.n, result.pick, result.best) == (2, 1, 3)
    assert result.regret == pytest.approx(0.05)
    empty = regret([None, 0.5], [0.4, None], reference=0.8)
    assert (empty.n, empty.pick, empty.regret, empty.reference_regret) == (0, None, None, None)
    assert empty.reference == 0.8
