"""Cells of grid studies: what one is, when it is done, and enqueuing the missing ones.

A grid study (transfer grids, elimination stages) is an Optuna study whose trials are cells
enqueued up front: "train loss ``spec`` (signed by ``sign``) with setting ``setting`` and
``seed``". A cell's user attributes describe it (``cell`` id, ``setting`` id, ``spec``, ``sign``,
``seed`` and display attributes such as ``loss``/``arch`` or ``stage``/``key``); the settings (a
full evaluator profile as plain data and the split to score on) are kept once in the study user
attribute ``settings``, so a worker anywhere needs nothing but the study.

A cell is *done* when one of its trials is COMPLETE, or FAIL with a failure kind other than
``interrupted`` (a training failure is a result); *pending* when one is WAITING or RUNNING.
Enqueuing adds only cells that are neither, so re-running a command adds only what is missing,
and a cell whose worker died (recovered as ``interrupted``) is enqueued again.
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
from nlfs.storage import INTERRUPTED

SETTINGS_ATTR = "settings"
OUTCOME_KEYS = (
    "best_acc", "final_acc", "fitness", "steps", "seconds", "device", "failure_kind", "message",
    "state", "worker",
)
"""Trial user attributes a worker writes; everything else on a cell trial describes the cell."""

_PENDING = (TrialState.WAITING, TrialState.RUNNING)


@dataclass(frozen=True)
class Setting:
    """How to train: a full evaluator profile (as plain data) and the split to score on."""

    profile: Mapping[str, Any]
    split: str = "val"

    @property
    def id(self) -> str:
        return config_hash({"profile": dict(self.profile), "split": self.split})

    def to_attr(self) -> dict[str, Any]:
        return {"profile": json.loads(json.dumps(dict(self.profile), default=list)),
                "split": self.split}


@dataclass(frozen=True)
class Cell:
    """One unit of work: train loss ``spec`` (signed by ``sign`` when an expression) with a seed.

    ``sign`` is None for a baseline name (built by :func:`nlfs.screening.loss_from_spec`) and +-1
    for an expression (built as an :class:`nlfs.losses.compile.ExpressionLoss`).
    """

    id: str
    setting: Setting
    spec: str
    seed: int
    sign: float | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def user_attrs(self) -> dict[str, Any]:
        return {**self.attrs, "cell": self.id, "setting": self.setting.id, "spec": self.spec,
                "sign": self.sign, "seed": self.seed}


def check_names(*, models: Iterable[str] = (), datasets: Iterable[str] = (),
                augments: Iterable[str] = ()) -> None:
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
        profile, steps=steps, warmup_steps=round(profile.warmup_steps * scale),
        eval_every=min(profile.eval_every, steps),
        give_up_after=None if give_up is None else max(1, round(give_up * scale)))


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


def load_existing_study(study_name: str, storage: Any) -> optuna.Study:
    """Load a study that must already exist, without creating a journal file for a typo.

    ``storage`` is a URL or journal path (None: ``runs/<study>.journal``) or a storage object.

    Raises:
        ConfigError: no such study (for the default storage: no ``runs/<study>.journal``).
    """
    from pathlib import Path

    from nlfs.storage import resolve_storage

    if storage is None and not (Path("runs") / f"{study_name}.journal").is_file():
        raise ConfigError(f"no study named {study_name!r}: runs/{study_name}.journal does not "
                          "exist (pass --storage where it was stored)")
    if storage is None or isinstance(storage, str):
        storage = resolve_storage(storage, study_name)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        from nlfs.storage import storage_label

        raise ConfigError(f"no study named {study_name!r} in {storage_label(storage)}") from None


# ---------------------------------------------------------------- bookkeeping


def cell_trials(trials: Iterable[FrozenTrial]) -> dict[str, list[FrozenTrial]]:
    """Trials grouped by cell id, in trial order (trials without a cell id are ignored)."""
    grouped: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        cell = trial.user_attrs.get("cell")
        if cell is not None:
            grouped.setdefault(cell, []).append(trial)
    return grouped


def is_done(trial: FrozenTrial) -> bool:
    """Whether this trial settles its cell (a result, successful or a training failure)."""
    if trial.state is TrialState.COMPLETE:
        return True
    kind = trial.user_attrs.get("failure_kind")
    return trial.state is TrialState.FAIL and kind is not None and kind != INTERRUPTED


def result_trial(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The trial holding a cell's result: the last done one, or None."""
    done = [t for t in trials if is_done(t)]
    return done[-1] if done else None


def cell_results(study: optuna.Study) -> dict[str, FrozenTrial]:
    """Each done cell's result trial, by cell id (one per cell even after re-runs)."""
    results = {}
    for cell, trials in cell_trials(study.get_trials(deepcopy=False)).items():
        trial = result_trial(trials)
        if trial is not None:
            results[cell] = trial
    return results


def _settled(trials: Sequence[FrozenTrial]) -> bool:
    return any(is_done(t) or t.state in _PENDING for t in trials)


def register_settings(study: optuna.Study, settings: Iterable[Setting]) -> None:
    """Store the settings the cells refer to (merged with those already in the study)."""
    stored = dict(study.user_attrs.get(SETTINGS_ATTR, {}))
    new = {s.id: s.to_attr() for s in settings}
    if any(k not in stored for k in new):
        stored.update(new)
        study.set_user_attr(SETTINGS_ATTR, stored)


def enqueue_cells(study: optuna.Study, cells: Sequence[Cell]) -> int:
    """Enqueue the cells that are neither done nor pending; returns how many were added.

    Idempotent: a second call with the same cells adds nothing. Not safe against two commands
    enqueueing the same grid at the same instant (Optuna has no conditional insert); workers
    joining with ``nlfs worker`` never enqueue, so only the command that owns the grid does.
    """
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(f"the grid names some cells twice: {', '.join(dupes[:5])}")
    register_settings(study, {c.setting.id: c.setting for c in cells}.values())
    existing = cell_trials(study.get_trials(deepcopy=False))
    added = 0
    for cell in cells:
        if not _settled(existing.get(cell.id, [])):
            study.enqueue_trial({}, user_attrs=cell.user_attrs())
            added += 1
    return added


def requeue_interrupted(study: optuna.Study) -> int:
    """Enqueue again every cell whose trials all ended interrupted (or failed without a kind).

    Works from the trials alone, so any worker can do it without knowing the grid.
    """
    added = 0
    for trials in cell_trials(study.get_trials(deepcopy=False)).values():
        if not _settled(trials):
            attrs = {k: v for k, v in trials[-1].user_attrs.items() if k not in OUTCOME_KEYS}
            study.enqueue_trial({}, user_attrs=attrs)
            added += 1
    return added


def progress_counts(study: optuna.Study,
                    where: Mapping[str, Any] | None = None) -> tuple[int, int, int]:
    """``(done, failed, total)`` over the study's cells (those whose attributes match ``where``,
    e.g. ``{"stage": 1}``)."""
    grouped = cell_trials(study.get_trials(deepcopy=False))
    where = where or {}
    done = failed = 0
    grouped = {cell: trials for cell, trials in grouped.items()
               if all(trials[0].user_attrs.get(k) == v for k, v in where.items())}
    for trials in grouped.values():
        trial = result_trial(trials)
        if trial is not None:
            done += 1
            failed += trial.state is not TrialState.COMPLETE
    return done, failed, len(grouped)
