"""Grid workers: pull waiting jobs of a grid study, train them, record the outcome.

Any number of workers (``--workers K`` local processes, or ``nlfs worker`` anywhere) claim waiting
jobs (:mod:`~nlfs.experiments.jobs`), preferring the setting whose evaluator they already hold,
and record on the trial, in one write, ``best_acc``, ``final_acc``, ``fitness``, ``steps``,
``seconds``, ``device`` and ``failure_kind`` (None when the training was ok, else the evaluator's
state such as ``nan`` or ``diverged``; the trial is then FAIL). Only the evaluator trains.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from nlfs.errors import ConfigError, NLFSError
from nlfs.evaluation.results import EvalRequest, EvalResult
from nlfs.experiments.jobs import (
    SETTINGS_ATTR,
    JobSetting,
    job_id,
    requeue_interrupted,
    settling_trial,
)
from nlfs.storage import (
    INTERRUPTED,
    SURPLUS,
    await_stragglers,
    mark_alive,
    set_trial_intermediate_values,
    set_trial_user_attrs,
)


class JobEvaluator(Protocol):
    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalResult]: ...


JobEvaluatorFactory = Callable[[JobSetting, str, "str | None", bool], JobEvaluator]
"""``factory(setting, device, data_dir, download)`` -> an evaluator for that setting."""


class RealEvaluators:
    """The default factory: :class:`~nlfs.evaluation.Evaluator`, one per split, re-pointed at
    each new setting's profile (it caches data by dataset and slice, models by architecture, so
    a worker that moves between settings loads each dataset once)."""

    def __init__(self) -> None:
        self._by_split: dict[str, Any] = {}

    def __call__(
        self, setting: JobSetting, device: str, data_dir: str | None, download: bool
    ) -> JobEvaluator:
        from nlfs.config import build
        from nlfs.evaluation.evaluator import Evaluator
        from nlfs.evaluation.profiles import Profile

        profile = build(Profile, setting.profile, "grid setting")
        evaluator = self._by_split.get(setting.split)
        if evaluator is None:
            evaluator = Evaluator(
                profile, device=device, data_dir=data_dir, download=download, split=setting.split
            )
            self._by_split[setting.split] = evaluator
        else:
            evaluator.profile = profile
            evaluator.data()  # a missing dataset fails here, before the job counts as run
        return evaluator


def build_loss(spec: str, sign: float | None):
    """The loss module of a job: a baseline name, or an expression with its sign."""
    if sign is None:
        from nlfs.screening import loss_from_spec

        return loss_from_spec(spec)
    from nlfs.losses.compile import ExpressionLoss

    return ExpressionLoss(spec, float(sign))


# ---------------------------------------------------------------- the worker


@dataclass(frozen=True)
class JobOutcome:
    """What a worker recorded for one job (passed to the ``on_job`` callback)."""

    number: int
    attrs: Mapping[str, Any]
    failure_kind: str | None
    best_acc: float | None
    seconds: float


def _claim(storage, study_id: int, prefer: str | None) -> FrozenTrial | None:
    """Move one WAITING job to RUNNING, preferring ``prefer``'s setting; None when none wait.

    Uses the storage's compare-and-set on the trial state (as ``Study.ask`` does) so two workers
    never claim the same job, without ever creating a trial when the queue is empty.
    """
    waiting = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
    waiting.sort(key=lambda t: (t.user_attrs.get("setting") != prefer, t.number))
    for trial in waiting:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        mark_alive(storage, trial_id, name_worker=True)
        if _redundant(storage, study_id, trial):
            # Two workers that recovered the same dead job at once both enqueued it again;
            # only the earliest pending copy runs, so no job is trained (or counted) twice.
            set_trial_user_attrs(storage, trial_id, {"failure_kind": SURPLUS, "state": SURPLUS})
            storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
            continue
        return trial
    return None


def _redundant(storage, study_id: int, claimed: FrozenTrial) -> bool:
    """Whether another trial of ``claimed``'s job settled it or is an earlier pending copy."""
    job = job_id(claimed)
    others = [
        t
        for t in storage.get_all_trials(study_id, deepcopy=False)
        if t.number != claimed.number and job_id(t) == job
    ]
    pending = (TrialState.WAITING, TrialState.RUNNING)
    return settling_trial(others) is not None or any(
        t.state in pending and t.number < claimed.number for t in others
    )


def _finish(
    storage, trial_id: int, attrs: Mapping[str, Any], ok: bool, value: float | None
) -> None:
    """Record the outcome ``attrs`` (one storage write), then end the trial."""
    set_trial_user_attrs(storage, trial_id, attrs)
    if ok:
        storage.set_trial_state_values(trial_id, state=TrialState.COMPLETE, values=[value])
    else:
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)


def _outcome_attrs(result: EvalResult) -> dict[str, Any]:
    ok = result.fitness is not None
    return {
        "best_acc": result.best_acc,
        "final_acc": result.final_acc,
        "fitness": result.fitness,
        "steps": result.steps,
        "seconds": result.seconds,
        "device": result.device,
        "failure_kind": None if ok else result.state.value,
        "state": result.state.value,
        "message": result.message or None,
    }


def run_worker(
    study_name: str,
    storage: Any = None,
    *,
    device: str = "auto",
    data_dir: str | None = None,
    download: bool = False,
    recover: bool = True,
    evaluator_factory: JobEvaluatorFactory | None = None,
    on_job: Callable[[JobOutcome], None] | None = None,
    max_jobs: int | None = None,
) -> int:
    """Pull and train waiting jobs of a grid study until none wait; returns jobs run.

    Args:
        study_name: the grid study (``kind`` transfer, eliminate, ...).
        storage: a storage URL or journal path (None: ``runs/<study>.journal``), or an Optuna
            storage object.
        recover: first mark jobs of dead workers ``interrupted`` and enqueue them again. Leave
            it on for a worker started alone; a command that already recovered before starting
            several local workers turns it off.
        evaluator_factory: builds the evaluator for a setting (tests inject a fake).
        on_job: called after each recorded job.
        max_jobs: stop after this many jobs (None: until the queue is empty).

    Raises:
        ConfigError: no such study in that storage.
    """
    from nlfs.storage import (
        Heartbeat,
        load_existing_study,
        recover_interrupted,
        study_storage,
    )

    study = load_existing_study(study_name, storage)
    storage = study_storage(study)  # claims and outcomes go straight to the storage
    if recover:
        recover_interrupted(study)
        requeue_interrupted(study)
    settings = study.user_attrs.get(SETTINGS_ATTR, {})
    study_id = storage.get_study_id_from_name(study_name)
    factory = evaluator_factory or RealEvaluators()
    current: str | None = None
    evaluator: JobEvaluator | None = None
    count = 0
    while max_jobs is None or count < max_jobs:
        trial = _claim(storage, study_id, current)
        if trial is None:
            # Before leaving, wait for the other workers' jobs: one whose worker died is
            # enqueued again and run here (else it would wait for the next command).
            if await_stragglers(study):
                requeue_interrupted(study)
                continue
            break
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        attrs = trial.user_attrs
        started = time.perf_counter()
        try:
            # The claim named the worker and made the first beat (mark_alive), so the job can
            # always be recovered: by its pid on this host, or once its heartbeat stops.
            with Heartbeat(study, trial_id):
                if attrs.get("setting") != current:
                    if attrs.get("setting") not in settings:  # enqueued after we started
                        settings = study.user_attrs[SETTINGS_ATTR]
                    stored = settings[attrs["setting"]]
                    evaluator = factory(
                        JobSetting(stored["profile"], stored["split"]), device, data_dir, download
                    )
                    current = attrs["setting"]
                try:
                    loss = build_loss(attrs["spec"], attrs.get("sign"))
                except (NLFSError, ValueError) as err:
                    outcome = {
                        "failure_kind": "error",
                        "message": f"bad loss: {err}",
                        "seconds": 0.0,
                        "best_acc": None,
                        "final_acc": None,
                        "fitness": None,
                    }
                else:
                    name = str(attrs.get("loss", attrs["spec"]))
                    result = evaluator.evaluate([EvalRequest(loss, int(attrs["seed"]), name)])[0]
                    outcome = _outcome_attrs(result)
                    # the job's learning curve, as Optuna intermediate values (one write)
                    curve = result.metadata.get("history", ())
                    set_trial_intermediate_values(
                        storage, trial_id, {point["step"]: point["eval_acc"] for point in curve}
                    )
        except BaseException:
            # Config/data errors and Ctrl-C: the job is not a result; a re-run repeats it.
            _finish(
                storage,
                trial_id,
                {"failure_kind": INTERRUPTED, "seconds": time.perf_counter() - started},
                False,
                None,
            )
            raise
        ok = outcome["failure_kind"] is None
        _finish(storage, trial_id, outcome, ok, outcome["best_acc"])
        count += 1
        if on_job is not None:
            on_job(
                JobOutcome(
                    trial.number,
                    attrs,
                    outcome["failure_kind"],
                    outcome["best_acc"],
                    float(outcome["seconds"] or 0.0),
                )
            )
    return count


def _worker_main(
    study_name: str,
    storage: str | None,
    device: str,
    data_dir: str | None,
    download: bool,
    factory: JobEvaluatorFactory | None,
) -> None:
    """One grid worker process (a :func:`nlfs.search.workers.run_processes` target); on Ctrl-C
    :func:`run_worker` marks its running cell interrupted before the process exits."""
    run_worker(
        study_name,
        storage,
        device=device,
        data_dir=data_dir,
        download=download,
        recover=False,
        evaluator_factory=factory,
    )


def run_local(
    study_name: str,
    storage: str | None,
    *,
    workers: int = 1,
    device: str = "auto",
    data_dir: str | None = None,
    download: bool = False,
    evaluator_factory: JobEvaluatorFactory | None = None,
    on_progress: Callable[[optuna.Study], None] | None = None,
    poll_s: float = 1.0,
) -> None:
    """Run the waiting cells with ``workers`` local processes (1: in this process).

    The caller recovers interrupted cells and enqueues first. ``on_progress(study)`` is called
    after each cell (one worker) or every ``poll_s`` seconds (several). Several workers run
    through :func:`nlfs.search.workers.run_processes` (its Ctrl-C policy: running cells are
    marked interrupted, so the next run repeats them).

    Raises:
        NLFSError: when a worker process exits with an error (its message is on stderr).
        KeyboardInterrupt: after Ctrl-C, once the running cells are marked interrupted.
    """
    from nlfs.search.workers import run_processes
    from nlfs.storage import resolve_storage

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    resolved = resolve_storage(storage, study_name)
    study = optuna.load_study(study_name=study_name, storage=resolved)
    if workers == 1:
        if on_progress is not None:
            on_progress(study)
        run_worker(
            study_name,
            resolved,
            device=device,
            data_dir=data_dir,
            download=download,
            recover=False,
            evaluator_factory=evaluator_factory,
            on_job=None if on_progress is None else (lambda _: on_progress(study)),
        )
        return
    run_processes(
        _worker_main,
        (study_name, storage, device, data_dir, download, evaluator_factory),
        workers,
        on_poll=None if on_progress is None else (lambda: on_progress(study)),
        poll_s=poll_s,
    )
