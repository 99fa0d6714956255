"""End to end: each strategy through the runner with the real evaluator and the nano profile."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from search_fakes import NANO, shared_real_factory

from nlfs.search.config import load_search_config
from nlfs.search.workers import run_search

optuna.logging.set_verbosity(optuna.logging.WARNING)

REQUIRED = {"expression", "key", "sign", "parent", "mutation", "eval_seed", "failure_kind",
            "device", "seconds"}


@pytest.mark.parametrize("strategy", ["regevo", "random", "tpe"])
def test_each_strategy_searches_and_records_an_optuna_study(tmp_path, strategy):
    config = load_search_config(
        "ci", {"strategy": strategy, "profile": NANO, "budget": 3, "device": "cpu"}
    )
    journal = tmp_path / "study.journal"
    summary = run_search(config, study_name="e2e", storage=str(journal),
                         evaluator_factory=shared_real_factory)
    # Anything that reads Optuna journals reads the run: no nlfs code below this line.
    study = optuna.load_study(
        study_name="e2e", storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 3 == summary["finished"]
    assert len({t.user_attrs["key"] for t in finished}) == 3
    for trial in finished:
        assert REQUIRED <= set(trial.user_attrs)
        assert trial.user_attrs["device"] == "cpu" and trial.user_attrs["seconds"] > 0
        if trial.state == TrialState.COMPLETE:
            assert 0.0 <= trial.value <= 1.0
    assert {"strategy", "space", "profile", "seed", "config_hash"} <= set(study.user_attrs)
    assert study.user_attrs["strategy"] == strategy and study.user_attrs["profile"] == "nano"
    assert any(t.state == TrialState.COMPLETE for t in finished), "nano trains nothing?"
