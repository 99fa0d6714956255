"""Storage resolution, study opening with config checks, and recovery of dead workers' trials."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import TrialState

from nlfs.errors import ConfigError
from nlfs.storage import (
    GRACE_PERIOD_S,
    create_running_trial,
    load_existing_study,
    open_study,
    quiet_optuna,
    recover_interrupted,
    resolve_storage,
    study_id_of,
    study_storage,
    worker_identity,
)

quiet_optuna()
ATTRS = {"kind": "search", "config_hash": "abc", "config": {"seed": 0, "profile": "micro"}}


def test_default_storage_is_a_journal_file_named_after_the_study(tmp_path):
    storage = resolve_storage(None, "my-study", runs_dir=tmp_path / "runs")
    assert isinstance(storage, JournalStorage)
    assert (tmp_path / "runs" / "my-study.journal").is_file()


def test_a_url_selects_the_rdb_storage_with_a_heartbeat(tmp_path):
    storage = resolve_storage(f"sqlite:///{tmp_path / 'x.db'}", "s")
    assert isinstance(storage, RDBStorage)
    assert storage.get_heartbeat_interval() is not None


def test_bad_storage_paths_are_refused_with_a_message(tmp_path):
    with pytest.raises(ConfigError, match="folder"):
        resolve_storage(str(tmp_path), "s")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_storage("/nonexistent-nlfs-dir/x.journal", "s")
    with pytest.raises(ConfigError, match="cannot name a file"):
        resolve_storage(None, "../escape", runs_dir=tmp_path)


def test_open_study_creates_then_resumes_and_refuses_another_config(tmp_path):
    storage = resolve_storage(str(tmp_path / "j"), "s")
    study = open_study("s", storage, attrs={**ATTRS, "budget": 5})
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    again = open_study("s", storage, attrs={**ATTRS, "budget": 9})
    assert again.user_attrs["budget"] == 9, "a matching resume refreshes the attributes"
    other = {**ATTRS, "config_hash": "def", "config": {"seed": 1, "profile": "micro"}}
    with pytest.raises(ConfigError, match=r"seed: stored 0 vs now 1.*--study"):
        open_study("s", storage, attrs=other)
    assert optuna.load_study(study_name="s", storage=storage).user_attrs["config_hash"] == "abc"
    with pytest.raises(ConfigError, match="'search' study, not 'transfer'"):
        open_study("s", storage, attrs={**ATTRS, "kind": "transfer"})


def test_loading_a_missing_study_creates_no_file(tmp_path):
    with pytest.raises(ConfigError, match="nlfs search"):
        load_existing_study("nope", None, runs_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    open_study("s", resolve_storage(str(tmp_path / "j"), "s"), attrs=ATTRS)
    with pytest.raises(ConfigError, match="studies there: s"):
        load_existing_study("other", str(tmp_path / "j"))


def _running(study, worker) -> int:
    trial_id = create_running_trial(study, {"worker": worker})
    return study_storage(study).get_trial_number_from_id(trial_id)


def test_only_trials_of_dead_workers_are_recovered_as_interrupted(tmp_path):
    study = open_study("s", resolve_storage(str(tmp_path / "j"), "s"), attrs=ATTRS)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    me = worker_identity()
    n_dead = _running(study, {**me, "pid": int(dead.stdout)})
    _running(study, me)  # this process: alive
    _running(study, {**me, "pid": os.getppid()})  # alive
    _running(study, {**me, "host": "elsewhere", "pid": int(dead.stdout)})  # cannot tell
    assert recover_interrupted(study) == [n_dead]
    trial = study.trials[n_dead]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["failure_kind"] == "interrupted"
    assert recover_interrupted(study) == []


def test_rdb_storage_recovers_dead_local_workers_too(tmp_path):
    storage = resolve_storage(f"sqlite:///{tmp_path / 'x.db'}", "s")
    study = open_study("s", storage, attrs=ATTRS)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    number = _running(study, {**worker_identity(), "pid": int(dead.stdout)})
    assert recover_interrupted(study) == [number]


def _age_heartbeats(db_path, seconds: float) -> None:
    """Move every recorded heartbeat ``seconds`` into the past (a worker that stopped beating)."""
    with sqlite3.connect(db_path) as db:
        db.execute(
            "UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, ?)",
            (f"-{seconds} seconds",),
        )


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_search_trial_killed_right_after_its_claim_is_recovered_from_its_first_beat(tmp_path):
    """The claim itself beats once: a worker on another host that dies before its heartbeat
    thread starts still leaves a trial that goes stale (without it, RUNNING for good)."""
    from search_fakes import FakeFactory

    from nlfs.search.config import SearchConfig
    from nlfs.search.runner import SearchWorker, study_attrs

    cfg = SearchConfig(strategy="random", space="cell", profile="fake", budget=4, seed=0)
    storage = resolve_storage(f"sqlite:///{tmp_path / 's.db'}", "s")
    study = open_study("s", storage, attrs=study_attrs(cfg))
    worker = SearchWorker(study, cfg, evaluator_factory=FakeFactory())
    worker.start()
    trial_id, number, _ = worker._reserve()  # claimed; the worker "dies" here
    storage.set_trial_user_attr(trial_id, "worker", {**worker_identity(), "host": "elsewhere"})
    assert recover_interrupted(study) == []  # fresh beat, another host: alive as far as we know
    _age_heartbeats(tmp_path / "s.db", GRACE_PERIOD_S + 1)
    assert recover_interrupted(study) == [number]
    assert study.trials[number].user_attrs["failure_kind"] == "interrupted"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_grid_job_claimed_by_a_worker_that_dies_at_once_names_it_and_goes_stale(tmp_path):
    from nlfs.experiments.grid import _claim
    from nlfs.experiments.jobs import Job, JobSetting, enqueue_jobs

    storage = resolve_storage(f"sqlite:///{tmp_path / 'g.db'}", "g")
    study = open_study("g", storage, attrs={"kind": "grid"})
    setting = JobSetting({"name": "s0", "steps": 10}, split="val")
    enqueue_jobs(study, [Job("ce|s0|0", setting, "cross_entropy", 0)])
    sid = study_id_of(study)
    trial = _claim(storage, sid, None)  # the worker "dies" right after its claim
    assert trial is not None
    claimed = study.trials[trial.number]
    assert claimed.state == TrialState.RUNNING
    assert claimed.user_attrs["worker"] == worker_identity()  # judged by pid on this host
    trial_id = storage.get_trial_id_from_study_id_trial_number(sid, trial.number)
    storage.set_trial_user_attr(trial_id, "worker", {**worker_identity(), "host": "elsewhere"})
    assert recover_interrupted(study) == []
    _age_heartbeats(tmp_path / "g.db", GRACE_PERIOD_S + 1)
    assert recover_interrupted(study) == [trial.number]
