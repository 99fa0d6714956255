"""Fidelity: a deterministic stratified pick, anchors, facts read back from storage, no re-training.

A small real search (the 40-step micro cut) is ranked on the nano transfer grid as target.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from optuna.trial import TrialState, create_trial
from search_fakes import MICRO_SHORT

from nlfs.errors import ConfigError
from nlfs.experiments.fidelity import (
    ALWAYS_TOP,
    ANCHORS,
    SURROGATE_SEED_OFFSET,
    Fidelity,
    collect,
    load_target,
    pick,
    prepare,
)
from nlfs.experiments.grid import run_local
from nlfs.search.config import load_search_config
from nlfs.search.workers import run_search
from nlfs.storage import load_existing_study

NANO_GRID = str(Path(__file__).parents[1] / "profiles" / "nano_transfer.toml")


def _trials(values):
    """Completed trials numbered in order (a None value: a failed trial)."""
    out = []
    for number, value in enumerate(values):
        if value is None:
            trial = create_trial(state=TrialState.FAIL)
        else:
            trial = create_trial(value=value)
        trial.number = number
        out.append(trial)
    return out


def test_the_pick_keeps_the_top_spreads_the_rest_and_follows_the_seed():
    values = [float(v) for v in np.random.default_rng(3).permutation(100) / 100]
    trials = _trials([*values, None, None])  # failed trials are never picked
    chosen = pick(trials, 10, seed=0)
    numbers = [t.number for t in chosen]
    assert len(chosen) == 10 and len(set(numbers)) == 10
    ranked = sorted(range(100), key=lambda i: -values[i])
    assert numbers[:ALWAYS_TOP] == ranked[:ALWAYS_TOP]
    # one pick per stratum of the remaining 97 ranks: 7 strata of 13 or 14
    ranks = sorted(ranked.index(n) - ALWAYS_TOP for n in numbers[ALWAYS_TOP:])
    bounds = [(s[0], s[-1]) for s in np.array_split(np.arange(97), 7)]
    assert all(lo <= r <= hi for r, (lo, hi) in zip(ranks, bounds, strict=True))
    assert [t.number for t in pick(list(reversed(trials)), 10, seed=0)] == numbers
    assert [t.number for t in pick(trials, 10, seed=1)] != numbers
    assert [t.number for t in pick(trials[:5], 10, seed=0)] == sorted(
        range(5), key=lambda i: -values[i]
    )


def test_a_pick_no_larger_than_the_top_is_the_top():
    values = [float(v) for v in np.random.default_rng(4).permutation(20) / 20]
    ranked = sorted(range(20), key=lambda i: -values[i])
    assert [t.number for t in pick(_trials(values), ALWAYS_TOP, seed=0)] == ranked[:ALWAYS_TOP]


def test_a_profile_is_a_one_setting_target_and_unknown_names_are_refused():
    target = load_target("micro")
    assert (target.archs, target.datasets, target.augment, target.seeds) == (
        ("tiny_cnn",),
        ("fashion-mnist",),
        ("none",),
        2,
    )
    assert load_target("fidelity_cpu").archs == ("small_cnn",)
    with pytest.raises(ConfigError, match="no config named"):
        load_target("nope")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    storage = str(tmp_path_factory.mktemp("fidelity") / "f.journal")
    config = load_search_config("ci", {"profile": MICRO_SHORT, "budget": 8, "device": "cpu"})
    run_search(config, study_name="s", storage=storage)
    experiment = Fidelity("s", load_target(NANO_GRID), candidates=4, top=3)
    study, total, todo = prepare(experiment, storage)
    run_local(study.study_name, storage, device="cpu")
    return experiment, storage, total, todo, collect(experiment, storage)


@pytest.mark.fmnist
def test_facts_are_the_stored_results_with_anchors(measured):
    experiment, storage, total, todo, facts = measured
    search = load_existing_study("s", storage)
    grid = load_existing_study("s-fidelity", storage)
    assert total == todo == len(grid.get_trials(deepcopy=False))
    done = {t.user_attrs["job"]: t for t in grid.get_trials(deepcopy=False)}
    assert all(t.state.is_finished() for t in done.values())
    assert [a["label"] for a in facts["anchors"]] == list(ANCHORS)
    assert len(facts["candidates"]) == 4 and facts["target_seeds"] == [0, 1]
    fresh = search.user_attrs["config"]["eval_seed"] + SURROGATE_SEED_OFFSET
    for entry in facts["candidates"]:
        trial = next(t for t in search.get_trials() if t.number == entry["trial"])
        assert entry["surrogate"][0] == trial.value
        again = done[f"surrogate|{entry['label']}|{fresh}"]
        assert entry["surrogate"][1] == again.user_attrs["fitness"]
        for seed, value in zip(facts["target_seeds"], entry["target"], strict=True):
            job = done[f"{entry['label']}|tiny_cnn|fashion-mnist|none|{seed}"]
            expected = job.user_attrs["final_acc"] if job.state is TrialState.COMPLETE else 0.0
            assert value == expected
    fitness = [c["surrogate"][0] for c in facts["candidates"]]
    assert fitness == sorted(fitness, reverse=True)
    ce = next(a for a in facts["anchors"] if a["label"] == "ce")
    assert facts["cross_entropy"]["target"] == pytest.approx(np.mean(ce["target"]))


@pytest.mark.fmnist
def test_a_rerun_trains_nothing_and_a_changed_pick_is_refused(measured, monkeypatch):
    experiment, storage, _, _, facts = measured

    def no_training(*args, **kwargs):
        raise AssertionError("a finished fidelity grid must not train again")

    monkeypatch.setattr("nlfs.evaluation.evaluator.Evaluator.evaluate", no_training)
    _, _, todo = prepare(experiment, storage)
    assert todo == 0
    assert collect(experiment, storage) == facts
    with pytest.raises(ConfigError, match="config"):
        prepare(dataclasses.replace(experiment, candidates=5), storage)
