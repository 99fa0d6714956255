"""An elimination stage's cut: candidates ranked by their mean over seeds, and whether the cut
stands out from the seed-to-seed noise.

Among a search's best candidates the surrogate's differences are often smaller than what a change
of training seed does to one candidate, so elimination trains each candidate with several seeds
(paired: the same seeds for every candidate) and keeps by the mean. These are plain functions of
the per-seed fitnesses, shared by the decision (:func:`nlfs.experiments.eliminate.decide`) and
its summary (:mod:`nlfs.experiments.funnel`), so the two cannot disagree.

The rule a cut is judged by: the *noise* is the pooled within-candidate standard deviation of
fitness across seeds; the *margin* is the mean of the last kept candidate minus the mean of the
best dropped one; the cut is *clear* when the margin exceeds the noise, else *within noise*. With
2 seeds the noise is also the standard error of a difference of two candidates' means, so "clear"
means the cut is wider than one standard error; with more seeds the rule is stricter than that.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CUT_RULE = (
    "Noise: the pooled within-candidate standard deviation of fitness across seeds. Margin: the "
    "mean of the last kept candidate minus the mean of the best dropped one. A cut is clear when "
    "the margin exceeds the noise, else within noise."
)
"""The rule in words, for reports."""


def seed_mean(values: Sequence[float | None]) -> float | None:
    """A candidate's stage score: its mean fitness over seeds; None when a run failed (None)."""
    if not values or any(v is None for v in values):
        return None
    return statistics.fmean(values)


def keep_best(scored: Sequence[tuple[str, Sequence[float | None]]], keep: int) -> list[str]:
    """The keys of the ``keep`` best candidates by :func:`seed_mean`, best first.

    Args:
        scored: ``(key, per-seed fitnesses)`` in the pool's order (best search fitness first);
            a failed run is None.
        keep: how many to keep.

    A candidate with any failed run never survives; equal means go to the earlier candidate
    (the better search fitness).
    """
    ranked = sorted(
        (-mean, order, key)
        for order, (key, values) in enumerate(scored)
        if (mean := seed_mean(values)) is not None
    )
    return [key for *_, key in ranked[:keep]]


def pooled_sd(groups: Iterable[Sequence[float]]) -> float | None:
    """The pooled within-group standard deviation ``sqrt(sum (x - mean_g)^2 / sum (n_g - 1))``.

    Each group is one candidate's fitnesses over seeds; None when no group has two values (one
    seed measures no noise).
    """
    squares, dof = 0.0, 0
    for values in groups:
        if len(values) < 2:
            continue
        mean = statistics.fmean(values)
        squares += math.fsum((v - mean) ** 2 for v in values)
        dof += len(values) - 1
    return math.sqrt(squares / dof) if dof else None


@dataclass(frozen=True)
class Cut:
    """How far a stage's cut lies from the seed-to-seed noise (see the module's rule).

    Attributes:
        noise: the pooled within-candidate standard deviation; None with one seed.
        margin: last kept mean minus best dropped mean; None when nothing scored was dropped.
        clear: ``margin > noise``; None when either is None.
    """

    noise: float | None
    margin: float | None
    clear: bool | None


def judge_cut(kept: Iterable[float], dropped: Iterable[float], noise: float | None) -> Cut:
    """Judge a cut from the kept and dropped candidates' means (failed candidates left out)."""
    kept, dropped = list(kept), list(dropped)
    margin = min(kept) - max(dropped) if kept and dropped else None
    clear = None if margin is None or noise is None else margin > noise
    return Cut(noise, margin, clear)


def verdict(clear: bool | None) -> str:
    """``clear``, ``within noise``, or an en dash where the cut cannot be judged (``None``)."""
    if clear is None:
        return "–"
    return "clear" if clear else "within noise"
