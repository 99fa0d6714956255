"""Local worker processes (``run_processes``): threads, errors, and the one Ctrl-C policy.

These spawn real processes (a worker imports torch: about two seconds each run).
"""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nlfs.errors import NLFSError
from nlfs.evaluation.results import EvalResult, State
from nlfs.experiments.grid import run_local
from nlfs.experiments.jobs import Job, JobSetting, enqueue_jobs, requeue_interrupted
from nlfs.search.workers import run_processes
from nlfs.storage import open_study, quiet_optuna, resolve_storage

quiet_optuna()
WAIT_S = 120.0
"""Bound on waiting for spawned workers to reach a state (a broken test fails, never hangs)."""


def _report_then_fail(folder: str) -> None:
    """Worker target: write this process's torch threads and Optuna verbosity, then fail."""
    import torch

    Path(folder, f"{os.getpid()}.txt").write_text(
        f"{torch.get_num_threads()} {optuna.logging.get_verbosity()}"
    )
    raise NLFSError("the dataset is missing")


def test_workers_share_the_cores_and_a_worker_error_is_one_line(tmp_path, capfd):
    """Each of K workers gets cores // K torch threads and quiet Optuna; an NLFSError in a worker
    is one line on stderr, and the parent names the workers that failed."""
    with pytest.raises(NLFSError, match=r"nlfs-worker-0, nlfs-worker-1 stopped with an error"):
        run_processes(_report_then_fail, (str(tmp_path),), 2, poll_s=0.05)
    reports = sorted(p.read_text() for p in tmp_path.glob("*.txt"))
    share = max(1, (os.cpu_count() or 1) // 2)
    assert reports == [f"{share} {optuna.logging.WARNING}"] * 2
    err = capfd.readouterr().err
    assert err.count("Error: the dataset is missing\n") == 2
    assert "Traceback" not in err


class BlockingEvaluator:
    """Announces that it is training (a file named after its pid), then waits for a signal."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def evaluate(self, requests):
        Path(self.folder, f"{os.getpid()}.training").touch()
        signal.pause()  # until Ctrl-C
        return [EvalResult(State.OK, 0.5, 0.5, 1, 0.0, "never", "cpu") for _ in requests]


def blocking_factory(folder, setting, device, data_dir, download):
    return BlockingEvaluator(folder)


def test_ctrl_c_of_grid_workers_marks_their_running_jobs_interrupted(tmp_path):
    """The terminal's Ctrl-C reaches parent and workers; each worker marks its job interrupted
    before exiting (the parent's forwarded SIGINT must not cut that short), the parent waits
    for them, and the next run repeats those jobs."""
    path = str(tmp_path / "grid.journal")
    study = open_study("g", resolve_storage(path, "g"), attrs={"kind": "test"})
    setting = JobSetting({"name": "s"}, split="val")
    enqueue_jobs(study, [Job(f"j{i}", setting, "mul(y, log(p))", i, -1.0) for i in range(2)])
    folder = tmp_path / "flags"
    folder.mkdir()
    deadline = time.monotonic() + WAIT_S

    def ctrl_c_once_both_train(_study) -> None:
        training = [int(p.stem) for p in folder.glob("*.training")]
        if len(training) == 2 or time.monotonic() > deadline:
            for pid in training:  # what a terminal does: SIGINT to every process of the group
                os.kill(pid, signal.SIGINT)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_local(
            "g",
            path,
            workers=2,
            evaluator_factory=functools.partial(blocking_factory, str(folder)),
            on_progress=ctrl_c_once_both_train,
            poll_s=0.05,
        )
    trials = optuna.load_study(study_name="g", storage=resolve_storage(path, "g")).trials
    assert len(list(folder.glob("*.training"))) == 2, "both workers should have been training"
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert [t.user_attrs["failure_kind"] for t in trials] == ["interrupted"] * 2
    assert requeue_interrupted(study) == 2
