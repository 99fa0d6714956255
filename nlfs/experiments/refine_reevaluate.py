"""Re-evaluating a refinement (``nlfs refine``): the original and the best coefficient setting,
each with fresh training seeds, in a grid study ``<refine>-reevaluate``.

The seeds are those of ``nlfs compare``'s re-evaluation (eval seed + 1000 + i), so they are fresh
and paired between the two losses; the paired difference with its bootstrap interval and paired
t-test is stored on the refine study as the attribute ``refined``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nlfs.config import config_hash
from nlfs.errors import ConfigError
from nlfs.experiments.compare import FRESH_SEED_OFFSET, REEVALUATE_KIND, top_trials
from nlfs.experiments.jobs import Job, JobSetting, enqueue_jobs, job_results, requeue_interrupted
from nlfs.losses.lift import Lifted
from nlfs.storage import load_existing_study, open_study, recover_interrupted, resolve_storage


def reevaluation_name(study_name: str) -> str:
    return f"{study_name}-{REEVALUATE_KIND}"


def fresh_seeds(eval_seed: int, seeds: int) -> list[int]:
    """The re-evaluation seeds of ``nlfs compare``: fresh, and far from the search's seed."""
    return [eval_seed + FRESH_SEED_OFFSET + i for i in range(seeds)]


def original_trial(study: optuna.Study) -> FrozenTrial:
    """The completed trial of the original loss.

    Raises:
        ConfigError: the original has not finished ok (its training failed or is pending).
    """
    done = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("original") and t.state == TrialState.COMPLETE
    ]
    if not done:
        raise ConfigError(
            f"the original loss of {study.study_name!r} has no completed trial; run the tuning "
            "first (or resume it)"
        )
    return done[0]


def prepare_reevaluation(
    study: optuna.Study, storage: str | None, seeds: int
) -> tuple[optuna.Study, list[Job]]:
    """Open the re-evaluation grid and enqueue its missing jobs: original and best, fresh seeds."""
    recipe = study.user_attrs["config"]
    profile = recipe["profile_data"]
    grid_recipe = {"profile": profile, "eval_seed": recipe["eval_seed"]}
    name = reevaluation_name(study.study_name)
    grid = open_study(
        name,
        resolve_storage(storage, name),
        attrs={
            "kind": REEVALUATE_KIND,
            "config": grid_recipe,
            "config_hash": config_hash(grid_recipe),
        },
    )
    recover_interrupted(grid)
    requeue_interrupted(grid)
    setting = JobSetting(profile, split="val")
    chosen = {t.number: t for t in (original_trial(study), *top_trials(study, 1))}
    jobs = [
        Job(
            f"{number}|{seed}",
            setting,
            trial.user_attrs["expression"],
            seed,
            float(trial.user_attrs["sign"]),
            {"trial": number, "refine": study.study_name},
        )
        for number, trial in chosen.items()
        for seed in fresh_seeds(int(recipe["eval_seed"]), seeds)
    ]
    enqueue_jobs(grid, jobs)
    return grid, jobs


def summarize(study: optuna.Study, grid: optuna.Study, seeds: int) -> dict[str, Any]:
    """The refined loss and its paired comparison with the original, stored on ``study``.

    A re-run that failed scores 0.0 (as in ``nlfs compare``): a loss that cannot train is worse
    than any that can.
    """
    from nlfs.stats import bootstrap_mean_diff, paired_t

    recipe = study.user_attrs["config"]
    lifted = Lifted.from_attr(recipe["lifted"])
    original, best = original_trial(study), top_trials(study, 1)[0]
    fresh = fresh_seeds(int(recipe["eval_seed"]), seeds)
    results = job_results(grid)

    def scores(trial: FrozenTrial) -> list[float | None]:
        found = [results.get(f"{trial.number}|{seed}") for seed in fresh]
        return [
            None if t is None else (t.value if t.state == TrialState.COMPLETE else 0.0)
            for t in found
        ]

    before, after = scores(original), scores(best)
    summary: dict[str, Any] = {
        "study": study.study_name,
        "trial": best.number,
        "expression": best.user_attrs["expression"],
        "sign": float(best.user_attrs["sign"]),
        "coefficients": dict(zip(lifted.names, best.user_attrs["coefficients"], strict=True)),
        "lifted_nodes": lifted.describe(),
        "in_study": {
            "original": original.value,
            "refined": best.value,
            "eval_seed": recipe["eval_seed"],
        },
        "reevaluation": {"seeds": fresh, "original": before, "refined": after},
    }
    if None not in before and None not in after:
        interval = bootstrap_mean_diff(
            after, before, rng=np.random.default_rng(int(recipe["seed"])), paired=True
        )
        test = paired_t(after, before)
        summary["reevaluation"].update(
            mean_original=float(np.mean(before)),
            mean_refined=float(np.mean(after)),
            mean_difference=interval.estimate,
            ci95=[interval.low, interval.high],
            paired_t_p=test.p_value,
        )
    study.set_user_attr("refined", summary)
    return summary


def reevaluate(
    study_name: str,
    storage: str | None,
    seeds: int,
    run: Callable[[str], None],
) -> dict[str, Any]:
    """Re-evaluate the original and the best setting; ``run(grid_name)`` trains the waiting jobs
    (the CLI's progress bar around :func:`nlfs.experiments.grid.run_local`, or a test's)."""
    study = load_existing_study(study_name, storage)
    grid, _ = prepare_reevaluation(study, storage, seeds)
    run(grid.study_name)
    return summarize(study, load_existing_study(grid.study_name, storage), seeds)
