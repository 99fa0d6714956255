"""Each loss against the baseline across settings, one value per setting (Demsar 2006, 3.1.3).

Per-setting tests compare seeds; with one seed per setting they are undefined. Demsar recommends
testing across data sets instead: each setting contributes one pair (the loss's mean and the
baseline's mean over seeds there), and the Wilcoxon signed-rank test asks whether the loss is
better than the baseline in more settings, and by more, than chance would have it. It counts
settings, not seeds, as its sample, so it says whether a difference holds across the grid.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nlfs.stats._common import StatsError, TestResult
from nlfs.stats.correction import holm
from nlfs.stats.paired import wilcoxon_signed_rank


@dataclass(frozen=True)
class SettingsComparison:
    """One loss against the baseline by the Wilcoxon signed-rank test over settings.

    Attributes:
        loss: the loss compared.
        baseline: the baseline.
        n_settings: the settings where both ran: the pairs of the test.
        mean_difference: the mean over those settings of ``mean(loss) - mean(baseline)``, in the
            metric's own direction (NaN when there is no common setting).
        wilcoxon: the test of the per-setting mean differences (undefined under two settings or
            with no non-zero difference; p is then None).
        p_holm: its p-value after Holm's correction over the losses (None when undefined).
    """

    loss: str
    baseline: str
    n_settings: int
    mean_difference: float
    wilcoxon: TestResult
    p_holm: float | None


def wilcoxon_across_settings(
    means: Mapping[str, Mapping[Hashable, float]], baseline: str, losses: Sequence[str]
) -> tuple[SettingsComparison, ...]:
    """Test every loss in ``losses`` against ``baseline`` over the settings both ran in.

    Args:
        means: ``loss -> {setting -> value}``, one value per setting (the mean over seeds).
        baseline: the baseline, a key of ``means``.
        losses: the losses to compare, in the order of the result (the baseline is skipped).

    Returns:
        One comparison per loss, the Wilcoxon p-values Holm-corrected over the losses.

    Raises:
        StatsError: the baseline or a loss has no values.
    """
    missing = [name for name in (baseline, *losses) if name not in means]
    if missing:
        raise StatsError(f"no values across settings for {', '.join(missing)}")
    base = means[baseline]
    partial = []
    for loss in losses:
        if loss == baseline:
            continue
        common = [s for s in means[loss] if s in base]  # the test does not depend on order
        x = np.array([means[loss][s] for s in common], dtype=float)
        y = np.array([base[s] for s in common], dtype=float)
        diff = float(np.mean(x - y)) if common else float("nan")
        partial.append((loss, len(common), diff, wilcoxon_signed_rank(x, y)))
    adjusted = holm([test.p_value for *_, test in partial])
    return tuple(
        SettingsComparison(loss, baseline, n, diff, test, p_holm)
        for (loss, n, diff, test), p_holm in zip(partial, adjusted, strict=True)
    )
