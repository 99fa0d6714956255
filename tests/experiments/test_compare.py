"""Comparisons: one study per (arm, seed), re-evaluation, and facts recomputable from storage.

Real training throughout, with the 40-step cut of micro (a few tenths of a second a candidate).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from search_fakes import MICRO_SHORT

from nlfs.errors import ConfigError
from nlfs.experiments.arms import base_table, strategy_arms, variant_arms
from nlfs.experiments.compare import (
    FRESH_SEED_OFFSET,
    Comparison,
    collect,
    prepare_reevaluation,
    run_searches,
)
from nlfs.experiments.grid import run_local
from nlfs.search.runner import total_rejections
from nlfs.search.workers import run_search
from nlfs.storage import resolve_storage

pytestmark = pytest.mark.fmnist


def _strategy_comparison(**kwargs) -> Comparison:
    table, where = base_table("default")
    overrides = {"profile": MICRO_SHORT, "device": "cpu"}
    arms = strategy_arms(["random", "regevo"], table, where, overrides)
    options = {"budget": 5, "reevaluate": 2, "top_k": 2, **kwargs}
    return Comparison(kind="compare", name="cmp", arms=tuple(arms), seeds=(0, 1), **options)


def _run(comparison: Comparison, storage: str) -> dict:
    run_searches(comparison, storage, run=run_search)
    study, _, _ = prepare_reevaluation(comparison, storage)
    run_local(study.study_name, storage, device="cpu")
    return collect(comparison, storage)


def _trials(storage: str, name: str):
    study = optuna.load_study(study_name=name, storage=resolve_storage(storage, name))
    return study, study.get_trials(deepcopy=False)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    storage = str(tmp_path_factory.mktemp("compare") / "cmp.journal")
    comparison = _strategy_comparison()
    return comparison, storage, _run(comparison, storage)


def test_every_fact_is_recomputed_from_the_stored_trials(compared):
    comparison, storage, facts = compared
    _, reeval_trials = _trials(storage, "cmp-reevaluate")
    fitness = {
        (t.user_attrs.get("study"), t.user_attrs.get("trial"), t.user_attrs["seed"]): (
            t.user_attrs["fitness"] if t.state is TrialState.COMPLETE else 0.0
        )
        for t in reeval_trials
        if t.state.is_finished()
    }
    fresh = [FRESH_SEED_OFFSET + i for i in range(2)]
    assert facts["reevaluation_seeds"] == fresh
    assert facts["baseline"]["fitness"] == fitness[(None, None, 0)]
    assert facts["baseline"]["reevaluated"] == [fitness[(None, None, s)] for s in fresh]
    assert [a["name"] for a in facts["arms"]] == ["random", "regevo"]
    for arm in facts["arms"]:
        assert [s["seed"] for s in arm["studies"]] == [0, 1]
        for entry in arm["studies"]:
            study, trials = _trials(storage, entry["study"])
            done = sorted((t for t in trials if t.state.is_finished()), key=lambda t: t.number)
            values = [t.value if t.state is TrialState.COMPLETE else None for t in done]
            assert entry["evaluations"] == len(done) == 5
            assert entry["ok"] == sum(v is not None for v in values)
            best_so_far = [
                max((v for v in values[: i + 1] if v is not None), default=None)
                for i in range(len(values))
            ]
            assert entry["curve"]["best"] == best_so_far
            assert entry["curve"]["seconds"] == pytest.approx(
                np.cumsum([t.user_attrs["seconds"] for t in done]).tolist()
            )
            assert entry["auc"] == pytest.approx(np.mean([b or 0.0 for b in best_so_far]))
            assert entry["best_fitness"] == max(v for v in values if v is not None)
            rejections = total_rejections(study.user_attrs)
            assert entry["rejected"] == sum(rejections.values())
            assert entry["distinct_keys"] == len({t.user_attrs["key"] for t in done})
            ranked = sorted(
                (t for t in done if t.state is TrialState.COMPLETE),
                key=lambda t: (-t.value, t.number),
            )[:2]
            assert [top["trial"] for top in entry["top"]] == [t.number for t in ranked]
            for top in entry["top"]:
                again = [fitness[(entry["study"], top["trial"], s)] for s in fresh]
                assert top["reevaluated"] == again
                assert top["reevaluated_mean"] == pytest.approx(np.mean(again))
            assert entry["reevaluated_best"] == max(t["reevaluated_mean"] for t in entry["top"])
            baseline = facts["baseline"]["fitness"]
            reached = [i + 1 for i, b in enumerate(best_so_far) if b is not None and b >= baseline]
            assert entry["evals_to_baseline"] == (reached[0] if reached else None)


def test_studies_share_the_evaluation_seed_and_differ_by_search_seed(compared):
    _, storage, facts = compared
    attrs = [
        _trials(storage, s["study"])[0].user_attrs for arm in facts["arms"] for s in arm["studies"]
    ]
    assert {a["config"]["eval_seed"] for a in attrs} == {0}
    assert sorted((a["strategy"], a["seed"]) for a in attrs) == [
        ("random", 0),
        ("random", 1),
        ("regevo", 0),
        ("regevo", 1),
    ]


def test_a_rerun_reuses_finished_studies_without_training(compared, monkeypatch):
    comparison, storage, facts = compared

    def no_training(*args, **kwargs):
        raise AssertionError("a finished comparison must not train again")

    monkeypatch.setattr("nlfs.evaluation.evaluator.Evaluator.evaluate", no_training)
    counts = {
        s["study"]: len(_trials(storage, s["study"])[1])
        for a in facts["arms"]
        for s in a["studies"]
    }
    seen = []
    run_searches(
        comparison, storage, run=run_search, on_study=lambda i, n, name, reused: seen.append(reused)
    )
    _, todo = prepare_reevaluation(comparison, storage)[1:]
    assert seen == [True] * 4 and todo == 0
    assert {name: len(_trials(storage, name)[1]) for name in counts} == counts
    assert collect(comparison, storage) == facts


def test_a_changed_configuration_is_refused(compared):
    _, storage, _ = compared
    table, where = base_table("default")
    arms = strategy_arms(["random", "regevo"], table, where, {"device": "cpu"})  # micro, not short
    changed = Comparison(kind="compare", name="cmp", arms=tuple(arms), seeds=(0, 1), budget=5)
    with pytest.raises(ConfigError, match="config"):
        run_searches(changed, storage, run=run_search)


def test_a_time_budget_stops_each_study_once_its_training_seconds_reach_it(tmp_path):
    storage = str(tmp_path / "t.journal")
    comparison = _strategy_comparison(time_budget_s=0.6, reevaluate=0, top_k=1)
    run_searches(comparison, storage, run=partial(run_search))
    for _, _, name in comparison.studies():
        done = [t for t in _trials(storage, name)[1] if t.state.is_finished()]
        seconds = [t.user_attrs["seconds"] for t in sorted(done, key=lambda t: t.number)]
        assert sum(seconds) >= 0.6 > sum(seconds[:-1])


def test_ablation_arms_merge_variants_over_the_base_config(tmp_path):
    table, where = base_table("default")
    arms = variant_arms(["cell", "cell_hidden2", "tree"], table, where, {"strategy": "random"})
    assert [a.config.space for a in arms] == ["cell", "cell", "tree"]
    assert arms[1].config.space_options == {"hidden": 2}
    assert {a.config.strategy for a in arms} == {"random"}
    assert len({a.config.hash() for a in arms}) == 3
    assert all(a.description for a in arms)


def test_user_variants_from_the_config_file_and_clear_errors(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text(
        '[search]\nprofile = "micro"\n'
        '[variants.tiny]\ndescription = "one hidden node"\n[variants.tiny.space.cell]\nhidden = 1\n'
        '[variants.bare]\n[variants.bare.search]\nspace = "tree"\n'
    )
    table, where = base_table(str(user))
    (tiny,) = variant_arms(["tiny"], table, where, {})
    assert tiny.config.space_options == {"hidden": 1} and tiny.description == "one hidden node"
    with pytest.raises(ConfigError, match="description"):
        variant_arms(["bare"], table, where, {})
    with pytest.raises(ConfigError, match="known: .*cell_hidden2.*tiny"):
        variant_arms(["nope"], table, where, {})
    other = tmp_path / "other.toml"
    other.write_text(
        '[variants.slow]\ndescription = "x"\n[variants.slow.search]\nprofile = "quick"\n'
    )
    table, where = base_table(str(other))
    with pytest.raises(ConfigError, match="scored the same way"):
        variant_arms(["cell", "slow"], table, where, {})
