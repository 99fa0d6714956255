"""Paired and unpaired tests against scipy and against brute-force exact null distributions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from nlfs.stats import (
    StatsError,
    mann_whitney_u,
    pair_by_seed,
    paired_t,
    welch_t,
    wilcoxon_signed_rank,
)

samples = st.lists(st.floats(-100, 100, allow_nan=False), min_size=3, max_size=12)


def exact_wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided exact p by enumerating every sign assignment (no zeros, no ties in |d|)."""
    ranks = stats.rankdata(np.abs(d))
    observed = min(ranks[d > 0].sum(), ranks[d < 0].sum())
    count = total = 0
    for signs in itertools.product((0, 1), repeat=d.size):
        w_plus = float(np.dot(signs, ranks))
        count += min(w_plus, ranks.sum() - w_plus) <= observed + 1e-9
        total += 1
    return min(count / total, 1.0)


def exact_mann_whitney_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided exact p by enumerating every split of the pooled sample (no ties)."""
    pooled = np.concatenate([x, y])
    u_obs = sum(float(a > b) for a in x for b in y)
    us = []
    for idx in itertools.combinations(range(pooled.size), x.size):
        xs = pooled[list(idx)]
        ys = np.delete(pooled, list(idx))
        us.append(sum(float(a > b) for a in xs for b in ys))
    us = np.array(us)
    return min(1.0, 2 * min(np.mean(us <= u_obs), np.mean(us >= u_obs)))


def test_wilcoxon_matches_enumerated_exact_distribution():
    """Small samples without ties: the p-value is the exact enumerated one."""
    x = np.array([0.91, 0.88, 0.93, 0.90, 0.87, 0.92, 0.89])
    y = np.array([0.90, 0.86, 0.935, 0.87, 0.862, 0.905, 0.8585])
    res = wilcoxon_signed_rank(x, y)
    assert res.p_value == pytest.approx(exact_wilcoxon_p(x - y), rel=1e-9)
    assert res.n == 7 and res.defined


@settings(max_examples=30, deadline=None)
@given(samples, st.integers(0, 2**31))
def test_wilcoxon_agrees_with_scipy(x, seed):
    """On any data with some non-zero difference, statistic and p equal scipy's."""
    rng = np.random.default_rng(seed)
    y = np.asarray(x) + rng.normal(size=len(x)).round(1)
    res = wilcoxon_signed_rank(x, y)
    d = np.asarray(x) - y
    if not np.any(d):
        assert res.p_value is None and not res.defined
        return
    ref = stats.wilcoxon(d, zero_method="wilcox")
    assert res.statistic == pytest.approx(float(ref.statistic))
    assert res.p_value == pytest.approx(float(ref.pvalue))


def test_wilcoxon_all_zero_differences_is_undefined_with_note():
    res = wilcoxon_signed_rank([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert res.p_value is None and "zero" in res.note and math.isnan(res.statistic)


@pytest.mark.parametrize("test", [wilcoxon_signed_rank, paired_t])
def test_paired_tests_with_one_pair_are_undefined_not_p_one(test):
    """One seed per setting: no p-value at all (None), never a p = 1 that claims a test ran."""
    res = test([0.5], [0.4])
    assert res.p_value is None and not res.defined and "fewer than 2" in res.note


@pytest.mark.parametrize("test", [wilcoxon_signed_rank, paired_t])
def test_paired_tests_with_two_pairs_are_defined(test):
    """Two pairs with differences that vary are enough for both tests (as for scipy)."""
    res = test([0.5, 0.7], [0.4, 0.65])
    assert res.defined and 0.0 < res.p_value <= 1.0


@pytest.mark.parametrize("test", [wilcoxon_signed_rank, paired_t])
def test_paired_tests_refuse_unequal_lengths(test):
    with pytest.raises(StatsError, match="equal length"):
        test([0.5, 0.6, 0.7], [0.4, 0.5])


@settings(max_examples=30, deadline=None)
@given(samples, st.integers(0, 2**31))
def test_paired_t_agrees_with_scipy_ttest_rel(x, seed):
    """t and p equal scipy.stats.ttest_rel whenever the differences vary."""
    y = np.asarray(x) + np.random.default_rng(seed).normal(size=len(x))
    res = paired_t(x, y)
    ref = stats.ttest_rel(x, y)
    assert res.statistic == pytest.approx(float(ref.statistic), rel=1e-9)
    assert res.p_value == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-300)


def test_paired_t_constant_differences_is_undefined_not_zero():
    """scipy says t = inf, p = 0, certainty from a degenerate sample; t is undefined here."""
    res = paired_t([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert res.p_value is None and "zero variance" in res.note


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy, near-equal data
@settings(max_examples=30, deadline=None)
@given(samples, samples)
def test_welch_agrees_with_scipy(x, y):
    """t and p equal scipy.stats.ttest_ind(equal_var=False) when a group varies."""
    if np.var(x) == 0 and np.var(y) == 0:
        assert welch_t(x, y).p_value is None
        return
    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    # scipy's df underflows to 0/0 for variances near 1e-170 and then falls back to df = 1;
    # that case is checked by hand below.
    assume(vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1) > 0)
    res = welch_t(x, y)
    ref = stats.ttest_ind(x, y, equal_var=False)
    assert res.statistic == pytest.approx(float(ref.statistic), rel=1e-7)
    assert res.p_value == pytest.approx(float(ref.pvalue), rel=1e-7, abs=1e-300)


def test_welch_degrees_of_freedom_do_not_underflow_for_tiny_variances():
    """x = (0, 0, 0), y = (0, 0, e): vy/ny = e^2/9, so t = -(e/3)/(e/3) = -1 and, all variance
    in y, df = ny - 1 = 2 exactly: p = 2 * sf_t2(1) = 1 - 1/sqrt(3), whatever the scale e."""
    for e in (1.0, 1e-88):
        res = welch_t([0.0, 0.0, 0.0], [0.0, 0.0, e])
        assert res.statistic == pytest.approx(-1.0)
        assert res.p_value == pytest.approx(1 - 1 / math.sqrt(3), rel=1e-12)


def test_welch_constant_groups_and_tiny_groups_are_undefined():
    constant, tiny = welch_t([1.0, 1.0], [1.0, 1.0, 1.0]), welch_t([1.0], [1.0, 2.0])
    assert "constant" in constant.note and "fewer than 2" in tiny.note
    assert constant.p_value is None and tiny.p_value is None


def test_mann_whitney_matches_enumerated_exact_distribution():
    x = np.array([0.81, 0.84, 0.79, 0.86])
    y = np.array([0.78, 0.80, 0.77, 0.83, 0.76])
    res = mann_whitney_u(x, y)
    assert res.statistic == 17.0  # pairs with x > y, counted by hand
    assert res.p_value == pytest.approx(exact_mann_whitney_p(x, y), rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(samples, samples)
def test_mann_whitney_agrees_with_scipy(x, y):
    res = mann_whitney_u(x, y)
    if len(set(x) | set(y)) == 1:
        assert res.p_value is None and res.note
        return
    ref = stats.mannwhitneyu(x, y, alternative="two-sided")
    assert res.statistic == pytest.approx(float(ref.statistic))
    assert res.p_value == pytest.approx(float(ref.pvalue))


def test_pair_by_seed_aligns_and_refuses_mismatched_seeds():
    seeds, a, b = pair_by_seed({2: 0.3, 0: 0.1, 1: 0.2}, {1: 1.2, 0: 1.1, 2: 1.3})
    assert seeds == [0, 1, 2] and list(a) == [0.1, 0.2, 0.3] and list(b) == [1.1, 1.2, 1.3]
    with pytest.raises(StatsError, match=r"only in the first: \[2\]"):
        pair_by_seed({0: 1.0, 1: 1.0, 2: 1.0}, {0: 1.0, 1: 1.0})


def test_nan_input_is_refused():
    with pytest.raises(StatsError, match="NaN"):
        welch_t([1.0, math.nan], [1.0, 2.0])
