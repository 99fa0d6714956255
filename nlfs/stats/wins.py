"""Win/tie/loss counts of a loss against the baseline across settings, with a sign test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from nlfs.stats._common import StatsError


@dataclass(frozen=True)
class WinTieLoss:
    """How often a loss beat, tied or lost to the baseline over settings.

    Attributes:
        loss: the loss compared.
        baseline: the baseline it is compared with.
        wins: settings where its mean is better by more than the tie tolerance.
        ties: settings where the means differ by at most the tolerance.
        losses: settings where its mean is worse by more than the tolerance.
        significant_wins: wins whose corrected p-value is below alpha.
        significant_losses: losses whose corrected p-value is below alpha.
        sign_test_p: two-sided sign (binomial) test p-value of wins vs losses, ties dropped.
    """

    loss: str
    baseline: str
    wins: int
    ties: int
    losses: int
    significant_wins: int
    significant_losses: int
    sign_test_p: float


def sign_test(wins: int, losses: int) -> float:
    """Two-sided sign test: the binomial p-value of ``wins`` among ``wins + losses`` at 1/2.

    Ties are left out beforehand (Demsar 2006, section 3.1.3 discusses splitting them instead;
    dropping them is the conservative textbook form). No decided setting gives p = 1.
    """
    if wins < 0 or losses < 0:
        raise StatsError(f"counts must be non-negative, got {wins} and {losses}")
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5, alternative="two-sided").pvalue)


def win_tie_loss(
    loss: str,
    baseline: str,
    mean_differences: Sequence[float],
    corrected_p: Sequence[float | None],
    *,
    alpha: float,
    tie_tolerance: float = 0.0,
) -> WinTieLoss:
    """Count wins, ties and losses from per-setting mean differences (loss minus baseline).

    Differences must be oriented so that positive is better (the caller flips the sign for
    lower-is-better metrics). A setting is a tie when ``|difference| <= tie_tolerance``.

    Args:
        loss: the loss compared.
        baseline: the baseline.
        mean_differences: one mean difference per setting, positive = better than the baseline.
        corrected_p: the matching corrected p-values, for the significant counts (None where the
            test was undefined: never significant).
        alpha: significance level for the significant counts.
        tie_tolerance: the largest absolute difference counted as a tie.
    """
    if len(mean_differences) != len(corrected_p):
        raise StatsError("one corrected p-value is needed per mean difference")
    if tie_tolerance < 0:
        raise StatsError(f"tie tolerance must be non-negative, got {tie_tolerance}")
    wins = ties = losses = sig_wins = sig_losses = 0
    for diff, p in zip(mean_differences, corrected_p, strict=True):
        if abs(diff) <= tie_tolerance:
            ties += 1
        elif diff > 0:
            wins += 1
            sig_wins += p is not None and p < alpha
        else:
            losses += 1
            sig_losses += p is not None and p < alpha
    return WinTieLoss(
        loss, baseline, wins, ties, losses, sig_wins, sig_losses, sign_test(wins, losses)
    )
