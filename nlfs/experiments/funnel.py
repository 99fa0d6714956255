"""The elimination funnel: how many candidates each stage ran and kept, and who survived; how
far each cut lies from the seed-to-seed noise, and how well consecutive stages agree.

Read from an elimination study (:mod:`nlfs.experiments.eliminate`) through its
:func:`~nlfs.experiments.eliminate.records`, so the funnel counts exactly the stage runs that
``nlfs eliminate`` reports, and scores candidates with the same functions as the decision
(:mod:`nlfs.experiments.cuts`: the mean over seeds, the pooled noise, the margin at the cut). The
records here import nothing heavy; the study is read on demand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nlfs.errors import DataError
from nlfs.experiments.cuts import judge_cut, pooled_sd, seed_mean
from nlfs.stats.agreement import rank_agreement

AGREEMENT_RESAMPLES = 2000
"""Bootstrap resamples of the interval of Kendall's tau between consecutive stages."""


@dataclass(frozen=True)
class CandidateScore:
    """One candidate in one stage.

    Attributes:
        key: its key.
        candidate: its expression (the key when unknown).
        source_trial: its trial in the search study.
        fitnesses: its fitness per training seed, in seed order; None for a failed run or one
            not settled yet.
        mean: its stage score, the mean over seeds; None unless every seed trained.
        failed: whether a run failed (it drops out).
        kept: whether the stage kept it (None while the stage is undecided).
    """

    key: str
    candidate: str
    source_trial: int | None
    fitnesses: tuple[float | None, ...]
    mean: float | None
    failed: bool
    kept: bool | None


@dataclass(frozen=True)
class FunnelStage:
    """One elimination stage.

    Attributes:
        stage: the stage index (0 first).
        name: its name.
        ran: candidates with a settled run in this stage.
        failed: of those, candidates with a failed run (they drop out).
        kept: candidates kept for the next stage (None while the stage is undecided).
        seeds: training seeds per candidate.
        noise: the pooled within-candidate standard deviation of fitness across seeds, over the
            candidates whose seeds all trained; None with one seed.
        margin: mean of the last kept candidate minus mean of the best dropped one; None while
            undecided or when no scored candidate was dropped.
        clear: whether the cut is clear of the noise (``margin > noise``); None when either is.
        tau: Kendall's tau-b between the previous stage's means and this stage's, over the
            candidates both scored; None for the first stage and with fewer than 3 candidates.
        tau_low: lower bound of tau's percentile bootstrap 95% interval over candidates.
        tau_high: its upper bound.
        tau_n: the candidates tau is computed over.
    """

    stage: int
    name: str
    ran: int
    failed: int
    kept: int | None
    seeds: int = 1
    noise: float | None = None
    margin: float | None = None
    clear: bool | None = None
    tau: float | None = None
    tau_low: float | None = None
    tau_high: float | None = None
    tau_n: int = 0


@dataclass(frozen=True)
class Survivor:
    """A candidate kept by the last decided stage, with its fitness there."""

    candidate: str
    fitness: float | None


@dataclass(frozen=True)
class Funnel:
    """An elimination study summarized: its stages and the survivors of the last decided one."""

    study: str
    stages: tuple[FunnelStage, ...]
    survivors: tuple[Survivor, ...]


def tau_text(stage: FunnelStage) -> str:
    """Kendall's tau with the previous stage as text: ``0.67 [0.33, 1.00] (n=4)``, or an en
    dash where undefined."""
    if stage.tau is None:
        return f"– (n={stage.tau_n})"
    interval = "" if stage.tau_low is None else f" [{stage.tau_low:.2f}, {stage.tau_high:.2f}]"
    return f"{stage.tau:.2f}{interval} (n={stage.tau_n})"


def _fitness(row: Mapping[str, Any]) -> float | None:
    for key in ("fitness", "best_acc"):
        value = row.get(key)
        if value is not None and math.isfinite(float(value)):
            return float(value)
    return None


def candidate_scores(
    rows: Sequence[Mapping[str, Any]], seeds: Sequence[Any] = ()
) -> list[CandidateScore]:
    """Score one stage's run records (:func:`~nlfs.experiments.eliminate.records`) per candidate.

    Args:
        rows: the stage's records, one per settled run.
        seeds: the seeds every candidate is trained with; those seen in ``rows`` are added (an
            older study, or one whose trials carry no seed, has one run per candidate).

    Returns:
        One score per candidate, in order of first run.
    """
    expected = list(dict.fromkeys([*seeds, *(r.get("seed") for r in rows)]))
    by_key: dict[str, dict[Any, Mapping[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(str(row["key"]), {})[row.get("seed")] = row
    scores = []
    for key, runs in by_key.items():
        first = next(iter(runs.values()))
        failed = any(r["failure_kind"] is not None for r in runs.values())
        values = tuple(
            None if (r := runs.get(seed)) is None or r["failure_kind"] is not None else _fitness(r)
            for seed in expected
        )
        scores.append(
            CandidateScore(
                key,
                str(first["candidate"] or key),
                first.get("source_trial"),
                values,
                seed_mean(values),
                failed,
                first["kept"],
            )
        )
    return scores


def configured_seeds(config: Mapping[str, Any]) -> range:
    """The training seeds of a stored elimination config (empty for one stored before seeds)."""
    if "seeds" not in config:
        return range(0)
    first = int(config.get("seed", 0))
    return range(first, first + int(config["seeds"]))


def _stage(
    index: int,
    name: str,
    seeds: int,
    scores: Sequence[CandidateScore],
    previous: Sequence[CandidateScore],
) -> FunnelStage:
    decided = bool(scores) and all(s.kept is not None for s in scores)
    scored = [s for s in scores if s.mean is not None]
    noise = pooled_sd([s.fitnesses for s in scored])
    cut = judge_cut(
        [s.mean for s in scored if s.kept], [s.mean for s in scored if not s.kept], noise
    )
    before = {s.key: s.mean for s in previous if s.mean is not None}
    pairs = [(before[s.key], s.mean) for s in scored if s.key in before]
    tau = (
        rank_agreement(
            [a for a, _ in pairs], [b for _, b in pairs], resamples=AGREEMENT_RESAMPLES
        ).kendall
        if pairs
        else None
    )
    return FunnelStage(
        index,
        name,
        len(scores),
        sum(s.failed for s in scores),
        sum(bool(s.kept) for s in scores) if decided else None,
        seeds=seeds,
        noise=noise,
        margin=cut.margin if decided else None,
        clear=cut.clear if decided else None,
        tau=None if tau is None else tau.estimate,
        tau_low=None if tau is None else tau.low,
        tau_high=None if tau is None else tau.high,
        tau_n=len(pairs),
    )


def funnel_from_study(study: Any) -> Funnel:
    """Summarize an elimination study (an ``optuna.Study`` written by ``nlfs eliminate``).

    A stage's name comes from the stored protocol, else from its runs' ``stage_name``; a stage
    is decided once the study attribute ``kept`` holds its survivors. Stages of the protocol
    that have not run yet are listed with nothing ran and ``kept`` None. Survivors carry their
    mean fitness over seeds.

    Raises:
        DataError: the study has no settled stage run.
    """
    from nlfs.experiments.eliminate import records  # deferred: it imports optuna

    rows = [r for r in records(study) if r["stage"] is not None]
    if not rows:
        raise DataError(
            f"study {study.study_name!r} has no elimination stage runs "
            "(trials with a 'stage' attribute)"
        )
    config = study.user_attrs.get("config") or {}
    configured = config.get("stages") or []
    seeds = configured_seeds(config)
    stages, survivors, previous = [], (), []
    for index in sorted({int(r["stage"]) for r in rows} | set(range(len(configured)))):
        ran = [r for r in rows if r["stage"] == index]
        named = [r["stage_name"] for r in ran if r["stage_name"]]
        name = (configured[index].get("name") if index < len(configured) else None) or (
            named[0] if named else f"stage{index + 1}"
        )
        scores = candidate_scores(ran, seeds)
        runs_each = max([1, len(seeds), *(len(s.fitnesses) for s in scores)])
        stage = _stage(index, name, runs_each, scores, previous)
        stages.append(stage)
        if stage.kept is not None:
            kept = [Survivor(s.candidate, s.mean) for s in scores if s.kept]
            kept.sort(key=lambda s: -(s.fitness if s.fitness is not None else -math.inf))
            survivors = tuple(kept)
        previous = scores
    return Funnel(study.study_name, tuple(stages), survivors)
