"""A worker keeping K trials in flight (``group``): same budget rule, same asks, same resume."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
from optuna.trial import TrialState
from search_fakes import NANO, FakeFactory, RealFactory

from nlfs.errors import ConfigError
from nlfs.search.config import SearchConfig
from nlfs.search.runner import SearchWorker, study_attrs
from nlfs.storage import open_study, resolve_storage


def config(**changes) -> SearchConfig:
    base = dict(
        strategy="regevo",
        space="cell",
        profile="fake",
        budget=10,
        seed=5,
        strategy_options={"population": 4, "tournament": 2},
    )
    return SearchConfig(**{**base, **changes})


def study(tmp_path, cfg: SearchConfig, name: str = "s") -> optuna.Study:
    path = str(tmp_path / f"{name}.journal")
    return open_study(name, resolve_storage(path, name), attrs=study_attrs(cfg))


def used(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [
        t
        for t in study.get_trials()
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (
            t.state is TrialState.FAIL
            and t.user_attrs.get("failure_kind") not in ("interrupted", "surplus")
        )
    ]


def test_a_worker_keeps_k_trials_in_flight_and_ends_at_the_budget(tmp_path):
    cfg = config(group=3)
    s = study(tmp_path, cfg)
    factory = FakeFactory()
    assert SearchWorker(s, cfg, evaluator_factory=factory).run() == 10
    assert factory.built[0].calls == [3, 3, 3, 1]  # the last group is cut to the budget
    trials = used(s)
    assert len(trials) == 10 == len(s.get_trials())  # no surplus trial was reserved
    keys = [t.user_attrs["key"] for t in trials]
    assert len(set(keys)) == len(keys)


@pytest.mark.fmnist
def test_random_search_in_groups_asks_and_scores_what_one_at_a_time_does(tmp_path):
    """Random proposals do not depend on results, so the k-th trial is the same candidate
    whatever the group; trained together it scores as it does alone."""
    runs = {}
    for group in (1, 3):
        cfg = config(strategy="random", strategy_options={}, profile=NANO, budget=6, group=group)
        s = study(tmp_path, cfg, name=f"g{group}")
        SearchWorker(s, cfg, evaluator_factory=RealFactory()).run()
        runs[group] = {t.number: t for t in used(s)}
    assert sorted(runs[1]) == sorted(runs[3]) == list(range(6))
    for number, alone in runs[1].items():
        together = runs[3][number]
        assert together.user_attrs["key"] == alone.user_attrs["key"]
        assert together.state is alone.state
        if alone.state is TrialState.COMPLETE:
            assert together.value == pytest.approx(alone.value, abs=1 / 128 + 1e-9)


def test_ctrl_c_in_a_group_interrupts_all_of_it_and_a_rerun_finishes(tmp_path):
    cfg = config(group=3)
    s = study(tmp_path, cfg)
    with pytest.raises(KeyboardInterrupt):
        SearchWorker(s, cfg, evaluator_factory=FakeFactory(crash_at=4)).run()
    interrupted = [
        t.number for t in s.get_trials() if t.user_attrs.get("failure_kind") == "interrupted"
    ]
    assert interrupted == [3, 4, 5]  # the whole second group, not only the request that broke
    SearchWorker(s, cfg, evaluator_factory=FakeFactory()).run()
    trials = used(s)
    assert len(trials) == 10
    retried = {t.user_attrs["retry_of"] for t in trials if t.user_attrs.get("retry_of") is not None}
    assert retried == {3, 4, 5}


def test_group_must_be_positive():
    with pytest.raises(ConfigError, match="group must be at least 1"):
        dataclasses.replace(config(), group=0)
