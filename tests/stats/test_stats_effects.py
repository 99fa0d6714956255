"""Effect sizes, corrections, bootstrap and the sign test against independent computations."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlfs.stats import (
    StatsError,
    benjamini_hochberg,
    bootstrap_mean_diff,
    cliffs_delta,
    cohens_d_paired,
    cohens_d_pooled,
    holm,
    sign_test,
    win_tie_loss,
)

values = st.lists(st.integers(-50, 50).map(lambda v: v / 10), min_size=1, max_size=15)


@settings(max_examples=50, deadline=None)
@given(values, values)
def test_cliffs_delta_equals_brute_force_double_loop(x, y):
    greater = sum(1 for a in x for b in y if a > b)
    less = sum(1 for a in x for b in y if a < b)
    assert cliffs_delta(x, y) == pytest.approx((greater - less) / (len(x) * len(y)))


def test_cliffs_delta_extremes():
    assert cliffs_delta([3, 4], [1, 2]) == 1.0
    assert cliffs_delta([1, 2], [3, 4]) == -1.0
    assert cliffs_delta([1, 2], [1, 2]) == 0.0


def test_cohens_d_pooled_matches_direct_formula():
    x, y = [0.91, 0.93, 0.92, 0.95], [0.90, 0.89, 0.91]
    sp = math.sqrt((3 * statistics.variance(x) + 2 * statistics.variance(y)) / 5)
    assert cohens_d_pooled(x, y) == pytest.approx((statistics.mean(x) - statistics.mean(y)) / sp)


def test_cohens_d_paired_is_mean_over_sd_of_differences():
    x, y = [0.91, 0.93, 0.92, 0.95], [0.90, 0.90, 0.93, 0.91]
    d = [a - b for a, b in zip(x, y, strict=True)]
    assert cohens_d_paired(x, y) == pytest.approx(statistics.mean(d) / statistics.stdev(d))


def test_cohens_d_degenerate_is_nan():
    assert math.isnan(cohens_d_paired([1.0, 2.0], [0.0, 1.0]))  # constant differences
    assert math.isnan(cohens_d_pooled([1.0], [1.0, 2.0]))
    assert math.isnan(cohens_d_pooled([1.0, 1.0], [1.0, 1.0]))


def test_holm_hand_worked():
    """p = [0.01, 0.04, 0.03, 0.005], m = 4. Sorted: 0.005, 0.01, 0.03, 0.04; multiplied by
    4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04; running max: 0.02, 0.03, 0.06, 0.06; back in order."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_benjamini_hochberg_hand_worked():
    """Sorted 0.005, 0.01, 0.03, 0.04 times m/i = 4, 2, 4/3, 1: 0.02, 0.02, 0.04, 0.04; running
    min from the top leaves them; back in input order."""
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_undefined_p_values_stay_out_of_the_family():
    """None (an undefined test) is no hypothesis: m counts the defined p-values only, so the
    result equals the correction of the defined ones, with None kept in place."""
    p = [0.01, None, 0.04, 0.03, None, 0.005]
    defined = [0.01, 0.04, 0.03, 0.005]
    for correct in (holm, benjamini_hochberg):
        out = correct(p)
        assert out[1] is None and out[4] is None
        assert [v for v in out if v is not None] == pytest.approx(correct(defined))
    assert holm([None, None]) == [None, None] and holm([]) == []


def test_corrections_cap_at_one_and_need_valid_p():
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # 2 * 0.6 caps at 1; the running max carries it
    assert benjamini_hochberg([0.9, 0.95]) == pytest.approx([0.95, 0.95])
    with pytest.raises(StatsError):
        holm([0.5, 1.5])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_corrections_never_lower_p_and_holm_dominates_bh(p):
    h, b = holm(p), benjamini_hochberg(p)
    for raw, hv, bv in zip(p, h, b, strict=True):
        assert raw <= bv + 1e-12 and bv <= hv + 1e-12 and hv <= 1.0


def test_bootstrap_is_reproducible_and_brackets_the_estimate():
    x, y = [0.91, 0.93, 0.92, 0.95, 0.90], [0.90, 0.90, 0.93, 0.91, 0.88]
    a = bootstrap_mean_diff(x, y, rng=np.random.default_rng(7), paired=True, resamples=2000)
    b = bootstrap_mean_diff(x, y, rng=np.random.default_rng(7), paired=True, resamples=2000)
    assert a == b
    d = np.subtract(x, y)
    assert d.min() <= a.low <= a.estimate <= a.high <= d.max()
    assert a.estimate == pytest.approx(d.mean()) and a.resamples == 2000 and a.paired


def test_bootstrap_of_constant_differences_has_zero_width():
    ci = bootstrap_mean_diff([2, 3, 4], [1, 2, 3], rng=np.random.default_rng(0), paired=True)
    assert ci.low == ci.high == pytest.approx(1.0)


def test_bootstrap_unpaired_covers_true_difference_mostly():
    """Coverage sanity: of 40 samples from N(1,1) vs N(0,1), most 90% intervals contain 1."""
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(40):
        x, y = rng.normal(1, 1, 20), rng.normal(0, 1, 20)
        ci = bootstrap_mean_diff(x, y, rng=rng, paired=False, resamples=500, confidence=0.9)
        hits += ci.low <= 1.0 <= ci.high
    assert hits >= 30


def test_sign_test_equals_hand_binomial():
    """8 wins, 2 losses: 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10."""
    expected = 2 * (math.comb(10, 0) + math.comb(10, 1) + math.comb(10, 2)) / 2**10
    assert sign_test(8, 2) == pytest.approx(expected)
    assert sign_test(3, 3) == 1.0 and sign_test(0, 0) == 1.0


def test_win_tie_loss_counts_with_tolerance_and_significance():
    wtl = win_tie_loss(
        "a",
        "b",
        [0.02, -0.01, 0.0005, 0.03],
        [0.01, 0.2, 0.9, 0.3],
        alpha=0.05,
        tie_tolerance=0.001,
    )
    assert (wtl.wins, wtl.ties, wtl.losses) == (2, 1, 1)
    assert (wtl.significant_wins, wtl.significant_losses) == (1, 0)
    assert wtl.sign_test_p == pytest.approx(sign_test(2, 1))
