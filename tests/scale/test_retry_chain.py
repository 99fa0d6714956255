"""A candidate survives any chain of kills: a retry killed before it wrote the candidate gives
its claim back (found by benchmarks/reliability.py, where such a retry lost its candidate)."""

from __future__ import annotations

import optuna
import pytest
from search_fakes import FakeFactory

from nlfs.search.config import SearchConfig
from nlfs.search.runner import SearchWorker, study_attrs
from nlfs.storage import (
    create_running_trial,
    mark_interrupted,
    open_study,
    quiet_optuna,
    resolve_storage,
)

quiet_optuna()


def test_a_retry_killed_before_its_candidate_does_not_lose_the_candidate(tmp_path):
    config = SearchConfig(
        strategy="random", space="cell", profile="fake", budget=3, seed=0, device="cpu"
    )
    storage = resolve_storage(str(tmp_path / "s.journal"), "s")
    study = open_study("s", storage, attrs=study_attrs(config))
    with pytest.raises(KeyboardInterrupt):  # trial 0: interrupted mid-evaluation
        SearchWorker(study, config, evaluator_factory=FakeFactory(crash_at=0)).run()
    first = study.trials[0]
    assert first.user_attrs["failure_kind"] == "interrupted" and "genome" in first.user_attrs
    # Trial 1 claims the retry of trial 0, and its worker dies before writing the candidate.
    worker = {"host": "elsewhere", "pid": 1, "token": "x"}
    create_running_trial(study, {"worker": worker, "retry_of": 0})
    assert mark_interrupted(study, 1)

    factory = FakeFactory()
    SearchWorker(
        optuna.load_study(study_name="s", storage=storage), config, evaluator_factory=factory
    ).run()
    assert factory.seen[0] == first.user_attrs["expression"], "trial 0's candidate was lost"
    redone = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == 0 and t.number > 1]
    assert len(redone) == 1 and redone[0].state.is_finished()
    assert redone[0].user_attrs["failure_kind"] != "interrupted"
    assert len(factory.seen) == 3
