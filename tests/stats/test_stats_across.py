"""Tests across settings (Demsar 2006): Wilcoxon over settings against scipy, Friedman-rank
comparisons with a control against hand derivations, and analyse() wiring them together."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from nlfs.stats import (
    FriedmanResult,
    Setting,
    StatsError,
    analyse,
    friedman,
    friedman_vs_control,
    holm,
    wilcoxon_across_settings,
)
from nlfs.stats.records import RunRecord

SETTINGS = tuple(Setting(arch, "fmnist", aug) for arch in ("cnn", "resnet9") for aug in "abcd")


def normal_two_sided_p(z: float) -> float:
    """2 (1 - Phi(|z|)) written with the complementary error function, independent of scipy."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def test_friedman_vs_control_hand_derivation():
    """k = 3 losses, N = 4 settings, higher is better; ranks per setting (ce, a, b):
    [3, 2, 1], [3, 1, 2], [2, 3, 1], [3, 2, 1]; average ranks R_ce = 11/4 = 2.75, R_a = 2.0,
    R_b = 1.25. SE = sqrt(k (k + 1) / (6 N)) = sqrt(12 / 24) = sqrt(0.5) = 0.70711.
    z_a = (2.0 - 2.75) / 0.70711 = -1.06066, p_a = 0.28884;
    z_b = (1.25 - 2.75) / 0.70711 = -2.12132, p_b = 0.03389.
    Holm, m = 2: sorted p_b, p_a times 2, 1: 0.06779, 0.28884 (already monotone)."""
    table = np.array(
        [[0.80, 0.82, 0.85], [0.70, 0.75, 0.72], [0.90, 0.88, 0.93], [0.60, 0.61, 0.65]]
    )
    result = friedman(table, ["ce", "a", "b"])
    assert result.average_ranks == pytest.approx((2.75, 2.0, 1.25))
    control = friedman_vs_control(result, "ce", alpha=0.05)
    assert control.control == "ce" and control.standard_error == pytest.approx(math.sqrt(0.5))
    a, b = control.comparisons
    assert (a.name, b.name) == ("a", "b")
    assert (a.rank_difference, b.rank_difference) == pytest.approx((-0.75, -1.5))
    assert (a.z, b.z) == pytest.approx((-1.06066, -2.12132), abs=1e-5)
    assert a.p_value == pytest.approx(normal_two_sided_p(-0.75 / math.sqrt(0.5)))
    assert (a.p_value, b.p_value) == pytest.approx((0.28884, 0.03389), abs=1e-5)
    assert (a.p_holm, b.p_holm) == pytest.approx((a.p_value, 2 * b.p_value))
    assert not a.significant and not b.significant  # 0.0678 > 0.05
    # At alpha 0.10 the step-down rejects b (0.0339 < 0.10 / 2) and then stops at a.
    loose = friedman_vs_control(result, "ce", alpha=0.10).comparisons
    assert [c.significant for c in loose] == [False, True]


def test_friedman_vs_control_on_demsar_example_steps_down_like_holm():
    """Demsar's section 3.2.4 data: k = 4, N = 14, C4.5 as control (R_0 = 3.143).
    SE = sqrt(4 * 5 / (6 * 14)) = 0.48795. z = (R_i - 3.143) / SE:
    C4.5+m: -1.143 / 0.48795 = -2.3425, p = 0.01916;
    C4.5+cf: -0.250 / 0.48795 = -0.5123, p = 0.6084;
    C4.5+m+cf: -1.179 / 0.48795 = -2.4162, p = 0.01568.
    Holm's step-down at 0.05: 0.01568 < 0.05/3 = 0.0167 (reject), 0.01916 < 0.05/2 (reject),
    0.6084 >= 0.05 (stop). Nemenyi finds no pair at 0.05 (test_stats_ranks): with k - 1 tests
    instead of k (k - 1) / 2 the comparison with a control has more power."""
    names = ("C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf")
    result = FriedmanResult(names, (3.143, 2.000, 2.893, 1.964), 14, 9.28, 0.03, 3.69, 0.02)
    control = friedman_vs_control(result, "C4.5", alpha=0.05)
    assert control.standard_error == pytest.approx(0.48795, abs=1e-5)
    by_name = {c.name: c for c in control.comparisons}
    assert list(by_name) == list(names[1:])
    assert [by_name[n].z for n in names[1:]] == pytest.approx([-2.3425, -0.5123, -2.4162], abs=1e-4)
    assert [by_name[n].p_value for n in names[1:]] == pytest.approx(
        [0.01916, 0.6084, 0.01568], abs=1e-4
    )
    # The step-down by hand: sorted p against alpha / (m - i + 1), stop at the first failure.
    ordered = sorted(control.comparisons, key=lambda c: c.p_value)
    rejected = []
    for i, c in enumerate(ordered):
        if c.p_value >= 0.05 / (len(ordered) - i):
            break
        rejected.append(c.name)
    assert rejected == ["C4.5+m+cf", "C4.5+m"]
    assert {n for n, c in by_name.items() if c.significant} == set(rejected)
    assert [c.p_holm for c in control.comparisons] == pytest.approx(
        holm([c.p_value for c in control.comparisons])
    )


def test_friedman_vs_control_refuses_unknown_control():
    result = FriedmanResult(("a", "b"), (1.0, 2.0), 3, 3.0, 0.08, math.inf, 0.0)
    with pytest.raises(StatsError, match="control 'c' is not among a, b"):
        friedman_vs_control(result, "c")


def test_wilcoxon_across_settings_equals_scipy_on_the_setting_means():
    """One value per setting, paired by setting; scipy on the same two arrays agrees, and the
    p-values are Holm-corrected over the losses."""
    rng = np.random.default_rng(7)
    base = {s: 0.85 + 0.01 * i for i, s in enumerate(SETTINGS)}
    good = {s: v + 0.004 + float(rng.normal(0, 0.002)) for s, v in base.items()}
    noise = {s: v + float(rng.normal(0, 0.003)) for s, v in base.items()}
    out = wilcoxon_across_settings(
        {"ce": base, "good": good, "noise": noise}, "ce", ["ce", "good", "noise"]
    )
    assert [c.loss for c in out] == ["good", "noise"]
    raw = []
    for c, values in zip(out, (good, noise), strict=True):
        x = np.array([values[s] for s in SETTINGS])
        y = np.array([base[s] for s in SETTINGS])
        ref = stats.wilcoxon(x, y)
        assert c.n_settings == len(SETTINGS) and c.wilcoxon.n == len(SETTINGS)
        assert c.wilcoxon.statistic == pytest.approx(float(ref.statistic))
        assert c.wilcoxon.p_value == pytest.approx(float(ref.pvalue))
        assert c.mean_difference == pytest.approx(float(np.mean(x - y)))
        raw.append(float(ref.pvalue))
    assert [c.p_holm for c in out] == pytest.approx(holm(raw))
    assert out[0].p_holm < 0.05  # eight settings, all better: 2 / 2^8 before correction


def test_wilcoxon_across_settings_pairs_only_common_settings():
    """A loss that ran in one setting has one pair: undefined (None), and out of Holm's family."""
    base = {s: 0.8 + 0.01 * i for i, s in enumerate(SETTINGS)}
    full = {s: v + 0.01 * (i % 3 + 1) for i, (s, v) in enumerate(base.items())}
    lonely = {SETTINGS[0]: 0.95}
    out = wilcoxon_across_settings(
        {"ce": base, "full": full, "lonely": lonely}, "ce", ["full", "lonely"]
    )
    full_c, lonely_c = out
    assert lonely_c.n_settings == 1 and lonely_c.wilcoxon.p_value is None
    assert lonely_c.p_holm is None
    assert full_c.p_holm == pytest.approx(full_c.wilcoxon.p_value)  # a family of one
    with pytest.raises(StatsError, match="no values across settings for missing"):
        wilcoxon_across_settings({"ce": base}, "ce", ["missing"])


def one_seed_records() -> list[RunRecord]:
    """3 losses x 8 settings x 1 seed: per-setting tests undefined, across-settings ones not."""
    rng = np.random.default_rng(3)
    shift = {"cross_entropy": 0.0, "baikal": 0.001, "focal": 0.01}
    return [
        RunRecord(loss, s.arch, s.dataset, s.augment, 0, "test_acc", 0.8 + 0.01 * i + d)
        for i, s in enumerate(SETTINGS)
        for loss, d in ((name, shift[name] + float(rng.normal(0, 0.003))) for name in shift)
    ]


def test_analyse_with_one_seed_per_setting_tests_across_settings():
    records = one_seed_records()
    a = analyse(records, resamples=100)
    assert len(a.comparisons) == len(SETTINGS) * 2
    assert a.undefined_comparisons == len(a.comparisons)
    for c in a.comparisons:  # undefined, never p = 1
        assert c.rank_test.p_value is None and c.t_test.p_value is None
        assert c.rank_p_holm is c.rank_p_bh is c.t_p_holm is c.t_p_bh is None
    assert all(w.significant_wins == w.significant_losses == 0 for w in a.wins)
    assert any("undefined" in n and "across settings" in n for n in a.notes)
    value = {(r.loss, Setting(r.arch, r.dataset, r.augment)): r.value for r in records}
    raw = []
    for w in a.across:
        x = [value[(w.loss, s)] for s in a.settings]
        y = [value[("cross_entropy", s)] for s in a.settings]
        ref = stats.wilcoxon(x, y)
        assert w.wilcoxon.p_value == pytest.approx(float(ref.pvalue))
        raw.append(float(ref.pvalue))
    assert [w.loss for w in a.across] == ["baikal", "focal"]
    assert [w.p_holm for w in a.across] == pytest.approx(holm(raw))
    assert a.vs_control == friedman_vs_control(a.friedman, "cross_entropy", 0.05)
    focal = {c.name: c for c in a.vs_control.comparisons}["focal"]
    assert focal.rank_difference < 0 and focal.significant  # best in all eight settings


def test_analyse_skips_across_settings_with_one_setting():
    records = [r for r in one_seed_records() if r.augment == "a" and r.arch == "cnn"]
    a = analyse(records, resamples=100)
    assert a.across == () and a.vs_control is None
    assert any("tests across settings skipped" in n for n in a.notes)
