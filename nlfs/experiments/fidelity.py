"""Does the surrogate's ranking carry to a target setting? The experiment behind ``nlfs fidelity``.

From a search study, pick N candidates spread over its fitness range (the top ones always, the
rest one per quantile stratum, drawn from ``seed``), add cross-entropy and the other baselines as
anchors, and train them all in one grid study (``kind`` = ``fidelity``):

- on the *target*: a transfer grid (``configs/fidelity_cpu.toml`` by default: another
  architecture, more steps, augmentation on), S paired seeds, scored on the test split as transfer
  scores; a target accuracy is the mean over the grid's settings;
- on the *surrogate* once more, with a fresh evaluation seed, so the report can say how well the
  surrogate agrees with itself (its noise ceiling); the first surrogate score of a candidate is its
  stored in-search fitness, the anchors are trained with the search's evaluation seed too.

A job that fails (NaN, divergence) scores 0.0: a loss that breaks on the target ranks last there.
Like every grid study it resumes, is shared by workers and trains nothing twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nlfs.config import config_hash
from nlfs.errors import ConfigError
from nlfs.experiments.jobs import Job, JobSetting, enqueue_jobs, job_results, requeue_interrupted
from nlfs.experiments.transfer import (
    LossRef,
    TransferConfig,
    base_profile,
    check_axes,
    plan_jobs,
    resolve_losses,
)
from nlfs.search.config import config_from_dict
from nlfs.storage import load_existing_study, open_study, recover_interrupted, resolve_storage

KIND = "fidelity"
ANCHORS = ("ce", "label_smoothing", "focal", "poly1", "baikal", "squared_error")
"""Cross-entropy and the other baselines: known losses every search can be placed against."""
ALWAYS_TOP = 3
"""The search's best candidates are always picked: the search decides among them."""
SURROGATE_SEED_OFFSET = 1000
"""The surrogate's second evaluation seed is the search's ``eval_seed + 1000``."""
SURROGATE = "surrogate"


@dataclass(frozen=True)
class Fidelity:
    """One fidelity experiment.

    Attributes:
        search_study: the search whose ranking is checked.
        target: the target transfer grid (its ``losses`` are ignored; ``seeds`` as given).
        candidates: how many search candidates to pick (N).
        seed: seed of the stratified pick.
        top: size of the "surrogate's top candidates" subset the report also looks at.
        name: the grid study's name.
    """

    search_study: str
    target: TransferConfig
    candidates: int = 24
    seed: int = 0
    top: int = 10
    name: str = ""

    def __post_init__(self) -> None:
        if self.candidates < 3:
            raise ConfigError(f"--candidates must be at least 3, got {self.candidates}")
        if self.top < 2:
            raise ConfigError(f"--top must be at least 2, got {self.top}")


def pick(trials: Sequence[FrozenTrial], n: int, seed: int) -> list[FrozenTrial]:
    """``n`` completed trials spread over the fitness range, best first.

    The :data:`ALWAYS_TOP` best always; the others ranked by fitness and cut into ``n -
    ALWAYS_TOP`` strata of (nearly) equal size, one drawn from each with
    ``numpy.random.default_rng(seed)``: deterministic from the seed, whatever the order given.
    """
    done = sorted(
        (t for t in trials if t.state is TrialState.COMPLETE), key=lambda t: (-t.value, t.number)
    )
    if len(done) <= n:
        return done
    top = min(ALWAYS_TOP, n)
    chosen, rest = done[:top], done[top:]
    rng = np.random.default_rng(seed)
    for stratum in np.array_split(np.arange(len(rest)), n - top) if n > top else ():
        chosen.append(rest[int(rng.choice(stratum))])
    return sorted(chosen, key=lambda t: (-t.value, t.number))


def grid_name(fidelity: Fidelity) -> str:
    return fidelity.name or f"{fidelity.search_study}-{KIND}"


def plan(fidelity: Fidelity, storage: Any) -> tuple[list[LossRef], list[Job], dict[str, Any]]:
    """The picked losses (candidates, then anchors), every job, and the stored recipe."""
    search = load_existing_study(fidelity.search_study, storage)
    if search.user_attrs.get("kind") != "search":
        raise ConfigError(f"study {fidelity.search_study!r} is not a search study")
    config = config_from_dict(search.user_attrs["config"])
    picked = pick(search.get_trials(deepcopy=False), fidelity.candidates, fidelity.seed)
    if len(picked) < 3:
        raise ConfigError(
            f"study {fidelity.search_study!r} has {len(picked)} completed trials; a rank "
            "agreement needs at least 3"
        )
    refs = [
        LossRef(
            f"{fidelity.search_study}:{t.number}",
            t.user_attrs["expression"],
            float(t.user_attrs["sign"]),
        )
        for t in picked
    ]
    refs += resolve_losses(ANCHORS)
    check_axes(fidelity.target)
    target_jobs = plan_jobs(fidelity.target, refs, base_profile(fidelity.target))
    from nlfs.evaluation.profiles import load_profile, profile_data

    surrogate = JobSetting(profile_data(load_profile(config.profile)), split="val")
    fresh = config.eval_seed + SURROGATE_SEED_OFFSET
    surrogate_jobs = [
        Job(f"{SURROGATE}|{ref.label}|{seed}", surrogate, ref.spec, seed, ref.sign,
            {"role": SURROGATE, "loss": ref.label})
        for ref in refs
        for seed in ((config.eval_seed, fresh) if ref.sign is None else (fresh,))
    ]  # fmt: skip
    recipe = {
        "search_study": fidelity.search_study,
        "surrogate": surrogate.to_attr(),
        "target": dataclasses.asdict(dataclasses.replace(fidelity.target, losses=("-",))),
        "candidates": [r.label for r in refs],
        "seed": fidelity.seed,
    }
    return refs, target_jobs + surrogate_jobs, recipe


def prepare(fidelity: Fidelity, storage: Any) -> tuple[optuna.Study, int, int]:
    """Open (or resume) the fidelity grid and enqueue its missing jobs.

    Returns:
        The study, its number of jobs and how many are still to run.
    """
    _, jobs, recipe = plan(fidelity, storage)
    name = grid_name(fidelity)
    stored = json_safe(recipe)
    study = open_study(
        name,
        resolve_storage(storage, name),
        attrs={"kind": KIND, "config": stored, "config_hash": config_hash(stored)},
    )
    # The report's top-subset size is not part of the experiment (not hashed); the latest run's
    # is kept so `nlfs report --fidelity` shows what `nlfs fidelity` showed.
    study.set_user_attr("top", fidelity.top)
    recover_interrupted(study)
    requeue_interrupted(study)
    enqueue_jobs(study, jobs)
    done = job_results(study)
    return study, len(jobs), sum(j.id not in done for j in jobs)


def json_safe(data: Any) -> Any:
    """Plain data as a study attribute stores and reads it back (tuples become lists)."""
    import json

    return json.loads(json.dumps(data, default=list))


def collect(fidelity: Fidelity, storage: Any) -> dict[str, Any]:
    """Every fact of the fidelity report, read back from the stored studies.

    Raises:
        ConfigError: the fidelity grid does not exist yet (run without ``--report-only``).
    """
    from nlfs.experiments.compare import machine

    refs, _, recipe = plan(fidelity, storage)
    grid = load_existing_study(grid_name(fidelity), storage)
    if grid.user_attrs.get("config_hash") != config_hash(json_safe(recipe)):
        raise ConfigError(
            f"the fidelity grid {grid.study_name!r} was made for other candidates or settings "
            "(did the search continue since?); give it another --name"
        )
    search = load_existing_study(fidelity.search_study, storage)
    config = config_from_dict(search.user_attrs["config"])
    values: dict[str, float] = {}
    devices: set[str] = set()
    for job, trial in job_results(grid).items():
        attrs = trial.user_attrs
        ok = trial.state is TrialState.COMPLETE
        key = "fitness" if attrs.get("role") == SURROGATE else "final_acc"
        values[job] = float(attrs[key]) if ok and attrs.get(key) is not None else 0.0
        if attrs.get("device"):
            devices.add(str(attrs["device"]))
    target = fidelity.target
    settings = [(a, d, g) for a in target.archs for d in target.datasets for g in target.augment]
    seeds = list(range(target.first_seed, target.first_seed + target.seeds))
    fresh = config.eval_seed + SURROGATE_SEED_OFFSET
    in_search = {
        f"{fidelity.search_study}:{t.number}": float(t.value)
        for t in search.get_trials(deepcopy=False)
        if t.state is TrialState.COMPLETE
    }

    def entry(ref: LossRef) -> dict[str, Any]:
        anchor = ref.sign is None
        first = (
            values.get(f"{SURROGATE}|{ref.label}|{config.eval_seed}")
            if anchor
            else (in_search.get(ref.label))
        )
        per_seed = []
        for seed in seeds:
            cells = [values.get("|".join((ref.label, *s, str(seed)))) for s in settings]
            per_seed.append(None if any(c is None for c in cells) else float(np.mean(cells)))
        return {
            "label": ref.label,
            "trial": None if anchor else int(ref.label.rpartition(":")[2]),
            "expression": None if anchor else ref.spec,
            "sign": ref.sign,
            "anchor": anchor,
            "surrogate": [first, values.get(f"{SURROGATE}|{ref.label}|{fresh}")],
            "target": per_seed,
        }

    candidates = [entry(r) for r in refs if r.sign is not None]
    anchors = [entry(r) for r in refs if r.sign is None]
    ce = next(a for a in anchors if a["label"] == "ce")
    return {
        "kind": KIND,
        "name": grid_name(fidelity),
        "search_study": fidelity.search_study,
        "surrogate_profile": config.profile_label(),
        "target": _describe(target),
        "target_settings": ["/".join(s) for s in settings],
        "machine": machine(sorted(devices)),
        "seed": fidelity.seed,
        "target_seeds": seeds,
        "surrogate_seeds": [config.eval_seed, fresh],
        "top": fidelity.top,
        "candidates": candidates,
        "anchors": anchors,
        "cross_entropy": {"surrogate": _mean(ce["surrogate"]), "target": _mean(ce["target"])},
        "recipe_hash": config_hash(json_safe(recipe)),
    }


def _describe(target: TransferConfig) -> str:
    if target.steps:
        steps = f"{target.steps} steps"
    elif target.epochs:
        steps = f"{target.epochs} epochs"
    else:
        steps = "the profile's steps"
    return (
        f"{', '.join(target.archs)} on {', '.join(target.datasets)} with augmentation "
        f"{', '.join(target.augment)}, {steps} from profile {target.profile}, test accuracy"
    )


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def load_target(name_or_path: str) -> TransferConfig:
    """The target: a transfer grid, or a profile (its own model, data and augmentation, two
    seeds).

    Raises:
        ConfigError: neither a grid nor a profile of that name.
    """
    from nlfs.evaluation.profiles import load_profile
    from nlfs.experiments.transfer import load_transfer_config

    try:
        return load_transfer_config(name_or_path)
    except ConfigError as grid_error:
        try:
            profile = load_profile(name_or_path)
        except ConfigError:
            raise grid_error from None
    return TransferConfig(
        archs=(profile.model,),
        datasets=(profile.dataset,),
        augment=(profile.augment,),
        seeds=2,
        profile=str(name_or_path),
    )


def from_study(study: optuna.Study) -> Fidelity:
    """The experiment a fidelity grid study was made for, rebuilt from its stored recipe (for
    ``nlfs report --fidelity STUDY``).

    Raises:
        ConfigError: the study is not a fidelity grid.
    """
    from nlfs.config import build

    if study.user_attrs.get("kind") != KIND:
        raise ConfigError(f"study {study.study_name!r} is not a fidelity study (nlfs fidelity)")
    recipe = study.user_attrs["config"]
    anchors = set(ANCHORS)
    return Fidelity(
        recipe["search_study"],
        build(TransferConfig, recipe["target"], where=f"study {study.study_name} target"),
        candidates=sum(label not in anchors for label in recipe["candidates"]),
        seed=int(recipe["seed"]),
        top=int(study.user_attrs.get("top", Fidelity.top)),
        name=study.study_name,
    )
