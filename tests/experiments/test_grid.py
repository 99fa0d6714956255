"""Grid studies: enqueued jobs run exactly once by any number of workers, and resume."""

from __future__ import annotations

import subprocess
import sys
import threading

import optuna
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from nlfs.evaluation.results import EvalResult, State
from nlfs.experiments.grid import run_local, run_worker
from nlfs.experiments.jobs import (
    Job,
    JobSetting,
    enqueue_jobs,
    job_results,
    job_trials,
    progress_counts,
    requeue_interrupted,
    settling_trial,
)
from nlfs.storage import open_study, resolve_storage

EXPRESSIONS = ("mul(y, log(p))", "mul(y, sub(p, 1))", "neg(mul(y, p))")


class FakeEvaluator:
    """Scores a loss by its value on fixed logits: deterministic, instant, loss-dependent."""

    def __init__(self, setting: JobSetting, fail_on: str | None = None) -> None:
        self.setting = setting
        self.fail_on = fail_on

    def evaluate(self, requests):
        out = []
        for req in requests:
            gen = torch.Generator().manual_seed(req.seed)
            logits = torch.randn(8, 10, generator=gen)
            target = torch.randint(0, 10, (8,), generator=gen)
            value = float(req.loss(logits, target))
            acc = abs(value) % 1.0
            if self.fail_on and self.fail_on in req.loss.expression:
                out.append(EvalResult(State.NAN, None, None, 3, 0.01, "fake", "cpu", "nan"))
            else:
                curve = [{"step": 5, "eval_acc": acc / 2}, {"step": 10, "eval_acc": acc}]
                out.append(
                    EvalResult(
                        State.OK, acc, acc / 2, 10, 0.01, "fake", "cpu", metadata={"history": curve}
                    )
                )
        return out


class CountingFactory:
    """Evaluator factory that counts how many evaluators (data loads) it built."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.built = 0
        self.fail_on = fail_on

    def __call__(self, setting, device, data_dir, download):
        self.built += 1
        return FakeEvaluator(setting, self.fail_on)


def fake_factory(setting, device, data_dir, download):
    """Module-level (picklable) factory for spawned worker processes."""
    return FakeEvaluator(setting)


def make_jobs(settings=2, seeds=2) -> list[Job]:
    jobs = []
    for s in range(settings):
        setting = JobSetting({"name": f"s{s}", "steps": 10 + s}, split="val")
        for seed in range(seeds):
            for i, expr in enumerate(EXPRESSIONS):
                jobs.append(
                    Job(
                        f"l{i}|s{s}|{seed}",
                        setting,
                        expr,
                        seed,
                        1.0,
                        {"loss": f"l{i}", "arch": f"s{s}"},
                    )
                )
    return jobs


@pytest.fixture
def grid(tmp_path):
    path = str(tmp_path / "grid.journal")
    storage = resolve_storage(path, "g")
    study = open_study("g", storage, attrs={"kind": "test"})
    return path, storage, study


def _by_state(study):
    trials = study.get_trials(deepcopy=False)
    return {state: sum(t.state is state for t in trials) for state in TrialState}


def test_enqueue_is_idempotent(grid):
    """Enqueuing the same grid twice adds nothing the second time."""
    _, _, study = grid
    jobs = make_jobs()
    assert enqueue_jobs(study, jobs) == len(jobs)
    assert enqueue_jobs(study, jobs) == 0
    assert len(study.get_trials()) == len(jobs)


def test_duplicate_job_ids_are_refused(grid):
    from nlfs.errors import ConfigError

    _, _, study = grid
    job = make_jobs(1, 1)[0]
    with pytest.raises(ConfigError, match="twice"):
        enqueue_jobs(study, [job, job])


def test_one_worker_runs_every_job_once_and_reuses_each_setting(grid):
    """One worker finishes all jobs, building one evaluator per setting (data loaded once)."""
    path, _, study = grid
    jobs = make_jobs(settings=2)
    enqueue_jobs(study, jobs)
    factory = CountingFactory()
    assert run_worker("g", path, recover=False, evaluator_factory=factory) == len(jobs)
    assert factory.built == 2
    results = job_results(study)
    assert sorted(results) == sorted(j.id for j in jobs)
    assert all(t.state is TrialState.COMPLETE for t in results.values())
    trial = results["l0|s0|0"]
    assert trial.value == trial.user_attrs["best_acc"]
    assert trial.user_attrs["failure_kind"] is None
    assert {"final_acc", "seconds", "device", "seed"} <= set(trial.user_attrs)
    assert enqueue_jobs(study, jobs) == 0  # done jobs are not enqueued again


def test_rerun_after_partial_run_finishes_only_the_rest(grid):
    """Stopping after k jobs and running again completes the grid with no job run twice."""
    path, _, study = grid
    jobs = make_jobs()
    enqueue_jobs(study, jobs)
    assert run_worker("g", path, evaluator_factory=CountingFactory(), max_jobs=4) == 4
    assert enqueue_jobs(study, jobs) == 0  # the rest are still waiting
    assert run_worker("g", path, evaluator_factory=CountingFactory()) == len(jobs) - 4
    assert _by_state(study)[TrialState.COMPLETE] == len(jobs)


def test_training_failures_are_results_not_retried(grid):
    """A job whose training fails is done (FAIL with its kind), never enqueued again."""
    path, _, study = grid
    jobs = make_jobs(settings=1, seeds=1)
    enqueue_jobs(study, jobs)
    run_worker("g", path, evaluator_factory=CountingFactory(fail_on="neg"))
    failed = [t for t in study.get_trials() if t.state is TrialState.FAIL]
    assert [t.user_attrs["failure_kind"] for t in failed] == ["nan"]
    assert failed[0].user_attrs["best_acc"] is None
    assert enqueue_jobs(study, jobs) == 0
    assert requeue_interrupted(study) == 0
    assert progress_counts(study) == (3, 1, 3)


def test_interrupted_job_is_run_again(grid):
    """A job left RUNNING by a dead worker is failed as interrupted and trained again."""
    path, storage, study = grid
    jobs = make_jobs(settings=1, seeds=1)
    enqueue_jobs(study, jobs)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = study.ask()  # claims the first waiting job, like a worker would
    trial.set_user_attr(
        "worker", {"host": __import__("socket").gethostname(), "pid": dead.pid, "token": "gone"}
    )
    assert run_worker("g", path, evaluator_factory=CountingFactory()) == len(jobs)
    interrupted = [t for t in study.get_trials() if t.state is TrialState.FAIL]
    assert [t.number for t in interrupted] == [trial.number]
    assert interrupted[0].user_attrs["failure_kind"] == "interrupted"
    results = job_results(study)
    assert len(results) == len(jobs)
    assert results[trial.user_attrs["job"]].number != trial.number


def test_crash_inside_a_job_marks_it_interrupted(grid):
    """An exception while training (e.g. Ctrl-C) leaves the job to be redone, not lost."""
    path, _, study = grid
    jobs = make_jobs(settings=1, seeds=1)
    enqueue_jobs(study, jobs)

    def broken(setting, device, data_dir, download):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_worker("g", path, evaluator_factory=broken)
    first = study.get_trials()[0]
    assert first.state is TrialState.FAIL and first.user_attrs["failure_kind"] == "interrupted"
    assert requeue_interrupted(study) == 1
    assert run_worker("g", path, evaluator_factory=CountingFactory()) == len(jobs)
    assert len(job_results(study)) == len(jobs)


def test_two_workers_share_the_grid_without_duplicates(grid):
    """Two workers with their own storage handles claim every job exactly once."""
    path, _, study = grid
    jobs = make_jobs(settings=2, seeds=3)
    enqueue_jobs(study, jobs)
    counts = []

    def work() -> None:
        counts.append(
            run_worker(
                "g", resolve_storage(path, "g"), recover=False, evaluator_factory=CountingFactory()
            )
        )

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trials = study.get_trials()
    assert sum(counts) == len(jobs) == len(trials)
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert sorted(t.user_attrs["job"] for t in trials) == sorted(j.id for j in jobs)
    assert progress_counts(study) == (len(jobs), 0, len(jobs))


def test_local_worker_processes_finish_the_grid(grid):
    """``run_local`` with two processes (the --workers path) completes the grid once."""
    path, _, study = grid
    jobs = make_jobs(settings=1, seeds=1)
    enqueue_jobs(study, jobs)
    seen = []
    run_local(
        "g",
        path,
        workers=2,
        evaluator_factory=fake_factory,
        on_progress=lambda s: seen.append(progress_counts(s)),
        poll_s=0.2,
    )
    trials = study.get_trials()
    assert len(trials) == len(jobs)
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert seen[-1] == (len(jobs), 0, len(jobs))


def test_unbuildable_loss_is_an_error_result(grid):
    """A job whose loss cannot be built is recorded as failure kind ``error``, not retried."""
    path, _, study = grid
    setting = JobSetting({"name": "s"}, split="val")
    enqueue_jobs(study, [Job("bad", setting, "mul(y, lg(p))", 0, 1.0, {"loss": "bad"})])
    assert run_worker("g", path, evaluator_factory=CountingFactory()) == 1
    trial = study.get_trials()[0]
    assert trial.state is TrialState.FAIL
    assert trial.user_attrs["failure_kind"] == "error"
    assert "lg" in trial.user_attrs["message"]
    assert requeue_interrupted(study) == 0


def test_one_job_outcome_is_one_storage_write(grid, monkeypatch):
    """The worker records a job's outcome in one batched write, not one per attribute."""
    path, _, study = grid
    enqueue_jobs(study, make_jobs(settings=1, seeds=1)[:1])
    single = []
    original = JournalStorage.set_trial_user_attr

    def counting(self, trial_id, key, value):
        single.append(key)
        original(self, trial_id, key, value)

    monkeypatch.setattr(JournalStorage, "set_trial_user_attr", counting)
    assert run_worker("g", path, evaluator_factory=CountingFactory()) == 1
    assert single == ["worker"]  # the claim's owner; the outcome went in the batch
    attrs = study.get_trials()[0].user_attrs
    assert {"best_acc", "final_acc", "fitness", "steps", "seconds", "device"} <= set(attrs)


def test_a_job_stores_its_learning_curve_as_intermediate_values(grid):
    path, _, study = grid
    enqueue_jobs(study, make_jobs(settings=1, seeds=1))
    assert run_worker("g", path, evaluator_factory=CountingFactory()) == len(EXPRESSIONS)
    done = [t for t in study.get_trials() if t.state is TrialState.COMPLETE]
    assert len(done) == len(EXPRESSIONS)
    for trial in done:
        best = trial.user_attrs["best_acc"]
        assert trial.intermediate_values == {5: pytest.approx(best / 2), 10: pytest.approx(best)}


def _add(study, job, state, kind=None):
    attrs = {"job": job} if kind is None else {"job": job, "failure_kind": kind}
    value = 0.5 if state is TrialState.COMPLETE else None
    study.add_trial(optuna.trial.create_trial(state=state, value=value, user_attrs=attrs))
    return study.get_trials(deepcopy=False)[-1].number


def test_settling_trial_rule():
    """COMPLETE beats a failure in any order; the latest of a kind wins; interrupted, surplus
    and kind-less failures settle nothing."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    complete = _add(study, "a", TrialState.COMPLETE)
    _add(study, "a", TrialState.FAIL, "nan")  # later, but a failure: the result stays
    _add(study, "b", TrialState.FAIL, "nan")
    latest_failure = _add(study, "b", TrialState.FAIL, "diverged")
    _add(study, "b", TrialState.FAIL, "interrupted")
    _add(study, "c", TrialState.FAIL, "interrupted")
    _add(study, "c", TrialState.FAIL, "surplus")
    _add(study, "c", TrialState.FAIL)
    _add(study, "d", TrialState.COMPLETE)
    latest_complete = _add(study, "d", TrialState.COMPLETE)
    settled = {
        job: settling_trial(trials) for job, trials in job_trials(study.get_trials()).items()
    }
    assert {job: t and t.number for job, t in settled.items()} == {
        "a": complete,
        "b": latest_failure,
        "c": None,
        "d": latest_complete,
    }
    assert {job: t.number for job, t in job_results(study).items()} == {
        "a": complete,
        "b": latest_failure,
        "d": latest_complete,
    }
    assert progress_counts(study) == (3, 1, 4)
    assert requeue_interrupted(study) == 1  # only "c" is work never done
    assert study.get_trials()[-1].user_attrs == {"job": "c"}


def test_jobs_written_before_the_rename_are_still_recognised(grid):
    """A trial that names its job with the old ``cell`` attribute settles that job."""
    path, _, study = grid
    job = make_jobs(settings=1, seeds=1)[0]
    study.add_trial(
        optuna.trial.create_trial(
            value=0.5,
            user_attrs={
                **{k: v for k, v in job.user_attrs().items() if k != "job"},
                "cell": job.id,
            },
        )
    )
    assert enqueue_jobs(study, [job]) == 0
