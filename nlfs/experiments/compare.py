"""Comparisons on equal budgets: search strategies (``nlfs compare``), space variants (``ablate``).

A comparison is one search study per (arm, search seed), named ``<name>-<arm>-s<seed>``, in one
storage, plus one grid study ``<name>-reevaluate``. Every study is an ordinary search: finished
ones are reused, an interrupted one resumes, a changed configuration is refused. Budgets count
trained evaluations (screen rejections and duplicates never use budget); with a time budget each
study stops once its evaluations' training seconds reach it instead.

The best in-search fitness of a study is optimistically biased: it is the maximum of many noisy
evaluations, all from one training seed. The re-evaluation grid therefore retrains each study's
``top_k`` candidates with ``reevaluate`` fresh training seeds (and cross-entropy with the
in-search seed and the fresh ones, the yardstick); the report's headline compares arms on
those scores. :func:`collect` reads everything back from the stored trials, so every number of
the report can be recomputed from storage.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nlfs.config import config_hash
from nlfs.errors import ConfigError
from nlfs.experiments.arms import Arm, study_name, with_seed
from nlfs.experiments.jobs import Job, JobSetting, enqueue_jobs, job_results, requeue_interrupted
from nlfs.search.runner import total_rejections
from nlfs.search.trials import TrialCache, counts_toward_budget
from nlfs.storage import load_existing_study, open_study, recover_interrupted, resolve_storage

REEVALUATE_KIND = "reevaluate"
BASELINE = "cross_entropy"
TIME_ONLY_BUDGET = 1_000_000
"""The evaluation budget of a study limited by time alone (a cap it never reaches)."""
FRESH_SEED_OFFSET = 1000
"""Re-evaluation seeds are ``eval_seed + 1000 + i``: fresh, and far from any search's seed."""
DIVERSITY_TOP = 20
DUPLICATE_REASONS = ("duplicate", "duplicate_curve")


@dataclass(frozen=True)
class Comparison:
    """What to compare and how.

    Attributes:
        kind: ``compare`` (strategies) or ``ablate`` (space variants).
        name: prefix of the study names.
        arms: the strategies or variants, in the user's order.
        seeds: search seeds; every arm runs every seed.
        budget: trained evaluations per study (ignored when ``time_budget_s`` is set).
        time_budget_s: training seconds per study, for equal-cost comparisons; None: budget.
        reevaluate: fresh training seeds per re-evaluated candidate (0: none).
        top_k: candidates per study to re-evaluate.
    """

    kind: str
    name: str
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...]
    budget: int
    time_budget_s: float | None = None
    reevaluate: int = 3
    top_k: int = 3

    def __post_init__(self) -> None:
        if self.kind not in ("compare", "ablate"):
            raise ConfigError(f"unknown comparison kind {self.kind!r}")
        if len(self.arms) < 2:
            raise ConfigError("a comparison needs at least two arms")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        if self.budget < 1:
            raise ConfigError(f"--budget must be at least 1, got {self.budget}")
        if self.reevaluate < 0 or self.top_k < 1:
            raise ConfigError("--reevaluate must be >= 0 and --top-k >= 1")

    @property
    def reference(self):
        """The first arm's config: profile, evaluation seed and device are shared by all."""
        return self.arms[0].config

    @property
    def reevaluation_seeds(self) -> list[int]:
        return [self.reference.eval_seed + FRESH_SEED_OFFSET + i for i in range(self.reevaluate)]

    def studies(self) -> list[tuple[Arm, int, str]]:
        """``(arm, seed, study name)`` of every search, arm by arm."""
        return [(arm, s, study_name(self.name, arm, s)) for arm in self.arms for s in self.seeds]

    def config_of(self, arm: Arm, seed: int):
        budget = TIME_ONLY_BUDGET if self.time_budget_s is not None else self.budget
        return with_seed(arm, seed, budget, self.time_budget_s)


# --------------------------------------------------------------------------- running


def run_searches(
    comparison: Comparison,
    storage: str,
    *,
    run: Callable[..., Any],
    workers: int = 1,
    on_study: Callable[[int, int, str, bool], None] | None = None,
) -> None:
    """Run (or resume, or reuse) every search of the comparison, one after another.

    ``run(config, study_name=..., storage=...)`` runs one search (``nlfs.search.workers
    .run_search``, with the caller's progress display); ``on_study(i, n, name, reused)`` is
    called before each. A finished study is still opened through ``run`` (with one worker, so
    nothing is spawned): that refuses a changed configuration as ``nlfs search`` does.
    """
    plan = comparison.studies()
    for index, (arm, seed, name) in enumerate(plan):
        config = comparison.config_of(arm, seed)
        reused = _finished(name, storage, config)
        if on_study is not None:
            on_study(index, len(plan), name, reused)
        config = dataclasses.replace(config, workers=1 if reused else workers)
        run(config, study_name=name, storage=storage)


def _finished(name: str, storage: str, config) -> bool:
    """Whether the study exists and its budget (or time budget) is used, as the runner counts."""
    try:
        study = load_existing_study(name, storage)
    except ConfigError:
        return False
    cache = TrialCache(study)
    cache.sync()
    limit = config.time_budget_s
    return cache.counted >= config.budget or (limit is not None and cache.seconds_used >= limit)


def reevaluation_name(comparison: Comparison) -> str:
    return f"{comparison.name}-{REEVALUATE_KIND}"


def prepare_reevaluation(comparison: Comparison, storage: str) -> tuple[optuna.Study, int, int]:
    """Open the re-evaluation grid and enqueue its missing jobs (after the searches).

    Returns:
        The study, its number of jobs and how many are still to run.
    """
    from nlfs.evaluation.profiles import load_profile, profile_data

    profile = profile_data(load_profile(comparison.reference.profile))
    recipe = {"profile": profile, "eval_seed": comparison.reference.eval_seed}
    name = reevaluation_name(comparison)
    study = open_study(
        name,
        resolve_storage(storage, name),
        attrs={"kind": REEVALUATE_KIND, "config": recipe, "config_hash": config_hash(recipe)},
    )
    recover_interrupted(study)
    requeue_interrupted(study)
    setting = JobSetting(profile, split="val")
    jobs = []
    for seed in [comparison.reference.eval_seed, *comparison.reevaluation_seeds]:
        jobs.append(
            Job(
                f"baseline|{BASELINE}|{seed}", setting, BASELINE, seed, None, {"baseline": BASELINE}
            )
        )
    for arm, search_seed, name in comparison.studies():
        for trial in top_trials(load_existing_study(name, storage), comparison.top_k):
            for seed in comparison.reevaluation_seeds:
                attrs = {
                    "study": name,
                    "trial": trial.number,
                    "arm": arm.name,
                    "search_seed": search_seed,
                }
                jobs.append(
                    Job(
                        f"{name}|{trial.number}|{seed}",
                        setting,
                        trial.user_attrs["expression"],
                        seed,
                        float(trial.user_attrs["sign"]),
                        attrs,
                    )
                )
    enqueue_jobs(study, jobs)
    done = job_results(study)
    return study, len(jobs), sum(j.id not in done for j in jobs)


def top_trials(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The ``k`` completed trials of highest fitness, best first (ties: lower number first)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state is TrialState.COMPLETE]
    return sorted(done, key=lambda t: (-t.value, t.number))[:k]


# --------------------------------------------------------------------------- reading back


def collect(comparison: Comparison, storage: str) -> dict[str, Any]:
    """Every fact the report needs, read from the stored studies (see the module docstring).

    Raises:
        ConfigError: a study of the comparison is missing (run without ``--report-only``).
    """
    from nlfs.evaluation.profiles import load_profile

    reeval = load_existing_study(reevaluation_name(comparison), storage)
    # A settled job that failed (NaN, divergence) scores 0.0: a loss that breaks under a fresh
    # seed must not look better for it. A job not run yet has no entry (None below).
    fitness = {job: _fitness(trial) for job, trial in job_results(reeval).items()}
    ref = comparison.reference
    fresh = comparison.reevaluation_seeds
    baseline_fit = fitness.get(f"baseline|{BASELINE}|{ref.eval_seed}")
    arms = []
    devices: set[str] = set()
    for arm in comparison.arms:
        studies = []
        for seed in comparison.seeds:
            name = study_name(comparison.name, arm, seed)
            study = load_existing_study(name, storage)
            facts = study_facts(study, baseline_fit, comparison.top_k)
            for top in facts["top"]:
                values = [fitness.get(f"{name}|{top['trial']}|{s}") for s in fresh]
                top["reevaluated"] = values
                top["reevaluated_mean"] = _mean(values)
            means = [
                t["reevaluated_mean"] for t in facts["top"] if t["reevaluated_mean"] is not None
            ]
            facts["reevaluated_best"] = max(means) if means else None
            devices.update(facts.pop("devices"))
            studies.append({"study": name, "seed": seed, **facts})
        arms.append(
            {
                "name": arm.name,
                "description": arm.description,
                "config_hash": arm.config.hash(),
                "studies": studies,
            }
        )
    profile = load_profile(ref.profile)
    return {
        "kind": comparison.kind,
        "name": comparison.name,
        "axis": "strategy" if comparison.kind == "compare" else "variant",
        "profile": ref.profile_label(),
        "profile_hash": config_hash(profile),
        "machine": machine(sorted(devices)),
        "budget": None if comparison.time_budget_s is not None else comparison.budget,
        "time_budget_s": comparison.time_budget_s,
        "seeds": list(comparison.seeds),
        "reevaluate": comparison.reevaluate,
        "top_k": comparison.top_k,
        "eval_seed": ref.eval_seed,
        "reevaluation_seeds": fresh,
        "baseline": {
            "loss": BASELINE,
            "fitness": baseline_fit,
            "reevaluated": [fitness.get(f"baseline|{BASELINE}|{s}") for s in fresh],
        },
        "arms": arms,
    }


def study_facts(study: optuna.Study, baseline: float | None, top_k: int) -> dict[str, Any]:
    """The facts of one search study (everything but the re-evaluated scores)."""
    from nlfs.losses.export import latex_formula

    used = sorted(
        (
            t
            for t in study.get_trials(deepcopy=False)
            if t.state.is_finished() and counts_toward_budget(t)
        ),
        key=lambda t: t.number,
    )
    ok = [t for t in used if t.state is TrialState.COMPLETE]
    rejections = total_rejections(study.user_attrs)
    best: list[float | None] = []
    seconds: list[float] = []
    running, elapsed = None, 0.0
    for trial in used:
        if trial.state is TrialState.COMPLETE:
            running = trial.value if running is None else max(running, trial.value)
        elapsed += float(trial.user_attrs.get("seconds") or 0.0)
        best.append(running)
        seconds.append(elapsed)
    reached = [
        i + 1
        for i, b in enumerate(best)
        if b is not None and baseline is not None and b >= baseline
    ]
    top = [
        {
            "trial": t.number,
            "expression": t.user_attrs["expression"],
            "latex": latex_formula(t.user_attrs["expression"], float(t.user_attrs["sign"])),
            "sign": float(t.user_attrs["sign"]),
            "fitness": float(t.value),
        }
        for t in top_trials(study, top_k)
    ]
    return {
        "evaluations": len(used),
        "ok": len(ok),
        # A pruned trial (stopped early, Optuna's PRUNED) is neither ok nor a training failure.
        "pruned": sum(t.state is TrialState.PRUNED for t in used),
        "failed": sum(t.state is TrialState.FAIL for t in used),
        "rejected": sum(rejections.values()),
        "duplicates": sum(rejections.get(r, 0) for r in DUPLICATE_REASONS),
        "rejections": rejections,
        "curve": {"evaluations": list(range(1, len(used) + 1)), "seconds": seconds, "best": best},
        "best_fitness": max((t.value for t in ok), default=None),
        "auc": float(np.mean([b or 0.0 for b in best])) if best else None,
        "evals_to_baseline": reached[0] if reached else None,
        "distinct_keys": len({t.user_attrs.get("key") for t in used if t.user_attrs.get("key")}),
        "diversity": diversity(top_trials(study, DIVERSITY_TOP)),
        "top": top,
        "devices": {str(t.user_attrs["device"]) for t in used if t.user_attrs.get("device")},
    }


def diversity(trials: Sequence[FrozenTrial]) -> float | None:
    """Mean pairwise L2 distance between the probe fingerprints of ``trials`` (None: < 2)."""
    from nlfs.screening.probe import expression_fingerprint

    prints = [
        expression_fingerprint(t.user_attrs["expression"], float(t.user_attrs["sign"]))
        for t in trials
    ]
    prints = [p for p in prints if p is not None]
    if len(prints) < 2:
        return None
    stack = np.stack(prints).astype(np.float64)
    dist = np.sqrt(((stack[:, None, :] - stack[None, :, :]) ** 2).sum(axis=-1))
    upper = dist[np.triu_indices(len(prints), k=1)]
    return float(upper.mean())


def machine(devices: Sequence[str]) -> str:
    """One line naming the machine the numbers come from."""
    import torch

    where = ", ".join(devices) or "no evaluations"
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, device {where}"
    )


def _fitness(trial: FrozenTrial) -> float:
    value = trial.user_attrs.get("fitness")
    return float(value) if trial.state is TrialState.COMPLETE and value is not None else 0.0


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean over the seeds whose job has run; None when none has."""
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None
