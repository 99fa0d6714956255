"""Friedman, Nemenyi and the critical difference against Demsar (2006) and a hand-worked table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from nlfs.stats import (
    FriedmanResult,
    StatsError,
    block_ranks,
    critical_difference,
    friedman,
    friedman_statistic,
    nemenyi,
    nemenyi_q,
)

# Demsar (2006), section 3.2.4: four C4.5 variants over 14 data sets.
DEMSAR_NAMES = ("C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf")
DEMSAR_RANKS = (3.143, 2.000, 2.893, 1.964)


def test_friedman_statistic_from_demsar_average_ranks():
    """Demsar reports chi2_F = 9.28 and F_F = 3.69 for these average ranks and N = 14."""
    chi2, ff = friedman_statistic(DEMSAR_RANKS, 14)
    assert chi2 == pytest.approx(9.28, abs=0.01)
    assert ff == pytest.approx(3.69, abs=0.01)


# Demsar (2006), Table 5(a): Nemenyi's q_alpha for k = 2..10 treatments.
DEMSAR_Q = {
    0.05: (1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164),
    0.10: (1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920),
}


@pytest.mark.parametrize(
    "alpha,k,q", [(alpha, k, q) for alpha, qs in DEMSAR_Q.items() for k, q in enumerate(qs, 2)]
)
def test_nemenyi_q_matches_demsar_table_5a(alpha, k, q):
    """Three printed decimals; the table's last digit is off by up to 0.0007 from the exact
    studentized range quantile (2.3437 printed 2.343, 2.9483 printed 2.949), hence 0.001."""
    assert nemenyi_q(alpha, k) == pytest.approx(q, abs=0.001)


def test_critical_difference_demsar_example():
    """CD = 1.25 at alpha 0.05 and 1.12 at alpha 0.10 for k = 4, N = 14."""
    assert critical_difference(0.05, 4, 14) == pytest.approx(1.25, abs=0.005)
    assert critical_difference(0.10, 4, 14) == pytest.approx(1.12, abs=0.005)


def test_nemenyi_demsar_conclusion():
    """C4.5+m+cf vs C4.5 differ by 1.179: not significant at 0.05 (CD 1.25), significant at 0.10."""
    result = FriedmanResult(DEMSAR_NAMES, DEMSAR_RANKS, 14, 9.28, 0.03, 3.69, 0.02)
    strict = {(a, b): sig for a, b, _, _, sig in nemenyi(result, 0.05).pairs}
    loose = {(a, b): sig for a, b, _, _, sig in nemenyi(result, 0.10).pairs}
    assert not any(strict.values())
    assert loose[("C4.5", "C4.5+m+cf")] and loose[("C4.5", "C4.5+m")]
    assert not loose[("C4.5", "C4.5+cf")]
    p = {(a, b): pv for a, b, _, pv, _ in nemenyi(result, 0.05).pairs}
    assert 0.05 < p[("C4.5", "C4.5+m+cf")] < 0.10


def test_friedman_hand_worked_with_ties():
    """Rows ranked (higher is better): [1,2,3], [2,1,3], [1.5,1.5,3]; mean ranks 1.5, 1.5, 3.
    chi2 = 12*3/(3*4) * (1.5^2 + 1.5^2 + 3^2 - 3*4^2/4) = 4.5; one tie pair: correction
    1 - (2^3 - 2) / (3*3*(3^2 - 1)) = 11/12, so chi2 = 4.5 * 12/11."""
    table = np.array([[0.9, 0.8, 0.7], [0.85, 0.86, 0.7], [0.9, 0.9, 0.8]])
    res = friedman(table, ["a", "b", "c"])
    assert res.average_ranks == pytest.approx((1.5, 1.5, 3.0))
    assert res.statistic == pytest.approx(4.5 * 12 / 11)
    assert res.p_value == pytest.approx(math.exp(-res.statistic / 2))  # chi2 sf with 2 df
    ref = stats.friedmanchisquare(*table.T)
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)


def test_friedman_agrees_with_scipy_on_random_tables():
    rng = np.random.default_rng(11)
    for _ in range(20):
        table = rng.integers(0, 5, size=(rng.integers(3, 9), rng.integers(3, 6))).astype(float)
        names = [f"l{i}" for i in range(table.shape[1])]
        res = friedman(table, names)
        if res.note:
            continue
        ref = stats.friedmanchisquare(*table.T)
        assert res.statistic == pytest.approx(ref.statistic)
        assert res.p_value == pytest.approx(ref.pvalue)


def test_block_ranks_direction():
    assert block_ranks(np.array([[0.1, 0.3, 0.2]])).tolist() == [[3.0, 1.0, 2.0]]
    assert block_ranks(np.array([[0.1, 0.3, 0.2]]), higher_is_better=False).tolist() == [
        [1.0, 3.0, 2.0]
    ]


def test_friedman_all_ties_and_too_small():
    res = friedman(np.ones((3, 3)), ["a", "b", "c"])
    assert res.p_value == 1.0 and res.note
    with pytest.raises(StatsError):
        friedman(np.ones((1, 3)), ["a", "b", "c"])
