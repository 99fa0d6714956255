"""The report as data: a frozen :class:`Report` computed from tidy records, rendered elsewhere."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from nlfs.experiments.funnel import Funnel
from nlfs.stats import DEFAULT_RESAMPLES, Analysis, Comparison, Setting, analyse
from nlfs.stats.records import RunRecord


@dataclass(frozen=True)
class GroupSummary:
    """Mean and spread of one loss in one setting.

    Attributes:
        setting: the setting.
        loss: the loss.
        values: the values, by ascending seed.
        mean: their mean.
        std: their sample standard deviation (ddof 1; NaN, undefined, for a single run).
        best: whether this loss has the best mean of the setting (ties all best).
        stars: significance marks against the baseline after correction ("" for none, for an
            undefined test and for the baseline itself); see :func:`stars`.
    """

    setting: Setting
    loss: str
    values: tuple[float, ...]
    mean: float
    std: float
    best: bool
    stars: str

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Report:
    """Everything a report shows.

    Attributes:
        source: where the records came from (a file or a study), for the reader.
        analysis: all statistics (:func:`nlfs.stats.analyse`).
        summaries: one per (setting, loss) present, settings sorted, baseline first.
        funnel: the elimination funnel, when an elimination study was given.
        notes: remarks on the input (skipped failed grid jobs, and the analysis's own notes).
    """

    source: str
    analysis: Analysis
    summaries: tuple[GroupSummary, ...]
    funnel: Funnel | None
    notes: tuple[str, ...]

    def summary(self, setting: Setting, loss: str) -> GroupSummary | None:
        """The summary of ``loss`` in ``setting``, or None when it did not run there."""
        for s in self.summaries:
            if s.setting == setting and s.loss == loss:
                return s
        return None

    def comparison(self, setting: Setting, loss: str) -> Comparison | None:
        """The comparison of ``loss`` with the baseline in ``setting``, if any."""
        for c in self.analysis.comparisons:
            if c.setting == setting and c.loss == loss:
                return c
        return None


STAR_LEVELS = (50.0, 5.0, 1.0)
"""``***`` below alpha/50, ``**`` below alpha/5, ``*`` below alpha (0.001, 0.01, 0.05 at 0.05)."""


def stars(p: float | None, alpha: float) -> str:
    """Significance marks for a corrected p-value; none for an undefined test (None)."""
    if p is None:
        return ""
    for count, divisor in zip((3, 2, 1), STAR_LEVELS, strict=True):
        if p < alpha / divisor:
            return "*" * count
    return ""


def build_report(
    records: Iterable[RunRecord],
    *,
    source: str,
    baseline: str = "cross_entropy",
    metric: str = "test_acc",
    alpha: float = 0.05,
    pairing: str = "auto",
    significance_test: str = "t",
    higher_is_better: bool = True,
    tie_tolerance: float = 0.0,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    funnel: Funnel | None = None,
    notes: Sequence[str] = (),
) -> Report:
    """Compute a report from records; the arguments are those of :func:`nlfs.stats.analyse`.

    Args:
        records: tidy records.
        source: a description of where they came from.
        funnel: an elimination funnel to include.
        notes: remarks on the input to show (e.g. failed grid jobs that were skipped).

    The other keyword arguments are passed to :func:`nlfs.stats.analyse`; ``significance_test``
    also picks the p-values behind the stars.
    """
    analysis = analyse(
        records,
        baseline=baseline,
        metric=metric,
        alpha=alpha,
        pairing=pairing,
        significance_test=significance_test,
        higher_is_better=higher_is_better,
        tie_tolerance=tie_tolerance,
        seed=seed,
        resamples=resamples,
    )
    summaries = []
    by_setting: dict[Setting, list[tuple[str, tuple[float, ...]]]] = {}
    for setting, loss, values in analysis.values:
        by_setting.setdefault(setting, []).append((loss, values))
    for setting, groups in by_setting.items():
        means = {loss: float(np.mean(v)) for loss, v in groups}
        best = max(means.values()) if higher_is_better else min(means.values())
        for loss, values in groups:
            comp = next(
                (c for c in analysis.comparisons if c.setting == setting and c.loss == loss), None
            )
            mark = stars(comp.corrected_p(significance_test), alpha) if comp else ""
            std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
            summaries.append(
                GroupSummary(setting, loss, values, means[loss], std, means[loss] == best, mark)
            )
    return Report(source, analysis, tuple(summaries), funnel, (*notes, *analysis.notes))
