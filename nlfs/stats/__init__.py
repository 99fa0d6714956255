"""Statistics over tidy run records: pure functions returning frozen results, no printing.

Per setting, each loss against a baseline (paired by seed: Wilcoxon signed-rank, paired t;
unpaired: Welch t, Mann-Whitney U), effect sizes (Cohen's d, Cliff's delta), bootstrap confidence
intervals; Holm and Benjamini-Hochberg corrections; win/tie/loss counts with a sign test; across
settings (one value per setting, Demsar 2006), Wilcoxon signed-rank tests of each loss against the
baseline, Friedman's test with Nemenyi's critical difference, and Friedman-rank comparisons with
the baseline as control under Holm's step-down. :func:`analyse` puts them together for a
report. Rank agreement between two scores of the same candidates (Kendall, Spearman, top-k
overlap, regret) tells whether a cheap ranking carries to an expensive one.
"""

from nlfs.stats._common import StatsError, TestResult
from nlfs.stats.across import SettingsComparison, wilcoxon_across_settings
from nlfs.stats.agreement import (
    Correlation,
    RankAgreement,
    Regret,
    TopKOverlap,
    rank_agreement,
    regret,
    top_k_overlap,
)
from nlfs.stats.bootstrap import DEFAULT_RESAMPLES, ConfidenceInterval, bootstrap_mean_diff
from nlfs.stats.compare import (
    Analysis,
    Comparison,
    Setting,
    analyse,
    resolve_baseline,
)
from nlfs.stats.correction import benjamini_hochberg, holm
from nlfs.stats.effects import cliffs_delta, cohens_d_paired, cohens_d_pooled
from nlfs.stats.paired import pair_by_seed, paired_t, wilcoxon_signed_rank
from nlfs.stats.ranks import (
    ControlComparison,
    ControlResult,
    FriedmanResult,
    NemenyiResult,
    block_ranks,
    critical_difference,
    friedman,
    friedman_statistic,
    friedman_vs_control,
    nemenyi,
    nemenyi_q,
)
from nlfs.stats.unpaired import mann_whitney_u, welch_t
from nlfs.stats.wins import WinTieLoss, sign_test, win_tie_loss

__all__ = [
    "DEFAULT_RESAMPLES",
    "Analysis",
    "Comparison",
    "ConfidenceInterval",
    "ControlComparison",
    "ControlResult",
    "Correlation",
    "FriedmanResult",
    "NemenyiResult",
    "RankAgreement",
    "Regret",
    "Setting",
    "SettingsComparison",
    "StatsError",
    "TestResult",
    "TopKOverlap",
    "WinTieLoss",
    "analyse",
    "benjamini_hochberg",
    "block_ranks",
    "bootstrap_mean_diff",
    "cliffs_delta",
    "cohens_d_paired",
    "cohens_d_pooled",
    "critical_difference",
    "friedman",
    "friedman_statistic",
    "friedman_vs_control",
    "holm",
    "mann_whitney_u",
    "nemenyi",
    "nemenyi_q",
    "pair_by_seed",
    "paired_t",
    "rank_agreement",
    "regret",
    "resolve_baseline",
    "sign_test",
    "top_k_overlap",
    "welch_t",
    "wilcoxon_across_settings",
    "wilcoxon_signed_rank",
    "win_tie_loss",
]
