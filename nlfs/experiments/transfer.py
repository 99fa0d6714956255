"""Transfer grids: losses against baselines across architectures, datasets and augmentations.

The full grid (loss x arch x dataset x augment x seed) is one Optuna study of ``kind`` "transfer"
whose trials are its jobs (:mod:`~nlfs.experiments.grid`); each job trains one loss from scratch
and scores it on the *test* split. Seeds are paired: the jobs of one setting and seed differ only
in the loss, and the evaluator derives initial weights and data order from the seed alone. The
study's ``config_hash`` covers the training recipe, not the axes, so a grid can be extended later
(another loss, more seeds) and only the new jobs run.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from nlfs.config import build, config_hash, resolve_config
from nlfs.errors import ConfigError
from nlfs.evaluation.profiles import profile_data
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
from nlfs.losses.baselines import ALIASES
from nlfs.storage import load_existing_study

KIND = "transfer"
LABELS = {"cross_entropy": "ce"}
"""Cross-entropy is shown as ``ce`` whichever way it was typed, so reports find the baseline."""
TRAIN_IMAGES = {
    "fashion-mnist": 60000,
    "mnist": 60000,
    "cifar10": 50000,
    "cifar100": 50000,
    "svhn": 73257,
}
"""Training-set sizes, to turn ``--epochs`` into steps without loading the data."""


@dataclass(frozen=True)
class TransferConfig:
    """A transfer grid (``configs/transfer_*.toml``; command-line options override it).

    Attributes:
        losses: loss specs: baseline names (``ce``, ``baikal``, ...), canonical expressions,
            or ``STUDY:TRIAL`` / ``STUDY:best`` for a trial of a search or elimination study.
        archs, datasets, augment: the grid's other axes (model, dataset and augmentation names
            of the evaluator; an augmentation may combine names with ``+``).
        seeds: seeds per setting, ``first_seed`` to ``first_seed + seeds - 1``, paired.
        profile: the evaluator profile every job starts from (name, or a path relative to
            this file).
        steps: optimiser steps per job (None: the profile's); ``epochs`` instead sets
            steps = ceil(epochs * training images / batch size).
        workers: local worker processes.
        overrides: profile fields replaced in every job (e.g. ``test_size``, ``eval_every``,
            ``time_limit_s``); unknown fields fail when the grid is planned.
    """

    losses: tuple[str, ...] = ("ce", "baikal", "focal", "poly1")
    archs: tuple[str, ...] = ("small_cnn",)
    datasets: tuple[str, ...] = ("fashion-mnist",)
    augment: tuple[str, ...] = ("none",)
    seeds: int = 3
    first_seed: int = 0
    profile: str = "quick"
    steps: int | None = None
    epochs: float | None = None
    workers: int = 1
    overrides: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for axis in ("losses", "archs", "datasets", "augment"):
            values = getattr(self, axis)
            if not values:
                raise ConfigError(f"transfer grid: {axis} is empty")
            if len(set(values)) != len(values):
                raise ConfigError(f"transfer grid: {axis} repeats a value: {', '.join(values)}")
        if self.seeds < 1:
            raise ConfigError(f"transfer grid: seeds must be at least 1, got {self.seeds}")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("transfer grid: give steps or epochs, not both")
        if (self.steps is not None and self.steps < 1) or (
            self.epochs is not None and self.epochs <= 0
        ):
            raise ConfigError("transfer grid: steps and epochs must be positive")


def load_transfer_config(name_or_path: str | os.PathLike) -> TransferConfig:
    """Load a transfer grid by name (``transfer_cpu`` -> ``configs/transfer_cpu.toml``) or path.

    A relative ``profile`` path is taken relative to the grid file.
    """
    path = resolve_config(name_or_path)
    table = load_grid_table(path)
    return build(TransferConfig, table, where=f"transfer config {path.name}")


@dataclass(frozen=True)
class LossRef:
    """A loss of the grid: its display ``label``, what to build, and the sign of an expression."""

    label: str
    spec: str
    sign: float | None = None


def _load_source(study_name: str, storage: str | None) -> optuna.Study:
    """The study named in ``STUDY:TRIAL``: in ``storage`` if given, else (or then) its default
    journal ``runs/STUDY.journal``."""
    if storage is not None:
        try:
            return load_existing_study(study_name, storage)
        except ConfigError:
            pass
    return load_existing_study(study_name, None)


def _trial_loss(spec: str, storage: Any) -> LossRef:
    study_name, _, which = spec.rpartition(":")
    study = _load_source(study_name, storage)
    ok = [
        t for t in study.get_trials(deepcopy=False) if t.state is optuna.trial.TrialState.COMPLETE
    ]
    if which == "best":
        if not ok:
            raise ConfigError(f"study {study_name!r} has no completed trial for {spec!r}")
        trial = max(ok, key=lambda t: t.value)
    else:
        try:
            number = int(which)
        except ValueError:
            raise ConfigError(f"loss {spec!r}: after ':' give a trial number or 'best'") from None
        trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
        if trial is None:
            raise ConfigError(f"study {study_name!r} has no trial {number}")
    expression = trial.user_attrs.get("expression") or trial.user_attrs.get("candidate")
    if not expression:
        raise ConfigError(f"trial {trial.number} of study {study_name!r} has no expression")
    sign = float(trial.user_attrs.get("sign", 1.0))
    return LossRef(f"{study_name}:{trial.number}", expression, sign)


def resolve_losses(specs: Sequence[str], storage: Any = None) -> list[LossRef]:
    """Turn loss specs into :class:`LossRef` objects, checking that each one builds.

    ``STUDY:TRIAL`` is looked up in ``storage`` first, then in ``runs/STUDY.journal``.

    Raises:
        ConfigError: an unknown baseline, a bad expression, a missing study or trial, or two
            specs naming the same loss.
    """
    from nlfs.screening import loss_from_spec

    refs = []
    for raw in specs:
        spec = raw.strip()
        if ":" in spec and "(" not in spec:
            ref = _trial_loss(spec, storage)
        else:
            name = ALIASES.get(spec, spec)  # one label per loss however it was typed
            try:
                loss_from_spec(name)
            except ConfigError:
                raise
            except ValueError as err:
                raise ConfigError(f"loss {spec!r}: {err}") from None
            ref = LossRef(LABELS.get(name, name), name)
        refs.append(ref)
    labels = [r.label for r in refs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"the losses name one loss twice: {', '.join(labels)}")
    return refs


def check_axes(config: TransferConfig) -> None:
    """Fail early, naming the known values, on an unknown architecture, dataset or augment."""
    check_names(models=config.archs, datasets=config.datasets, augments=config.augment)


def base_profile(config: TransferConfig):
    """The grid's profile with ``config.overrides`` applied and validated."""
    from nlfs.evaluation.profiles import Profile, load_profile

    base = load_profile(config.profile)
    if not config.overrides:
        return base
    return build(
        Profile, {**dataclasses.asdict(base), **config.overrides}, where="transfer config overrides"
    )


def job_profile(base, config: TransferConfig, arch: str, dataset: str, augment: str):
    """The profile of one setting: ``base`` with the setting's model, data, augment, steps."""
    profile = dataclasses.replace(
        base,
        model=arch,
        dataset=dataset,
        augment=augment,
        name=f"{base.name}/{arch}/{dataset}/{augment}",
    )
    if config.epochs is not None:
        images = profile.train_size or TRAIN_IMAGES[dataset]
        return with_steps(profile, math.ceil(config.epochs * images / profile.batch_size))
    if config.steps is not None:
        return with_steps(profile, config.steps)
    return profile


def plan_jobs(config: TransferConfig, losses: Sequence[LossRef], base) -> list[Job]:
    """Every job of the grid, grouped by setting (so a worker reuses its loaded data)."""
    jobs = []
    for arch in config.archs:
        for dataset in config.datasets:
            for augment in config.augment:
                profile = job_profile(base, config, arch, dataset, augment)
                setting = JobSetting(profile_data(profile), split="test")
                for seed in range(config.first_seed, config.first_seed + config.seeds):
                    for loss in losses:
                        attrs = {
                            "loss": loss.label,
                            "arch": arch,
                            "dataset": dataset,
                            "augment": augment,
                        }
                        jobs.append(
                            Job(
                                f"{loss.label}|{arch}|{dataset}|{augment}|{seed}",
                                setting,
                                loss.spec,
                                seed,
                                loss.sign,
                                attrs,
                            )
                        )
    return jobs


def prepare(
    study_name: str,
    storage,
    config: TransferConfig,
    losses: Sequence[LossRef],
    *,
    recover: bool = True,
) -> tuple[optuna.Study, int, int]:
    """Open (or resume) the transfer study and enqueue the missing jobs.

    Returns:
        The study, the number of jobs in this grid, and how many of them are still to run
        (enqueued now, or waiting from an earlier run, or re-queued after an interruption).
    """
    from nlfs.storage import open_study, recover_interrupted

    base = base_profile(config)
    recipe = as_stored(
        {"profile": profile_data(base), "steps": config.steps, "epochs": config.epochs}
    )
    grid = as_stored(
        {**dataclasses.asdict(config), "losses": [dataclasses.asdict(r) for r in losses]}
    )
    study = open_study(
        study_name,
        storage,
        attrs={"kind": KIND, "config": recipe, "config_hash": config_hash(recipe), "grid": grid},
    )
    if recover:
        recover_interrupted(study)
        requeue_interrupted(study)
    jobs = plan_jobs(config, losses, base)
    enqueue_jobs(study, jobs)
    done = job_results(study)
    return study, len(jobs), sum(j.id not in done for j in jobs)


RESULT_KEYS = (
    "loss",
    "arch",
    "dataset",
    "augment",
    "seed",
    "best_acc",
    "final_acc",
    "seconds",
    "failure_kind",
)


def results(study: optuna.Study) -> list[dict[str, Any]]:
    """One record per settled job (the re-run of an interrupted job counts once)."""
    rows = []
    for trial in sorted(job_results(study).values(), key=lambda t: t.number):
        rows.append({k: trial.user_attrs.get(k) for k in RESULT_KEYS})
    return rows


def summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of final test accuracy per (setting, loss), ok runs only.

    Final, not best: picking the best epoch on the test set would be selection on test data.
    """
    groups: dict[tuple, list] = {}
    settings: dict[tuple, int] = {}
    losses: dict[str, int] = {}
    for row in rows:
        setting = (row["arch"], row["dataset"], row["augment"])
        settings.setdefault(setting, len(settings))
        losses.setdefault(row["loss"], len(losses))
        groups.setdefault((*setting, row["loss"]), []).append(row)
    # Rows by setting, then loss, each in order of first appearance (a grid extended with a
    # new loss later still lists it with its settings).
    order = sorted(groups, key=lambda k: (settings[k[:3]], losses[k[3]]))
    out = []
    for arch, dataset, augment, loss in order:
        members = groups[(arch, dataset, augment, loss)]
        accs = [
            r["final_acc"]
            for r in members
            if r["failure_kind"] is None and r["final_acc"] is not None
        ]
        mean = sum(accs) / len(accs) if accs else None
        std = (
            math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1))
            if len(accs) > 1
            else None
        )
        out.append(
            {
                "arch": arch,
                "dataset": dataset,
                "augment": augment,
                "loss": loss,
                "runs": len(members),
                "failed": len(members) - len(accs),
                "mean": mean,
                "std": std,
            }
        )
    return out
