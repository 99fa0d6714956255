"""``nlfs transfer`` and ``nlfs eliminate`` (real processes, journal storage) under faults.

Ctrl-C reaches the whole process group, as a terminal sends it; SIGKILL hits one local worker
while it trains. Either way the jobs that were running end ``interrupted``, nothing stays
RUNNING, running the same command again finishes the grid, and every job is settled exactly once
(one trial holds its result; no job trained to completion twice).
"""

from __future__ import annotations

import os
import signal

import optuna
import pytest
from fault_tools import assert_every_job_settled_once, finish, running, start_cli, wait_until
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from search_fakes import NANO

from nlfs.storage import open_study, quiet_optuna, resolve_storage

quiet_optuna()
pytestmark = pytest.mark.fmnist

WORKERS = 2
STEPS = 60
"""Steps per job: long enough (about a second) for a fault to land while jobs train."""


def _transfer(tmp_path) -> tuple[list[str], int]:
    grid = tmp_path / "grid.toml"
    grid.write_text(
        f'losses = ["ce", "focal"]\narchs = ["tiny_cnn"]\ndatasets = ["fashion-mnist"]\n'
        f'augment = ["none"]\nseeds = 2\nprofile = "{NANO}"\nsteps = {STEPS}\n'
        "[overrides]\ntest_size = 500\neval_every = 30\n"
    )
    return ["transfer", "--config", str(grid), "--study", "g"], 4


SEARCH = ["mul(y, log(p))", "mul(y, sub(p, 1))", "neg(mul(y, p))"]


def _eliminate(tmp_path) -> tuple[list[str], int]:
    """Three candidates, one seed each, keep 2 then 1: 3 + 2 jobs."""
    storage = resolve_storage(str(tmp_path / "runs.journal"), "s")
    study = open_study("s", storage, attrs={"kind": "search"})
    for i, expression in enumerate(SEARCH):
        study.add_trial(
            create_trial(
                value=0.9 - i / 10,
                params={"x": 0.0},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={"expression": expression, "key": f"k{i}", "sign": -1.0},
            )
        )
    protocol = tmp_path / "elim.toml"
    protocol.write_text(
        f"profile = '{NANO}'\ntop = 3\nkeep = [2, 1]\nseeds = 1\n"
        f"[[stages]]\nsteps = {STEPS}\n[[stages]]\nsteps = {STEPS}\naugment = 'flipcrop'\n"
    )
    return ["eliminate", "--study", "s", "--stages", str(protocol), "--out-study", "g"], 5


COMMANDS = {"transfer": _transfer, "eliminate": _eliminate}


@pytest.mark.parametrize("fault", ["ctrl-c", "sigkill"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_grid_command_under_a_fault_reruns_the_running_jobs_once(tmp_path, command, fault):
    args, jobs = COMMANDS[command](tmp_path)
    path = str(tmp_path / "runs.journal")
    args += ["--storage", path, "--device", "cpu", "--json"]
    log = tmp_path / "first.log"
    process = start_cli([*args, "--workers", str(WORKERS)], log)
    study = wait_until(lambda: _study(path), "the grid study")
    if fault == "ctrl-c":
        hit = wait_until(lambda: len(busy := running(study)) == WORKERS and busy, "both training")
        os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole group
        assert finish(process, log) == 130, log.read_text()
        assert "Traceback" not in log.read_text()
    else:
        hit = wait_until(lambda: running(study)[:1], "a worker training")
        os.kill(hit[0].user_attrs["worker"]["pid"], signal.SIGKILL)
        # The other worker redoes the job, then the command names the dead worker in one line.
        assert finish(process, log) == 2, log.read_text()
        assert "stopped with an error" in log.read_text()
    hit_numbers = {t.number for t in hit}
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    for number in hit_numbers:
        assert trials[number].state == TrialState.FAIL
        assert trials[number].user_attrs["failure_kind"] == "interrupted"

    again = tmp_path / "again.log"
    assert finish(start_cli([*args, "--workers", "1"], again), again) == 0, again.read_text()
    grouped = assert_every_job_settled_once(study, jobs)
    for number in hit_numbers:
        (job,) = [j for j, ts in grouped.items() if number in {t.number for t in ts}]
        assert grouped[job][-1].state == TrialState.COMPLETE, f"job {job} was not run again"


def _study(path: str) -> optuna.Study | None:
    if not os.path.exists(path):
        return None
    try:
        return optuna.load_study(study_name="g", storage=resolve_storage(path, "g"))
    except KeyError:  # the file exists, the study is being created
        return None
