"""Every loss against a baseline, per setting and across settings, from tidy records.

This is the analysis a transfer report shows; it only combines the pure tests of this package.
A *setting* is one (architecture, dataset, augmentation); within it each loss is compared with
the baseline on one metric. Corrections run over all comparisons of the analysis, one family per
kind of test (the rank tests, the t-tests). Across settings, each setting gives one value per loss
(its mean over seeds): Wilcoxon signed-rank tests of each loss against the baseline, Friedman's
test, Nemenyi's all-pairs critical difference and the Friedman-rank comparisons with the baseline
as control (Demsar 2006). These are the tests to read when each loss ran once per setting, which
leaves the per-setting tests undefined.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from nlfs.errors import DataError
from nlfs.stats._common import StatsError, TestResult
from nlfs.stats.across import SettingsComparison, wilcoxon_across_settings
from nlfs.stats.bootstrap import DEFAULT_RESAMPLES, ConfidenceInterval, bootstrap_mean_diff
from nlfs.stats.correction import benjamini_hochberg, holm
from nlfs.stats.effects import cliffs_delta, cohens_d_paired, cohens_d_pooled
from nlfs.stats.paired import pair_by_seed, paired_t, wilcoxon_signed_rank
from nlfs.stats.ranks import (
    ControlResult,
    FriedmanResult,
    NemenyiResult,
    friedman,
    friedman_vs_control,
    nemenyi,
)
from nlfs.stats.records import RunRecord
from nlfs.stats.unpaired import mann_whitney_u, welch_t
from nlfs.stats.wins import WinTieLoss, win_tie_loss

PAIRINGS = ("auto", "paired", "unpaired")
SIGNIFICANCE_TESTS = ("t", "rank")
BASELINE_ALIASES = {"ce": "cross_entropy", "cross_entropy": "ce"}


@dataclass(frozen=True, order=True)
class Setting:
    """One cell of the grid without the loss and seed: architecture x dataset x augmentation."""

    arch: str
    dataset: str
    augment: str

    @property
    def label(self) -> str:
        return f"{self.arch} / {self.dataset} / {self.augment}"


@dataclass(frozen=True)
class Comparison:
    """One loss against the baseline in one setting.

    Differences and effect sizes are ``loss - baseline`` in the metric's own direction (positive
    means a larger value); ``better`` applies the metric's direction.

    Attributes:
        setting: where the comparison was made.
        loss: the loss compared.
        baseline: the baseline.
        paired: whether the samples were paired by seed (Wilcoxon, paired t, Cohen's d_z) or not
            (Mann-Whitney U, Welch t, Cohen's d with the pooled deviation).
        n_loss: runs of the loss.
        n_baseline: runs of the baseline.
        mean_difference: mean(loss) - mean(baseline).
        rank_test: the Wilcoxon signed-rank (paired) or Mann-Whitney U (unpaired) result.
        t_test: the paired t (paired) or Welch t (unpaired) result.
        rank_p_holm: the rank test's p-value after Holm's correction over all comparisons (None,
            like the raw p-value, where the test is undefined, e.g. one run per setting).
        rank_p_bh: ... after Benjamini-Hochberg.
        t_p_holm: the t-test's p-value after Holm's correction over all comparisons (None where
            undefined).
        t_p_bh: ... after Benjamini-Hochberg.
        cohens_d: Cohen's d (d_z when paired, pooled otherwise).
        cliffs_delta: Cliff's delta of loss vs baseline values.
        ci: the bootstrap confidence interval of the mean difference.
        better: whether the loss's mean is better than the baseline's (by any margin).
    """

    setting: Setting
    loss: str
    baseline: str
    paired: bool
    n_loss: int
    n_baseline: int
    mean_difference: float
    rank_test: TestResult
    t_test: TestResult
    rank_p_holm: float | None
    rank_p_bh: float | None
    t_p_holm: float | None
    t_p_bh: float | None
    cohens_d: float
    cliffs_delta: float
    ci: ConfidenceInterval
    better: bool

    def corrected_p(self, test: str) -> float | None:
        """The Holm-corrected p-value of ``test`` (``"t"`` or ``"rank"``), None if undefined."""
        return self.t_p_holm if test == "t" else self.rank_p_holm


@dataclass(frozen=True)
class Analysis:
    """All statistics of one metric: per-setting comparisons and the across-setting rank test.

    Attributes:
        metric: the metric analysed.
        baseline: the baseline loss (after resolving aliases).
        alpha: the significance level.
        higher_is_better: the metric's direction.
        significance_test: which test's Holm-corrected p-value decides significance
            (``"t"`` or ``"rank"``).
        losses: all losses, the baseline first.
        settings: all settings, sorted.
        values: ``(setting, loss, seed-sorted values)`` for every group present.
        comparisons: one per (setting, loss other than the baseline) with both present.
        wins: one win/tie/loss summary per non-baseline loss.
        friedman: the Friedman test over settings where every loss ran (None when fewer than two
            such settings or losses).
        nemenyi: Nemenyi's post-hoc on it (None with it).
        notes: what was left out and why.
        across: one Wilcoxon signed-rank test over settings per non-baseline loss, Holm-corrected
            over the losses (empty with fewer than two settings).
        vs_control: the Friedman-rank comparisons of each loss with the baseline, Holm's
            step-down over them (None with the Friedman test).
    """

    metric: str
    baseline: str
    alpha: float
    higher_is_better: bool
    significance_test: str
    losses: tuple[str, ...]
    settings: tuple[Setting, ...]
    values: tuple[tuple[Setting, str, tuple[float, ...]], ...]
    comparisons: tuple[Comparison, ...]
    wins: tuple[WinTieLoss, ...]
    friedman: FriedmanResult | None
    nemenyi: NemenyiResult | None
    notes: tuple[str, ...]
    across: tuple[SettingsComparison, ...] = ()
    vs_control: ControlResult | None = None

    @property
    def undefined_comparisons(self) -> int:
        """How many per-setting comparisons have neither test defined (too few runs, or
        differences without spread)."""
        return sum(_undefined(c) for c in self.comparisons)


def _undefined(c: Comparison) -> bool:
    """Whether neither test of ``c`` could be computed (e.g. one run of a loss in the setting)."""
    return not (c.rank_test.defined or c.t_test.defined)


def resolve_baseline(baseline: str, losses: Iterable[str]) -> str:
    """Return the loss name ``baseline`` refers to, accepting ``ce`` for ``cross_entropy``."""
    names = set(losses)
    for candidate in (baseline, BASELINE_ALIASES.get(baseline)):
        if candidate in names:
            return candidate
    raise DataError(f"baseline {baseline!r} is not among the losses: {', '.join(sorted(names))}")


def analyse(
    records: Iterable[RunRecord],
    *,
    baseline: str = "cross_entropy",
    metric: str = "test_acc",
    alpha: float = 0.05,
    pairing: str = "auto",
    significance_test: str = "t",
    higher_is_better: bool = True,
    tie_tolerance: float = 0.0,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
) -> Analysis:
    """Compare every loss with ``baseline`` in every setting, and all losses across settings.

    Args:
        records: tidy records (other metrics are ignored).
        baseline: the reference loss; ``ce`` is accepted for ``cross_entropy`` and vice versa.
        metric: the metric to analyse.
        alpha: the significance level for corrected p-values, win counts and Nemenyi's CD.
        pairing: ``auto`` pairs by seed where the seed sets match and falls back to the unpaired
            tests elsewhere; ``paired`` refuses unpaired settings; ``unpaired`` never pairs.
        significance_test: ``t`` (paired t / Welch) or ``rank`` (Wilcoxon / Mann-Whitney), the
            test whose Holm-corrected p-value marks a difference significant. The t-test is the
            default because with five or fewer seeds the Wilcoxon test cannot reach 0.05 at all.
        higher_is_better: the metric's direction (accuracy: True).
        tie_tolerance: mean differences at most this large count as ties in win/tie/loss.
        seed: seeds the bootstrap (one child generator per comparison, in a fixed order).
        resamples: bootstrap resamples B.

    Raises:
        DataError: the metric or baseline is absent, or ``pairing="paired"`` meets unpaired data.
        StatsError: an option is out of range.
    """
    if pairing not in PAIRINGS:
        raise StatsError(f"pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
    if significance_test not in SIGNIFICANCE_TESTS:
        raise StatsError(
            f"significance test must be one of {', '.join(SIGNIFICANCE_TESTS)}, "
            f"got {significance_test!r}"
        )
    if not 0.0 < alpha < 1.0:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    records = list(records)
    metrics = sorted({r.metric for r in records})
    groups: dict[tuple[Setting, str], dict[int, float]] = defaultdict(dict)
    for r in records:
        if r.metric == metric:
            groups[(Setting(r.arch, r.dataset, r.augment), r.loss)][r.seed] = r.value
    if not groups:
        raise DataError(
            f"no records of metric {metric!r}; metrics present: {', '.join(metrics) or 'none'}"
        )
    all_losses = {loss for _, loss in groups}
    baseline = resolve_baseline(baseline, all_losses)
    losses = (baseline, *sorted(all_losses - {baseline}))
    settings = tuple(sorted({s for s, _ in groups}))
    notes: list[str] = []
    raw = []  # (setting, loss, paired, x, y)
    for setting in settings:
        if (setting, baseline) not in groups:
            notes.append(f"{setting.label}: no {baseline} runs, no comparisons")
            continue
        base = groups[(setting, baseline)]
        for loss in losses[1:]:
            if (setting, loss) not in groups:
                notes.append(f"{setting.label}: no {loss} runs")
                continue
            runs = groups[(setting, loss)]
            what = f"{setting.label}: {loss} and {baseline}"
            paired = pairing == "paired" or (pairing == "auto" and set(runs) == set(base))
            if paired:
                try:
                    _, x, y = pair_by_seed(runs, base, what=what)
                except StatsError as err:
                    raise DataError(str(err)) from None
            else:
                x = np.array([runs[s] for s in sorted(runs)])
                y = np.array([base[s] for s in sorted(base)])
                if pairing == "auto":
                    notes.append(f"{what}: seeds differ, compared unpaired")
            raw.append((setting, loss, paired, x, y))
    comparisons = _compare(raw, baseline, higher_is_better, seed, resamples)
    wins = tuple(
        win_tie_loss(
            loss,
            baseline,
            [
                c.mean_difference * (1 if higher_is_better else -1)
                for c in comparisons
                if c.loss == loss
            ],
            [c.corrected_p(significance_test) for c in comparisons if c.loss == loss],
            alpha=alpha,
            tie_tolerance=tie_tolerance,
        )
        for loss in losses[1:]
    )
    if significance_test == "rank" and any(
        c.paired and c.rank_test.defined and 2.0 / 2**c.rank_test.n >= alpha for c in comparisons
    ):
        notes.append(
            f"with so few seeds the Wilcoxon test cannot reach p < {alpha} "
            "(smallest two-sided p is 2/2^n); consider --stars-test t or more seeds"
        )
    undefined = sum(_undefined(c) for c in comparisons)
    if undefined:
        notes.append(
            f"{undefined} of {len(comparisons)} per-setting comparisons are undefined "
            "(fewer than two runs per loss and setting, or differences without spread); "
            "read the tests across settings"
        )
    fried, nem = _friedman(groups, losses, settings, alpha, higher_is_better, notes)
    across = _across(groups, losses, settings, notes)
    vs_control = friedman_vs_control(fried, baseline, alpha) if fried is not None else None
    values = tuple(
        (s, loss, tuple(v for _, v in sorted(groups[(s, loss)].items())))
        for s in settings
        for loss in losses
        if (s, loss) in groups
    )
    return Analysis(
        metric,
        baseline,
        alpha,
        higher_is_better,
        significance_test,
        losses,
        settings,
        values,
        comparisons,
        wins,
        fried,
        nem,
        tuple(notes),
        across,
        vs_control,
    )


def _compare(raw, baseline, higher_is_better, seed, resamples) -> tuple[Comparison, ...]:
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(raw))]
    partial = []
    for (setting, loss, paired, x, y), rng in zip(raw, rngs, strict=True):
        if paired:
            rank, t, d = wilcoxon_signed_rank(x, y), paired_t(x, y), cohens_d_paired(x, y)
        else:
            rank, t, d = mann_whitney_u(x, y), welch_t(x, y), cohens_d_pooled(x, y)
        ci = bootstrap_mean_diff(x, y, rng=rng, paired=paired, resamples=resamples)
        partial.append((setting, loss, paired, x, y, rank, t, d, ci))
    if not partial:
        return ()
    rank_holm = holm([p[5].p_value for p in partial])
    rank_bh = benjamini_hochberg([p[5].p_value for p in partial])
    t_holm = holm([p[6].p_value for p in partial])
    t_bh = benjamini_hochberg([p[6].p_value for p in partial])
    out = []
    for i, (setting, loss, paired, x, y, rank, t, d, ci) in enumerate(partial):
        diff = float(np.mean(x) - np.mean(y))
        out.append(
            Comparison(
                setting,
                loss,
                baseline,
                paired,
                int(x.size),
                int(y.size),
                diff,
                rank,
                t,
                rank_holm[i],
                rank_bh[i],
                t_holm[i],
                t_bh[i],
                d,
                cliffs_delta(x, y),
                ci,
                better=diff > 0 if higher_is_better else diff < 0,
            )
        )
    return tuple(out)


def _friedman(groups, losses, settings, alpha, higher_is_better, notes):
    complete = [s for s in settings if all((s, loss) in groups for loss in losses)]
    if len(losses) < 2 or len(complete) < 2:
        notes.append(
            f"Friedman test skipped: needs 2+ losses run in 2+ settings, have "
            f"{len(losses)} losses and {len(complete)} complete settings"
        )
        return None, None
    if len(complete) < len(settings):
        notes.append(
            f"Friedman test over the {len(complete)} of {len(settings)} settings "
            "where every loss ran"
        )
    table = np.array(
        [[np.mean(list(groups[(s, loss)].values())) for loss in losses] for s in complete]
    )
    result = friedman(table, losses, higher_is_better=higher_is_better)
    return result, nemenyi(result, alpha)


def _across(groups, losses, settings, notes) -> tuple[SettingsComparison, ...]:
    if len(settings) < 2:
        notes.append(f"tests across settings skipped: need 2+ settings, have {len(settings)}")
        return ()
    means: dict[str, dict[Setting, float]] = defaultdict(dict)
    for (setting, loss), runs in groups.items():
        means[loss][setting] = float(np.mean(list(runs.values())))
    return wilcoxon_across_settings(means, losses[0], losses[1:])
