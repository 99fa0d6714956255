"""One test per Optuna internal NLFS relies on (all reached through nlfs.optuna_compat).

When an Optuna upgrade moves or changes one of them, the failure shows here, named after what
broke, instead of deep inside a search. Each test asserts the behaviour the code depends on.
"""

from __future__ import annotations

import json
import logging
import sqlite3

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from nlfs import optuna_compat
from nlfs.storage import GRACE_PERIOD_S, quiet_optuna, resolve_storage

quiet_optuna()


@pytest.fixture
def journal(tmp_path):
    """(journal file path, its storage, a study "s" with three running trials)."""
    path = tmp_path / "s.journal"
    storage = resolve_storage(str(path), "s")
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    for _ in range(3):
        study.ask()
    return path, storage, study


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 's.db'}"


def _journal_records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_study_storage_is_the_storage_the_study_reads(journal, sqlite_url):
    _, storage, study = journal
    assert optuna_compat.study_storage(study) is storage
    rdb = optuna.create_study(study_name="r", storage=resolve_storage(sqlite_url, "r"))
    rdb.set_user_attr("a", 1)
    rdb_storage = optuna_compat.study_storage(rdb)
    assert rdb_storage.get_study_user_attrs(rdb_storage.get_study_id_from_name("r")) == {"a": 1}


def test_study_id_of_is_the_id_the_storage_knows_the_study_by(journal):
    _, storage, study = journal
    assert optuna_compat.study_id_of(study) == storage.get_study_id_from_name("s")


def test_trial_id_of_names_each_trial_in_its_storage(journal):
    _, storage, study = journal
    sid = storage.get_study_id_from_name("s")
    for number, trial in enumerate(study.get_trials()):
        tid = optuna_compat.trial_id_of(trial)
        assert tid == storage.get_trial_id_from_study_id_trial_number(sid, number)
        assert storage.get_trial(tid).number == number


def test_journal_file_path_names_the_file_and_nothing_else(journal, sqlite_url):
    path, storage, _ = journal
    assert optuna_compat.journal_file_path(storage) == str(path.resolve())
    assert optuna_compat.journal_file_path(resolve_storage(sqlite_url, "r")) is None


def test_rdb_url_is_read_through_optunas_storage_cache(sqlite_url):
    study = optuna.create_study(study_name="r", storage=resolve_storage(sqlite_url, "r"))
    # A study wraps an RDBStorage in Optuna's cache; the URL must still be found.
    assert optuna_compat.rdb_url(optuna_compat.study_storage(study)) == sqlite_url
    assert optuna_compat.rdb_url(optuna.storages.InMemoryStorage()) is None


def test_appended_trial_attrs_are_the_records_optuna_writes(journal):
    """One write holds one record per attribute, identical to ``set_trial_user_attr``'s, and a
    fresh ``optuna.load_study`` (and the writing process) read them back."""
    path, storage, study = journal
    first, second = (optuna_compat.trial_id_of(t) for t in study.get_trials()[:2])
    storage.set_trial_user_attr(first, "k", {"v": [1, 2]})
    public = _journal_records(path)[-1]
    attrs = {"k": {"v": [1, 2]}, "expression": "mul(y, log(p))"}
    before = len(_journal_records(path))
    assert optuna_compat.append_trial_user_attrs(storage, second, attrs) is True
    records = _journal_records(path)
    assert len(records) == before + len(attrs)
    mine = records[before]
    assert {**mine, "trial_id": first} == public
    assert storage.get_trial(second).user_attrs == attrs
    fresh = optuna.load_study(study_name="s", storage=resolve_storage(str(path), "s"))
    assert fresh.trials[1].user_attrs == attrs


def test_appended_intermediate_values_are_the_records_optuna_writes(journal):
    """One write holds one record per point, identical to ``set_trial_intermediate_value``'s;
    a fresh ``optuna.load_study`` reads the curve back."""
    path, storage, study = journal
    first, second = (optuna_compat.trial_id_of(t) for t in study.get_trials()[:2])
    storage.set_trial_intermediate_value(first, 50, 0.25)
    public = _journal_records(path)[-1]
    before = len(_journal_records(path))
    points = {50: 0.25, 100: 0.5}
    assert optuna_compat.append_trial_intermediate_values(storage, second, points) is True
    records = _journal_records(path)
    assert len(records) == before + 2
    assert {**records[before], "trial_id": first} == public
    fresh = optuna.load_study(study_name="s", storage=resolve_storage(str(path), "s"))
    assert fresh.trials[1].intermediate_values == points


def test_appended_study_attrs_are_the_records_optuna_writes(journal):
    path, storage, study = journal
    study.set_user_attr("budget", 5)
    public = _journal_records(path)[-1]
    sid = storage.get_study_id_from_name("s")
    assert optuna_compat.append_study_user_attrs(storage, sid, {"budget": 5, "kind": "x"})
    assert _journal_records(path)[-2] == public
    fresh = optuna.load_study(study_name="s", storage=resolve_storage(str(path), "s"))
    assert fresh.user_attrs == {"budget": 5, "kind": "x"}


def test_a_batch_on_a_trial_another_worker_finished_raises_once_and_leaves_reads_sound(journal):
    """Two workers mark one dead trial at once: the later batch is refused, and the rest of it
    does not raise again at the next, unrelated read (Optuna's replay stops at the first)."""
    path, storage, study = journal
    other = resolve_storage(str(path), "s")  # a second worker on the same file
    tid = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("s"), 0)
    other.set_trial_state_values(tid, TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        optuna_compat.append_trial_user_attrs(storage, tid, {"a": 1, "b": 2})
    states = [t.state for t in study.get_trials(deepcopy=False)]  # no error left behind
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
    assert storage.get_trial(tid).user_attrs == {}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # study.ask on an RDB storage
def test_journal_append_declines_other_storages_so_callers_fall_back(sqlite_url):
    storage = resolve_storage(sqlite_url, "r")
    study = optuna.create_study(study_name="r", storage=storage)
    tid = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name("r"), study.ask().number
    )
    assert optuna_compat.append_trial_user_attrs(storage, tid, {"a": 1}) is False
    assert storage.get_trial(tid).user_attrs == {}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_heartbeat_thread_records_a_heartbeat_on_an_sqlite_storage(journal, sqlite_url, tmp_path):
    _, journal_storage, _ = journal
    assert optuna_compat.heartbeat_enabled(journal_storage) is False
    storage = resolve_storage(sqlite_url, "r")
    assert optuna_compat.heartbeat_enabled(storage) is True
    study = optuna.create_study(study_name="r", storage=storage)
    tid = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name("r"), study.ask().number
    )
    thread = optuna_compat.heartbeat_thread(tid, storage)
    thread.start()
    thread.join()  # the thread records once before it first waits
    with sqlite3.connect(tmp_path / "s.db") as db:
        rows = db.execute("SELECT trial_id FROM trial_heartbeats").fetchall()
    assert rows == [(tid,)]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_stale_trial_ids_are_running_trials_whose_heartbeat_is_older_than_the_grace(sqlite_url):
    """A heartbeat recorded grace + 1 s in the past (by hand) is stale; none on a journal."""
    storage = resolve_storage(sqlite_url, "r")
    study = optuna.create_study(study_name="r", storage=storage)
    sid = storage.get_study_id_from_name("r")
    tid = storage.get_trial_id_from_study_id_trial_number(sid, study.ask().number)
    assert optuna_compat.stale_trial_ids(storage, sid) == []  # no heartbeat yet
    storage.record_heartbeat(tid)
    assert optuna_compat.stale_trial_ids(storage, sid) == []
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        db.execute(
            "UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, ?)",
            (f"-{GRACE_PERIOD_S + 1} seconds",),
        )
    assert optuna_compat.stale_trial_ids(storage, sid) == [tid]


def test_quiet_in_memory_study_silences_the_logger_that_announces_studies():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    root = logging.getLogger("optuna")
    root.addHandler(handler)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        optuna.storages.InMemoryStorage().create_new_study([StudyDirection.MAXIMIZE], "loud")
        assert [r.name for r in records] == [optuna_compat._IN_MEMORY_LOGGER]
        records.clear()
        storage, sid = optuna_compat.quiet_in_memory_study("quiet", StudyDirection.MAXIMIZE)
        assert records == []
        assert storage.get_study_id_from_name("quiet") == sid
        assert storage.get_study_directions(sid) == [StudyDirection.MAXIMIZE]
    finally:
        root.removeHandler(handler)
        quiet_optuna()


def test_scored_tpe_sampler_hook_sees_tpes_candidates_and_decides_the_choice():
    """The hook gets TPE's candidate points and scores; TPE picks the point it scores best."""
    dist = CategoricalDistribution(list(range(10)))
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    class Contrary(optuna_compat.ScoredTPESampler):
        def adjust_scores(self, samples, scores):
            seen.append((np.array(samples["x"]), np.array(scores)))
            return -scores  # TPE's least favourite point wins

    def study_with(sampler):
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for x in range(10):
            study.add_trial(
                create_trial(
                    params={"x": x},
                    distributions={"x": dist},
                    value=float(x < 3),
                    state=TrialState.COMPLETE,
                )
            )
        return study

    kwargs = {"n_startup_trials": 2, "n_ei_candidates": 24, "seed": 1}
    chosen = study_with(Contrary(**kwargs)).ask({"x": dist}).params["x"]
    plain = study_with(optuna.samplers.TPESampler(**kwargs)).ask({"x": dist}).params["x"]
    assert len(seen) == 1
    points, scores = seen[0]
    assert len(points) == 24
    assert chosen == dist.to_external_repr(points[np.argmin(scores)])
    assert plain == dist.to_external_repr(points[np.argmax(scores)])
    assert chosen != plain
