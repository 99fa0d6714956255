"""analyse(): per-setting comparisons and ranks equal the individual tests run by hand."""

from __future__ import annotations

import numpy as np
import pytest

from nlfs.errors import DataError
from nlfs.stats import (
    Setting,
    analyse,
    benjamini_hochberg,
    cliffs_delta,
    cohens_d_paired,
    friedman,
    holm,
    mann_whitney_u,
    paired_t,
    welch_t,
    wilcoxon_signed_rank,
)
from nlfs.stats.records import RunRecord

LOSSES = ("cross_entropy", "baikal", "focal")
SETTINGS = (Setting("cnn", "fmnist", "none"), Setting("cnn", "fmnist", "flip"))


def make_records(seed: int = 1, seeds=range(4)) -> list[RunRecord]:
    rng = np.random.default_rng(seed)
    return [
        RunRecord(
            loss,
            s.arch,
            s.dataset,
            s.augment,
            k,
            "test_acc",
            0.8 + 0.01 * i + float(rng.normal(0, 0.01)),
        )
        for s in SETTINGS
        for i, loss in enumerate(LOSSES)
        for k in seeds
    ]


def values(records, setting, loss):
    return np.array(
        [
            r.value
            for r in sorted(records, key=lambda r: r.seed)
            if (r.arch, r.dataset, r.augment) == (setting.arch, setting.dataset, setting.augment)
            and r.loss == loss
        ]
    )


def test_comparisons_equal_direct_tests_and_corrections():
    records = make_records()
    a = analyse(records, baseline="ce", seed=3, resamples=500)
    assert a.baseline == "cross_entropy" and a.losses == LOSSES
    assert len(a.comparisons) == 4
    raw_t, raw_w = [], []
    for c in a.comparisons:
        x, y = values(records, c.setting, c.loss), values(records, c.setting, "cross_entropy")
        assert c.paired
        assert c.t_test == paired_t(x, y)
        assert c.rank_test == wilcoxon_signed_rank(x, y)
        assert c.cohens_d == pytest.approx(cohens_d_paired(x, y))
        assert c.cliffs_delta == pytest.approx(cliffs_delta(x, y))
        assert c.mean_difference == pytest.approx(x.mean() - y.mean())
        raw_t.append(c.t_test.p_value)
        raw_w.append(c.rank_test.p_value)
    assert [c.t_p_holm for c in a.comparisons] == pytest.approx(holm(raw_t))
    assert [c.t_p_bh for c in a.comparisons] == pytest.approx(benjamini_hochberg(raw_t))
    assert [c.rank_p_holm for c in a.comparisons] == pytest.approx(holm(raw_w))


def test_friedman_runs_on_setting_means():
    records = make_records()
    a = analyse(records, resamples=100)
    table = np.array(
        [[values(records, s, loss).mean() for loss in LOSSES] for s in sorted(SETTINGS)]
    )
    ref = friedman(table, LOSSES)
    assert a.friedman == ref
    assert a.nemenyi is not None and a.nemenyi.alpha == 0.05


def test_mismatched_seeds_fall_back_to_unpaired_with_a_note():
    records = [r for r in make_records() if not (r.loss == "focal" and r.seed == 0)]
    a = analyse(records, resamples=100)
    focal = [c for c in a.comparisons if c.loss == "focal"]
    assert all(not c.paired for c in focal)
    c = focal[0]
    x, y = values(records, c.setting, "focal"), values(records, c.setting, "cross_entropy")
    assert c.t_test == welch_t(x, y) and c.rank_test == mann_whitney_u(x, y)
    assert any("compared unpaired" in n for n in a.notes)
    with pytest.raises(DataError, match="not paired by seed"):
        analyse(records, pairing="paired", resamples=100)


def test_bootstrap_is_seeded():
    one = analyse(make_records(), seed=5, resamples=300)
    two = analyse(make_records(), seed=5, resamples=300)
    assert [c.ci for c in one.comparisons] == [c.ci for c in two.comparisons]


def test_lower_is_better_flips_wins():
    higher = analyse(make_records(), resamples=100)
    lower = analyse(make_records(), resamples=100, higher_is_better=False)
    for h, lo in zip(higher.wins, lower.wins, strict=True):
        assert (h.wins, h.losses) == (lo.losses, lo.wins)
    assert higher.friedman.average_ranks == tuple(4 - r for r in lower.friedman.average_ranks)


def test_unknown_baseline_and_metric_are_named():
    with pytest.raises(DataError, match="baseline 'mse' is not among the losses: baikal"):
        analyse(make_records(), baseline="mse")
    with pytest.raises(DataError, match="metrics present: test_acc"):
        analyse(make_records(), metric="best_test_acc")


def test_missing_groups_are_noted_and_friedman_needs_two_settings():
    records = [r for r in make_records() if not (r.loss == "focal" and r.augment == "flip")]
    a = analyse(records, resamples=100)
    assert len(a.comparisons) == 3
    assert a.friedman is None and any("Friedman test skipped" in n for n in a.notes)
