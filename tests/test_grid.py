"""Grid studies: enqueued cells run exactly once by any number of workers, and resume."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch
from optuna.trial import TrialState

from nlfs.evaluation.results import EvalResult, State
from nlfs.experiments.grid import run_local, run_worker
from nlfs.experiments.jobs import (
    Cell,
    Setting,
    cell_results,
    enqueue_cells,
    progress_counts,
    requeue_interrupted,
)
from nlfs.storage import open_study, resolve_storage

EXPRESSIONS = ("mul(y, log(p))", "mul(y, sub(p, 1))", "neg(mul(y, p))")


class FakeEvaluator:
    """Scores a loss by its value on fixed logits: deterministic, instant, loss-dependent."""

    def __init__(self, setting: Setting, fail_on: str | None = None) -> None:
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
                out.append(EvalResult(State.OK, acc, acc / 2, 10, 0.01, "fake", "cpu"))
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


def make_cells(settings=2, seeds=2) -> list[Cell]:
    cells = []
    for s in range(settings):
        setting = Setting({"name": f"s{s}", "steps": 10 + s}, split="val")
        for seed in range(seeds):
            for i, expr in enumerate(EXPRESSIONS):
                cells.append(Cell(f"l{i}|s{s}|{seed}", setting, expr, seed, 1.0,
                                  {"loss": f"l{i}", "arch": f"s{s}"}))
    return cells


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
    cells = make_cells()
    assert enqueue_cells(study, cells) == len(cells)
    assert enqueue_cells(study, cells) == 0
    assert len(study.get_trials()) == len(cells)


def test_duplicate_cell_ids_are_refused(grid):
    from nlfs.errors import ConfigError

    _, _, study = grid
    cell = make_cells(1, 1)[0]
    with pytest.raises(ConfigError, match="twice"):
        enqueue_cells(study, [cell, cell])


def test_one_worker_runs_every_cell_once_and_reuses_each_setting(grid):
    """One worker finishes all cells, building one evaluator per setting (data loaded once)."""
    path, _, study = grid
    cells = make_cells(settings=2)
    enqueue_cells(study, cells)
    factory = CountingFactory()
    assert run_worker("g", path, recover=False, evaluator_factory=factory) == len(cells)
    assert factory.built == 2
    results = cell_results(study)
    assert sorted(results) == sorted(c.id for c in cells)
    assert all(t.state is TrialState.COMPLETE for t in results.values())
    trial = results["l0|s0|0"]
    assert trial.value == trial.user_attrs["best_acc"]
    assert trial.user_attrs["failure_kind"] is None
    assert {"final_acc", "seconds", "device", "seed"} <= set(trial.user_attrs)
    assert enqueue_cells(study, cells) == 0  # done cells are not enqueued again


def test_rerun_after_partial_run_finishes_only_the_rest(grid):
    """Stopping after k cells and running again completes the grid with no cell run twice."""
    path, _, study = grid
    cells = make_cells()
    enqueue_cells(study, cells)
    assert run_worker("g", path, evaluator_factory=CountingFactory(), max_cells=4) == 4
    assert enqueue_cells(study, cells) == 0  # the rest are still waiting
    assert run_worker("g", path, evaluator_factory=CountingFactory()) == len(cells) - 4
    assert _by_state(study)[TrialState.COMPLETE] == len(cells)


def test_training_failures_are_results_not_retried(grid):
    """A cell whose training fails is done (FAIL with its kind), never enqueued again."""
    path, _, study = grid
    cells = make_cells(settings=1, seeds=1)
    enqueue_cells(study, cells)
    run_worker("g", path, evaluator_factory=CountingFactory(fail_on="neg"))
    failed = [t for t in study.get_trials() if t.state is TrialState.FAIL]
    assert [t.user_attrs["failure_kind"] for t in failed] == ["nan"]
    assert failed[0].user_attrs["best_acc"] is None
    assert enqueue_cells(study, cells) == 0
    assert requeue_interrupted(study) == 0
    assert progress_counts(study) == (3, 1, 3)


def test_interrupted_cell_is_run_again(grid):
    """A cell left RUNNING by a dead worker is failed as interrupted and trained again."""
    path, storage, study = grid
    cells = make_cells(settings=1, seeds=1)
    enqueue_cells(study, cells)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = study.ask()  # claims the first waiting cell, like a worker would
    trial.set_user_attr("worker", {"host": __import__("socket").gethostname(), "pid": dead.pid,
                                   "token": "gone"})
    assert run_worker("g", path, evaluator_factory=CountingFactory()) == len(cells)
    interrupted = [t for t in study.get_trials() if t.state is TrialState.FAIL]
    assert [t.number for t in interrupted] == [trial.number]
    assert interrupted[0].user_attrs["failure_kind"] == "interrupted"
    results = cell_results(study)
    assert len(results) == len(cells)
    assert results[trial.user_attrs["cell"]].number != trial.number


def test_crash_inside_a_cell_marks_it_interrupted(grid):
    """An exception while training (e.g. Ctrl-C) leaves the cell to be redone, not lost."""
    path, _, study = grid
    cells = make_cells(settings=1, seeds=1)
    enqueue_cells(study, cells)

    def broken(setting, device, data_dir, download):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_worker("g", path, evaluator_factory=broken)
    first = study.get_trials()[0]
    assert first.state is TrialState.FAIL and first.user_attrs["failure_kind"] == "interrupted"
    assert requeue_interrupted(study) == 1
    assert run_worker("g", path, evaluator_factory=CountingFactory()) == len(cells)
    assert len(cell_results(study)) == len(cells)


def test_two_workers_share_the_grid_without_duplicates(grid):
    """Two workers with their own storage handles claim every cell exactly once."""
    path, _, study = grid
    cells = make_cells(settings=2, seeds=3)
    enqueue_cells(study, cells)
    counts = []

    def work() -> None:
        counts.append(run_worker("g", resolve_storage(path, "g"), recover=False,
                                 evaluator_factory=CountingFactory()))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trials = study.get_trials()
    assert sum(counts) == len(cells) == len(trials)
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert sorted(t.user_attrs["cell"] for t in trials) == sorted(c.id for c in cells)
    assert progress_counts(study) == (len(cells), 0, len(cells))


def test_local_worker_processes_finish_the_grid(grid):
    """``run_local`` with two processes (the --workers path) completes the grid once."""
    path, _, study = grid
    cells = make_cells(settings=1, seeds=1)
    enqueue_cells(study, cells)
    seen = []
    run_local("g", path, workers=2, evaluator_factory=fake_factory,
              on_progress=lambda s: seen.append(progress_counts(s)), poll_s=0.2)
    trials = study.get_trials()
    assert len(trials) == len(cells)
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert seen[-1] == (len(cells), 0, len(cells))


def test_unbuildable_loss_is_an_error_result(grid):
    """A cell whose loss cannot be built is recorded as failure kind ``error``, not retried."""
    path, _, study = grid
    setting = Setting({"name": "s"}, split="val")
    enqueue_cells(study, [Cell("bad", setting, "mul(y, lg(p))", 0, 1.0, {"loss": "bad"})])
    assert run_worker("g", path, evaluator_factory=CountingFactory()) == 1
    trial = study.get_trials()[0]
    assert trial.state is TrialState.FAIL
    assert trial.user_attrs["failure_kind"] == "error"
    assert "lg" in trial.user_attrs["message"]
    assert requeue_interrupted(study) == 0
