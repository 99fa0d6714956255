"""Elimination: successive halving of a search's best candidates at growing fidelity.

The best ``top`` completed candidates of a search study (distinct keys) are re-trained stage by
stage; each stage is a variant of one evaluator profile (architecture, resolution, RandAugment
magnitude, dropout, steps, ...). A stage trains every candidate once per training seed (``seed ..
seed + seeds - 1``, the same seeds for every candidate) and keeps the ``keep[i]`` best by the mean
fitness over those seeds: near the top of a search the differences between candidates are often
smaller than a change of seed makes (:mod:`nlfs.experiments.cuts`). A candidate with a failed run
drops out. Results form their own study (``kind`` "eliminate"), one grid job per stage, candidate
and seed (:mod:`nlfs.experiments.grid`), so the stages run with any number of workers and resume:
a finished stage is never re-run. :mod:`nlfs.experiments.funnel` summarizes such a study.

Optuna freezes a trial once it finishes, so the decision taken when a stage completes cannot be
written onto that stage's trials; it is the study attribute ``kept`` (stage index -> kept keys)
and :func:`records` merges it into each trial's record as ``kept``.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from nlfs.config import build, config_hash, resolve_config
from nlfs.errors import ConfigError, NLFSError
from nlfs.experiments.cuts import keep_best
from nlfs.experiments.jobs import (
    Job,
    JobSetting,
    as_stored,
    check_names,
    enqueue_jobs,
    job_results,
    load_grid_table,
    requeue_interrupted,
    with_steps,
)

KIND = "eliminate"
KEPT_ATTR = "kept"


@dataclass(frozen=True)
class Stage:
    """One round's fidelity: the fields set here replace the base profile's (None: keep it)."""

    name: str = ""
    model: str | None = None
    width: int | None = None
    resolution: int | None = None
    augment: str | None = None
    randaugment_ops: int | None = None
    randaugment_magnitude: int | None = None
    dropout: float | None = None
    steps: int | None = None
    batch_size: int | None = None
    train_size: int | None = None
    time_limit_s: float | None = None


@dataclass(frozen=True)
class EliminationConfig:
    """An elimination protocol (``configs/eliminate_*.toml``).

    Attributes:
        profile: the evaluator profile the stages vary (name, or path relative to the file).
        top: how many of the search's best candidates (distinct keys) enter the first stage.
        keep: how many survive each stage; one count per stage, decreasing.
        seed: the first training seed.
        seeds: training seeds per candidate and stage, ``seed .. seed + seeds - 1``, the same
            for every candidate (a paired comparison); a stage keeps by the mean over them.
        stages: the stages in order of growing fidelity.
    """

    stages: tuple[Stage, ...]
    profile: str = "micro"
    top: int = 8
    keep: tuple[int, ...] = (4, 2, 1)
    seed: int = 0
    seeds: int = 2

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError("elimination: at least one stage is needed")
        if self.seeds < 1:
            raise ConfigError(f"elimination: seeds must be at least 1, got {self.seeds}")
        if len(self.keep) != len(self.stages):
            raise ConfigError(
                f"elimination: {len(self.stages)} stages need {len(self.stages)} "
                f"keep counts, got {len(self.keep)} ({_ints(self.keep)})"
            )
        counts = (self.top, *self.keep)
        if any(k < 1 for k in counts) or any(a <= b for a, b in itertools.pairwise(counts)):
            raise ConfigError(
                f"elimination: top and keep must be positive and decreasing, got "
                f"top {self.top}, keep {_ints(self.keep)}"
            )

    @property
    def training_seeds(self) -> range:
        """The seeds every candidate of a stage is trained with."""
        return range(self.seed, self.seed + self.seeds)


def _ints(values: Sequence[int]) -> str:
    return ",".join(map(str, values))


def load_elimination_config(
    name_or_path: str | os.PathLike,
    *,
    top: int | None = None,
    keep: Sequence[int] | None = None,
    seeds: int | None = None,
) -> EliminationConfig:
    """Load a protocol by name (``eliminate_cpu``) or path, with ``--top``/``--keep``/``--seeds``
    applied."""
    path = resolve_config(name_or_path)
    table = load_grid_table(path)
    for name, value in (("top", top), ("keep", keep), ("seeds", seeds)):
        if value is not None:
            table[name] = list(value) if name == "keep" else value
    return build(EliminationConfig, table, where=f"elimination config {path.name}")


def stage_profile(base, stage: Stage, index: int):
    """The evaluator profile of stage ``index``: ``base`` with the stage's fields replaced."""
    changes = {
        f.name: getattr(stage, f.name)
        for f in dataclasses.fields(Stage)
        if f.name not in ("name", "steps") and getattr(stage, f.name) is not None
    }
    label = stage.name or f"stage{index + 1}"
    profile = dataclasses.replace(base, name=f"{base.name}/{label}", **changes)
    return with_steps(profile, stage.steps) if stage.steps is not None else profile


@dataclass(frozen=True)
class Entrant:
    """A search result entering elimination."""

    expression: str
    key: str
    sign: float
    source_trial: int
    source_fitness: float


def top_candidates(source: optuna.Study, top: int) -> list[Entrant]:
    """The ``top`` best completed trials of a search with distinct keys, best first."""
    ok = [
        t
        for t in source.get_trials(deepcopy=False)
        if t.state is TrialState.COMPLETE and t.user_attrs.get("expression")
    ]
    ok.sort(key=lambda t: (-t.value, t.number))
    chosen: dict[str, Entrant] = {}
    for trial in ok:
        attrs = trial.user_attrs
        key = attrs.get("key") or attrs["expression"]
        if key not in chosen:
            chosen[key] = Entrant(
                attrs["expression"],
                key,
                float(attrs.get("sign", 1.0)),
                trial.number,
                float(trial.value),
            )
        if len(chosen) == top:
            break
    return list(chosen.values())


def stage_job_id(index: int, key: str, seed: int) -> str:
    """The job id of candidate ``key`` trained with ``seed`` in stage ``index``."""
    return f"{index}|{key}|{seed}"


def _stage_jobs(
    config: EliminationConfig, settings: Sequence[JobSetting], index: int, pool: Sequence[Entrant]
) -> list[Job]:
    name = config.stages[index].name or f"stage{index + 1}"
    return [
        Job(
            stage_job_id(index, c.key, seed),
            settings[index],
            c.expression,
            seed,
            c.sign,
            {
                "stage": index,
                "stage_name": name,
                "candidate": c.expression,
                "key": c.key,
                "source_trial": c.source_trial,
            },
        )
        for c in pool
        for seed in config.training_seeds
    ]


def decide(
    study: optuna.Study,
    index: int,
    pool: Sequence[Entrant],
    keep: int,
    seeds: Sequence[int],
) -> list[str]:
    """Rank ``pool`` by its mean fitness over ``seeds`` in stage ``index``; the ``keep`` best keys.

    A candidate with a failed run never survives; ties go to the better search fitness (the
    pool's order), as :func:`nlfs.experiments.cuts.keep_best` says.

    Raises:
        NLFSError: when a job of the stage has no result yet.
    """
    results = job_results(study)
    scored = []
    for cand in pool:
        values = []
        for seed in seeds:
            trial = results.get(stage_job_id(index, cand.key, seed))
            if trial is None:
                raise NLFSError(
                    f"stage {index + 1} is unfinished (candidate {cand.key}, seed {seed}); run "
                    "the command again to resume"
                )
            values.append(float(trial.value) if trial.state is TrialState.COMPLETE else None)
        scored.append((cand.key, values))
    return keep_best(scored, keep)


def open_elimination(
    study_name: str,
    storage,
    config: EliminationConfig,
    source: str,
    source_storage: str | None,
    *,
    recover: bool = True,
) -> tuple[optuna.Study, list[JobSetting], list[Entrant]]:
    """Open or resume the elimination study; returns it, its stage settings and its pool.

    The pool is chosen once, when the study is created, and stored with it, so a resume uses
    the same candidates even if the search has gone on meanwhile.
    """
    from nlfs.evaluation.profiles import load_profile, profile_data
    from nlfs.storage import load_existing_study, open_study, recover_interrupted

    base = load_profile(config.profile)
    profiles = [stage_profile(base, s, i) for i, s in enumerate(config.stages)]
    check_names(
        models={p.model for p in profiles},
        datasets={p.dataset for p in profiles},
        augments={p.augment for p in profiles},
    )
    settings = [JobSetting(profile_data(p), split="val") for p in profiles]
    recipe = as_stored({**dataclasses.asdict(config), "base": profile_data(base), "source": source})
    study = open_study(
        study_name,
        storage,
        attrs={
            "kind": KIND,
            "source": source,
            "config": recipe,
            "config_hash": config_hash(recipe),
            "settings": {s.id: s.to_attr() for s in settings},
        },
    )
    stored = study.user_attrs.get("candidates")
    if stored is None:
        pool = top_candidates(load_existing_study(source, source_storage), config.top)
        if not pool:
            raise ConfigError(f"study {source!r} has no completed candidate to eliminate")
        study.set_user_attr("candidates", [dataclasses.asdict(c) for c in pool])
    else:
        pool = [Entrant(**c) for c in stored]
    if recover:
        recover_interrupted(study)
        requeue_interrupted(study)
    return study, settings, pool


def run_elimination(
    study: optuna.Study,
    settings: Sequence[JobSetting],
    config: EliminationConfig,
    pool: Sequence[Entrant],
    run_stage: Callable[[int, int], None],
    on_stage: Callable[[int, list[str]], None] | None = None,
) -> list[str]:
    """Run every unfinished stage in order and return the finalists' keys.

    ``run_stage(index, jobs)`` runs the stage's waiting jobs (local workers; ``jobs`` is how
    many the stage has); ``on_stage(index, kept)`` reports each decision, including those of
    stages finished in an earlier run.
    """
    kept_by_stage = dict(study.user_attrs.get(KEPT_ATTR, {}))
    for index in range(len(config.stages)):
        if str(index) not in kept_by_stage:
            jobs = _stage_jobs(config, settings, index, pool)
            enqueue_jobs(study, jobs)
            run_stage(index, len(jobs))
            kept_by_stage[str(index)] = decide(
                study, index, pool, config.keep[index], config.training_seeds
            )
            study.set_user_attr(KEPT_ATTR, kept_by_stage)
        kept = kept_by_stage[str(index)]
        if on_stage is not None:
            on_stage(index, kept)
        pool = [c for c in pool if c.key in set(kept)]
    return [c.key for c in pool]


RECORD_KEYS = (
    "stage",
    "stage_name",
    "candidate",
    "key",
    "sign",
    "source_trial",
    "seed",
    "best_acc",
    "final_acc",
    "fitness",
    "seconds",
    "failure_kind",
)


def records(study: optuna.Study) -> list[dict[str, Any]]:
    """One record per finished stage run (candidate and seed), with ``kept`` (None while its
    stage is undecided)."""
    kept_by_stage = study.user_attrs.get(KEPT_ATTR, {})
    rows = []
    for trial in sorted(job_results(study).values(), key=lambda t: t.number):
        row = {k: trial.user_attrs.get(k) for k in RECORD_KEYS}
        decided = kept_by_stage.get(str(row["stage"]))
        row["kept"] = None if decided is None else row["key"] in decided
        row["trial"] = trial.number
        rows.append(row)
    return rows
