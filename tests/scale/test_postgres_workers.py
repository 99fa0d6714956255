"""Many ``nlfs worker`` processes on one study in a real PostgreSQL, one of them SIGKILLed.

Each worker names a different host (``NLFS_WORKER_HOST``), as workers on three machines would,
so no worker can judge another by its pid: the dead worker's trial is found only by its stopped
heartbeat, after the grace period (``NLFS_HEARTBEAT_S``/``NLFS_GRACE_S``, shortened here). The
search trains with the real micro profile; the grid with nano-sized jobs.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import optuna
import pytest
from fault_tools import (
    assert_every_job_settled_once,
    duplicates,
    finish,
    holds_result,
    running,
    start_cli,
    wait_until,
)
from optuna.trial import FrozenTrial, TrialState
from search_fakes import NANO

from nlfs.search.config import SearchConfig
from nlfs.search.runner import study_attrs
from nlfs.storage import open_study, quiet_optuna, resolve_storage

quiet_optuna()
pytestmark = pytest.mark.fmnist

HEARTBEAT_S, GRACE_S = 1, 4
FAST_HEARTBEAT = {"NLFS_HEARTBEAT_S": str(HEARTBEAT_S), "NLFS_GRACE_S": str(GRACE_S)}
WORKERS = 3


def _start_workers(study: str, url: str, tmp_path) -> list:
    return [
        start_cli(
            ["worker", "--study", study, "--storage", url, "--device", "cpu", "--json"],
            tmp_path / f"worker{i}.log",
            {**FAST_HEARTBEAT, "NLFS_WORKER_HOST": f"node{i}"},
        )
        for i in range(WORKERS)
    ]


def _kill_mid_trial(study: optuna.Study, workers: list, ready) -> tuple[FrozenTrial, datetime]:
    """SIGKILL worker 0 once it runs a trial for which ``ready(trial)`` holds."""
    trial = wait_until(
        lambda: [t for t in running(study, host="node0") if ready(t)], "node0 to run a trial"
    )[0]
    os.kill(workers[0].pid, signal.SIGKILL)
    killed_at = datetime.now(tz=UTC)
    assert workers[0].wait(30) == -signal.SIGKILL
    return trial, killed_at


def _check_survivors(workers: list, tmp_path) -> None:
    for i, worker in enumerate(workers[1:], start=1):
        log = tmp_path / f"worker{i}.log"
        assert finish(worker, log) == 0, log.read_text()


def test_a_search_on_postgresql_survives_a_killed_worker(postgres_server, tmp_path):
    """The budget is reached exactly, with distinct keys; the killed worker's candidate is
    re-evaluated once, by a live worker, no sooner than the heartbeat grace period."""
    url = postgres_server.new_database("search")
    config = SearchConfig(
        strategy="regevo",
        space="cell",
        profile="micro",
        budget=12,
        seed=1,
        eval_seed=0,
        device="cpu",
        strategy_options={"population": 4, "tournament": 2},
    )
    study = open_study("s", resolve_storage(url, "s"), attrs=study_attrs(config))
    workers = _start_workers("s", url, tmp_path)
    # "genome" is the last attribute written before the evaluation starts.
    victim, killed_at = _kill_mid_trial(study, workers, lambda t: "genome" in t.user_attrs)
    _check_survivors(workers, tmp_path)

    trials = study.get_trials(deepcopy=False)
    dead = trials[victim.number]
    assert dead.state == TrialState.FAIL and dead.user_attrs["failure_kind"] == "interrupted"
    counted = [t for t in trials if holds_result(t)]
    assert len(counted) == config.budget
    assert duplicates(t.user_attrs["key"] for t in counted) == []
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0] in counted
    retry = retries[0]
    assert retry.user_attrs["key"] == victim.user_attrs["key"]
    assert retry.user_attrs["worker"]["host"] != "node0"
    # Found through the heartbeat: not before the grace period had passed since the kill.
    started = retry.datetime_start.replace(tzinfo=retry.datetime_start.tzinfo or UTC)
    assert started >= killed_at + timedelta(seconds=GRACE_S - HEARTBEAT_S)
    assert not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    assert len({t.user_attrs["worker"]["host"] for t in counted}) >= 2


def test_a_transfer_grid_on_postgresql_survives_a_killed_worker(postgres_server, tmp_path):
    """Every job is settled exactly once; the killed worker's job is re-run by a live worker."""
    from nlfs.experiments.transfer import TransferConfig, prepare, resolve_losses

    url = postgres_server.new_database("grid")
    config = TransferConfig(
        losses=("ce", "focal"),
        archs=("tiny_cnn",),
        augment=("none",),
        seeds=4,
        profile=NANO,
        steps=60,
        overrides={"test_size": 500, "eval_every": 30},
    )
    study, jobs, _ = prepare("t", resolve_storage(url, "t"), config, resolve_losses(config.losses))
    workers = _start_workers("t", url, tmp_path)
    started = time.monotonic()
    victim, _ = _kill_mid_trial(study, workers, lambda t: True)
    _check_survivors(workers, tmp_path)

    grouped = assert_every_job_settled_once(study, jobs)
    redone = grouped[victim.user_attrs["job"]]
    assert [t.user_attrs.get("failure_kind") for t in redone][0] == "interrupted"
    assert redone[-1].state == TrialState.COMPLETE
    assert redone[-1].user_attrs["worker"]["host"] != "node0"
    assert time.monotonic() - started >= GRACE_S
