"""Jobs of grid studies: what one is, which trial settles it, and enqueuing the missing ones.

A grid study (transfer grids, elimination stages) is an Optuna study whose trials are jobs
enqueued up front: "train loss ``spec`` (signed by ``sign``) with setting ``setting`` and
``seed``". A job's user attributes describe it (``job`` id, ``setting`` id, ``spec``, ``sign``,
``seed`` and display attributes such as ``loss``/``arch`` or ``stage``/``key``); the settings (a
full evaluator profile as plain data and the split to score on) are kept once in the study user
attribute ``settings``, so a worker anywhere needs nothing but the study.

A job is *settled* by a trial that holds its result (:func:`settling_trial`: a COMPLETE trial, or
a training failure); *pending* while one is WAITING or RUNNING. Enqueuing adds only jobs that are
neither, so re-running a command adds only what is missing, and a job whose worker died
(recovered as ``interrupted``) is enqueued again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nlfs.config import config_hash
from nlfs.errors import ConfigError
from nlfs.storage import NOT_COUNTED

JOB_ATTR = "job"
"""Trial user attribute holding the job id."""
_LEGACY_JOB_ATTR = "cell"
"""What studies written before the rename call the job id (read, never written)."""
SETTINGS_ATTR = "settings"
OUTCOME_KEYS = (
    "best_acc",
    "final_acc",
    "fitness",
    "steps",
    "seconds",
    "device",
    "failure_kind",
    "message",
    "state",
    "worker",
)
"""Trial user attributes a worker writes; everything else on a job's trial describes the job."""

_PENDING = (TrialState.WAITING, TrialState.RUNNING)


@dataclass(frozen=True)
class JobSetting:
    """How to train: a full evaluator profile (as plain data) and the split to score on."""

    profile: Mapping[str, Any]
    split: str = "val"

    @property
    def id(self) -> str:
        return config_hash({"profile": dict(self.profile), "split": self.split})

    def to_attr(self) -> dict[str, Any]:
        return {
            "profile": json.loads(json.dumps(dict(self.profile), default=list)),
            "split": self.split,
        }


@dataclass(frozen=True)
class Job:
    """One unit of work: train loss ``spec`` (signed by ``sign`` when an expression) with a seed.

    ``sign`` is None for a baseline name (built by :func:`nlfs.screening.loss_from_spec`) and +-1
    for an expression (built as an :class:`nlfs.losses.compile.ExpressionLoss`).
    """

    id: str
    setting: JobSetting
    spec: str
    seed: int
    sign: float | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def user_attrs(self) -> dict[str, Any]:
        return {
            **self.attrs,
            JOB_ATTR: self.id,
            "setting": self.setting.id,
            "spec": self.spec,
            "sign": self.sign,
            "seed": self.seed,
        }


def check_names(
    *, models: Iterable[str] = (), datasets: Iterable[str] = (), augments: Iterable[str] = ()
) -> None:
    """Fail before any training, listing the known values, on an unknown name.

    Raises:
        ConfigError: an unknown architecture, dataset or augmentation.
    """
    from nlfs.evaluation.augment import parse_augment
    from nlfs.evaluation.data import DATASETS
    from nlfs.evaluation.models import model_names

    known = model_names()
    for model in models:
        if model not in known:
            raise ConfigError(f"unknown architecture {model!r}; known: {', '.join(known)}")
    for dataset in datasets:
        if dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    for augment in augments:
        parse_augment(augment)


def with_steps(profile, steps: int):
    """``profile`` (a dataclass) trained ``steps`` steps, warm-up and give-up point scaled alike."""
    if steps == profile.steps:
        return profile
    scale = steps / profile.steps
    give_up = profile.give_up_after
    return dataclasses.replace(
        profile,
        steps=steps,
        warmup_steps=round(profile.warmup_steps * scale),
        eval_every=min(profile.eval_every, steps),
        give_up_after=None if give_up is None else max(1, round(give_up * scale)),
    )


def as_stored(data: Any) -> Any:
    """``data`` as it reads back from a study attribute (tuples become lists), so a stored
    config compares equal to the same config built now."""
    return json.loads(json.dumps(data, default=str))


def load_grid_table(path) -> dict[str, Any]:
    """Read a grid or protocol TOML file; a relative ``profile`` path is made relative to it
    (so a file can name a profile beside it, whatever the working directory)."""
    from pathlib import Path

    from nlfs.config import load_toml

    table = dict(load_toml(path))
    profile = table.get("profile")
    if isinstance(profile, str) and profile.endswith(".toml") and not Path(profile).is_absolute():
        table["profile"] = str(Path(path).parent / profile)
    return table


# ---------------------------------------------------------------- bookkeeping


def job_id(trial: FrozenTrial) -> str | None:
    """The id of the job ``trial`` ran, or None for a trial that is no grid job."""
    attrs = trial.user_attrs
    return attrs.get(JOB_ATTR, attrs.get(_LEGACY_JOB_ATTR))


def job_trials(trials: Iterable[FrozenTrial]) -> dict[str, list[FrozenTrial]]:
    """Trials grouped by job id, in trial order (trials without a job id are ignored)."""
    grouped: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        job = job_id(trial)
        if job is not None:
            grouped.setdefault(job, []).append(trial)
    return grouped


def _failure(trial: FrozenTrial) -> bool:
    """A FAIL trial whose training failed (a result), not one whose work was never done."""
    kind = trial.user_attrs.get("failure_kind")
    return trial.state is TrialState.FAIL and bool(kind) and kind not in NOT_COUNTED


def settling_trial(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The trial that settles a job, given the job's trials in trial order; None if none does.

    The rule, the one every reader of grid studies uses: a job is settled by a COMPLETE trial,
    else by a FAIL trial with a real failure kind (a training failure such as ``nan`` or
    ``error`` is a result). A FAIL trial marked ``interrupted`` or ``surplus``, or with no
    failure kind, is work that was never done and settles nothing (the job is enqueued again).
    A COMPLETE trial wins over any failed one, whatever their order; among several trials of the
    same kind (two workers racing on one job) the latest wins.
    """
    for settles in (lambda t: t.state is TrialState.COMPLETE, _failure):
        chosen = [t for t in trials if settles(t)]
        if chosen:
            return max(chosen, key=lambda t: t.number)
    return None


def job_results(study: optuna.Study) -> dict[str, FrozenTrial]:
    """Each settled job's settling trial, by job id (one per job even after re-runs)."""
    results = {}
    for job, trials in job_trials(study.get_trials(deepcopy=False)).items():
        trial = settling_trial(trials)
        if trial is not None:
            results[job] = trial
    return results


def _taken(trials: Sequence[FrozenTrial]) -> bool:
    """Whether a job needs no new trial: it is settled, or one of its trials is pending."""
    return settling_trial(trials) is not None or any(t.state in _PENDING for t in trials)


def register_settings(study: optuna.Study, settings: Iterable[JobSetting]) -> None:
    """Store the settings the jobs refer to (merged with those already in the study)."""
    stored = dict(study.user_attrs.get(SETTINGS_ATTR, {}))
    new = {s.id: s.to_attr() for s in settings}
    if any(k not in stored for k in new):
        stored.update(new)
        study.set_user_attr(SETTINGS_ATTR, stored)


def enqueue_jobs(study: optuna.Study, jobs: Sequence[Job]) -> int:
    """Enqueue the jobs that are neither settled nor pending; returns how many were added.

    Idempotent: a second call with the same jobs adds nothing. Not safe against two commands
    enqueueing the same grid at the same instant (Optuna has no conditional insert); workers
    joining with ``nlfs worker`` never enqueue, so only the command that owns the grid does.
    """
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(f"the grid names some jobs twice: {', '.join(dupes[:5])}")
    register_settings(study, {j.setting.id: j.setting for j in jobs}.values())
    existing = job_trials(study.get_trials(deepcopy=False))
    added = 0
    for job in jobs:
        if not _taken(existing.get(job.id, [])):
            study.enqueue_trial({}, user_attrs=job.user_attrs())
            added += 1
    return added


def requeue_interrupted(study: optuna.Study) -> int:
    """Enqueue again every job whose trials all ended interrupted (or failed without a kind).

    Works from the trials alone, so any worker can do it without knowing the grid.
    """
    added = 0
    for trials in job_trials(study.get_trials(deepcopy=False)).values():
        if not _taken(trials):
            attrs = {
                k: v
                for k, v in trials[-1].user_attrs.items()
                if k not in OUTCOME_KEYS and k != _LEGACY_JOB_ATTR
            }
            study.enqueue_trial({}, user_attrs={**attrs, JOB_ATTR: job_id(trials[-1])})
            added += 1
    return added


def progress_counts(
    study: optuna.Study, where: Mapping[str, Any] | None = None
) -> tuple[int, int, int]:
    """``(settled, failed, total)`` over the study's jobs (those whose attributes match
    ``where``, e.g. ``{"stage": 1}``)."""
    grouped = job_trials(study.get_trials(deepcopy=False))
    where = where or {}
    done = failed = 0
    grouped = {
        job: trials
        for job, trials in grouped.items()
        if all(trials[0].user_attrs.get(k) == v for k, v in where.items())
    }
    for trials in grouped.values():
        trial = settling_trial(trials)
        if trial is not None:
            done += 1
            failed += trial.state is not TrialState.COMPLETE
    return done, failed, len(grouped)
