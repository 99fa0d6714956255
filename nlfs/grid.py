"""Grid studies: Optuna studies whose trials are cells enqueued up front, pulled by workers.

Transfer grids and elimination stages are both "train this loss with this setting and this
seed" many times over. Each cell is one enqueued Optuna trial; its user attributes describe it
(``cell`` id, ``setting`` id, the loss ``spec`` and ``sign``, ``seed`` and display attributes
such as ``loss``/``arch`` or ``stage``/``key``). Settings (a full evaluator profile and the data
split) are kept once in the study user attribute ``settings``, so a worker on another machine
needs nothing but the study. Any number of workers claim waiting cells, preferring the setting
they already have loaded, and record the outcome on the trial:

* ``best_acc``, ``final_acc``, ``fitness``, ``steps``, ``seconds``, ``device``;
* ``failure_kind``: None when the training was ok, else the evaluator's state (``nan``,
  ``diverged``, ...); such a cell is done (its failure is a result) and its trial is FAIL.

A cell is *done* when one of its trials is COMPLETE, or FAIL with a failure kind other than
``interrupted``; *pending* when one is WAITING or RUNNING. Enqueuing only adds cells that are
neither, so re-running a command adds nothing but what is missing, and a cell whose worker died
(recovered as ``interrupted``) is enqueued again.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from nlfs.config import config_hash
from nlfs.errors import ConfigError, NLFSError
from nlfs.results import EvalRequest, EvalResult
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

    ``sign`` is None for a baseline name (built by :func:`nlfs.losses.loss_from_spec`) and +-1
    for an expression (built as an :class:`nlfs.compile.ExpressionLoss`).
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


class CellEvaluator(Protocol):
    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalResult]: ...


EvaluatorFactory = Callable[[Setting, str, "str | None", bool], CellEvaluator]
"""``factory(setting, device, data_dir, download)`` -> an evaluator for that setting."""


class RealEvaluators:
    """The default factory: :class:`nlfs.evaluator.Evaluator`, one per split, re-pointed at
    each new setting's profile (it caches data by dataset and slice, models by architecture, so
    a worker that moves between settings loads each dataset once)."""

    def __init__(self) -> None:
        self._by_split: dict[str, Any] = {}

    def __call__(self, setting: Setting, device: str, data_dir: str | None,
                 download: bool) -> CellEvaluator:
        from nlfs.config import build
        from nlfs.evaluator import Evaluator
        from nlfs.profiles import Profile

        profile = build(Profile, setting.profile, "grid setting")
        evaluator = self._by_split.get(setting.split)
        if evaluator is None:
            evaluator = Evaluator(profile, device=device, data_dir=data_dir, download=download,
                                  split=setting.split)
            self._by_split[setting.split] = evaluator
        else:
            evaluator.profile = profile
            evaluator.data()  # a missing dataset fails here, before the cell counts as run
        return evaluator


def check_names(*, models: Iterable[str] = (), datasets: Iterable[str] = (),
                augments: Iterable[str] = ()) -> None:
    """Fail before any training, listing the known values, on an unknown name.

    Raises:
        ConfigError: an unknown architecture, dataset or augmentation.
    """
    from nlfs.augment import parse_augment
    from nlfs.data import DATASETS
    from nlfs.models import model_names

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


def build_loss(spec: str, sign: float | None):
    """The loss module of a cell: a baseline name, or an expression with its sign."""
    if sign is None:
        from nlfs.losses import loss_from_spec

        return loss_from_spec(spec)
    from nlfs.compile import ExpressionLoss

    return ExpressionLoss(spec, float(sign))


# ---------------------------------------------------------------- cell bookkeeping


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


def progress_counts(study: optuna.Study) -> tuple[int, int, int]:
    """``(done, failed, total)`` over the study's cells."""
    grouped = cell_trials(study.get_trials(deepcopy=False))
    done = failed = 0
    for trials in grouped.values():
        trial = result_trial(trials)
        if trial is not None:
            done += 1
            failed += trial.state is not TrialState.COMPLETE
    return done, failed, len(grouped)


# ---------------------------------------------------------------- the worker


@dataclass(frozen=True)
class CellOutcome:
    """What a worker recorded for one cell (passed to the ``on_cell`` callback)."""

    number: int
    attrs: Mapping[str, Any]
    failure_kind: str | None
    best_acc: float | None
    seconds: float


def _claim(storage, study_id: int, prefer: str | None) -> FrozenTrial | None:
    """Move one WAITING cell to RUNNING, preferring ``prefer``'s setting; None when none wait.

    Uses the storage's compare-and-set on the trial state (as ``Study.ask`` does) so two workers
    never claim the same cell, without ever creating a trial when the queue is empty.
    """
    waiting = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
    waiting.sort(key=lambda t: (t.user_attrs.get("setting") != prefer, t.number))
    for trial in waiting:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return trial
        except UpdateFinishedTrialError:
            continue
    return None


def _finish(storage, trial_id: int, attrs: Mapping[str, Any], ok: bool,
            value: float | None) -> None:
    for key, val in attrs.items():
        storage.set_trial_user_attr(trial_id, key, val)
    if ok:
        storage.set_trial_state_values(trial_id, state=TrialState.COMPLETE, values=[value])
    else:
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)


def _outcome_attrs(result: EvalResult) -> dict[str, Any]:
    ok = result.fitness is not None
    return {
        "best_acc": result.best_acc, "final_acc": result.final_acc, "fitness": result.fitness,
        "steps": result.steps, "seconds": result.seconds, "device": result.device,
        "failure_kind": None if ok else result.state.value, "state": result.state.value,
        "message": result.message or None,
    }


def run_worker(study_name: str, storage: Any = None, *, device: str = "auto",
               data_dir: str | None = None, download: bool = False, recover: bool = True,
               evaluator_factory: EvaluatorFactory | None = None,
               on_cell: Callable[[CellOutcome], None] | None = None,
               max_cells: int | None = None) -> int:
    """Pull and train waiting cells of a grid study until none wait; returns cells run.

    Args:
        study_name: the grid study (``kind`` transfer, eliminate, ...).
        storage: a storage URL or journal path (None: ``runs/<study>.journal``), or an Optuna
            storage object.
        recover: first mark cells of dead workers ``interrupted`` and enqueue them again. Leave
            it on for a worker started alone; a command that already recovered before starting
            several local workers turns it off.
        evaluator_factory: builds the evaluator for a setting (tests inject a fake).
        on_cell: called after each recorded cell.
        max_cells: stop after this many cells (None: until the queue is empty).
    """
    from nlfs.storage import Heartbeat, recover_interrupted, resolve_storage, worker_identity

    if isinstance(storage, str | None):
        storage = resolve_storage(storage, study_name)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise ConfigError(f"no study named {study_name!r} in that storage") from None
    if recover:
        recover_interrupted(study)
        requeue_interrupted(study)
    settings = study.user_attrs.get(SETTINGS_ATTR, {})
    study_id = storage.get_study_id_from_name(study_name)
    factory = evaluator_factory or RealEvaluators()
    current: str | None = None
    evaluator: CellEvaluator | None = None
    count = 0
    while max_cells is None or count < max_cells:
        trial = _claim(storage, study_id, current)
        if trial is None:
            break
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        attrs = trial.user_attrs
        # Lets a later run tell this cell from one whose worker died (nlfs.storage).
        storage.set_trial_user_attr(trial_id, "worker", worker_identity())
        started = time.perf_counter()
        try:
            with Heartbeat(study, trial_id):
                if attrs.get("setting") != current:
                    if attrs.get("setting") not in settings:
                        settings = optuna.load_study(study_name=study_name,
                                                     storage=storage).user_attrs[SETTINGS_ATTR]
                    stored = settings[attrs["setting"]]
                    evaluator = factory(Setting(stored["profile"], stored["split"]), device,
                                        data_dir, download)
                    current = attrs["setting"]
                try:
                    loss = build_loss(attrs["spec"], attrs.get("sign"))
                except (NLFSError, ValueError) as err:
                    outcome = {"failure_kind": "error", "message": f"bad loss: {err}",
                               "seconds": 0.0, "best_acc": None, "final_acc": None,
                               "fitness": None}
                else:
                    name = str(attrs.get("loss", attrs["spec"]))
                    result = evaluator.evaluate([EvalRequest(loss, int(attrs["seed"]), name)])[0]
                    outcome = _outcome_attrs(result)
        except BaseException:
            # Config/data errors and Ctrl-C: the cell is not a result; a re-run repeats it.
            _finish(storage, trial_id, {"failure_kind": INTERRUPTED,
                                        "seconds": time.perf_counter() - started}, False, None)
            raise
        ok = outcome["failure_kind"] is None
        _finish(storage, trial_id, outcome, ok, outcome["best_acc"])
        count += 1
        if on_cell is not None:
            on_cell(CellOutcome(trial.number, attrs, outcome["failure_kind"],
                                outcome["best_acc"], float(outcome["seconds"] or 0.0)))
    return count


def _worker_main(study_name: str, storage: str | None, device: str, data_dir: str | None,
                 download: bool, factory: EvaluatorFactory | None) -> None:
    run_worker(study_name, storage, device=device, data_dir=data_dir, download=download,
               recover=False, evaluator_factory=factory)


def run_local(study_name: str, storage: str | None, *, workers: int = 1, device: str = "auto",
              data_dir: str | None = None, download: bool = False,
              evaluator_factory: EvaluatorFactory | None = None,
              on_progress: Callable[[optuna.Study], None] | None = None,
              poll_s: float = 1.0) -> None:
    """Run the waiting cells with ``workers`` local processes (1: in this process).

    The caller recovers interrupted cells and enqueues first. ``on_progress(study)`` is called
    after each cell (one worker) or every ``poll_s`` seconds (several).

    Raises:
        NLFSError: when a worker process exits with an error (its message is on stderr).
    """
    from nlfs.storage import resolve_storage

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    resolved = resolve_storage(storage, study_name)
    study = optuna.load_study(study_name=study_name, storage=resolved)
    if workers == 1:
        run_worker(study_name, resolved, device=device, data_dir=data_dir, download=download,
                   recover=False, evaluator_factory=evaluator_factory,
                   on_cell=None if on_progress is None else (lambda _: on_progress(study)))
        return
    # spawn, not fork: torch and the journal lock are not fork-safe.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(study_name, storage, device, data_dir,
                                                    download, evaluator_factory))
             for _ in range(workers)]
    for proc in procs:
        proc.start()
    try:
        while any(p.is_alive() for p in procs):
            if on_progress is not None:
                on_progress(study)
            for proc in procs:
                proc.join(timeout=poll_s / len(procs))
    except BaseException:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join()
        raise
    if on_progress is not None:
        on_progress(study)
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise NLFSError(f"{len(bad)} of {workers} workers failed (exit codes {bad}); "
                        "run the command again to resume")
