"""The Strategy contract, checked for every registered strategy (the test plugin's included).

Real spaces (``cell``; ``tree`` where the strategy accepts it), the screen, and a synthetic
fitness computed from the expression: no training anywhere.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from strategy_fakes import drive, make_screen, make_space, plugin_on_path, synthetic_trial

from nlfs.errors import ConfigError
from nlfs.evaluation.results import State
from nlfs.search.strategy import TrialRecord, available_strategies, get_strategy

with plugin_on_path():
    NAMES = sorted(available_strategies())

SMALL = {  # options that make each strategy reach its model-based phase within a few asks
    "regevo": {"population": 5, "tournament": 3},
    "tpe": {"n_startup_trials": 4},
}
STEPS = 12


@pytest.fixture
def build():
    """build(name, space_name, seed=0, screen=None) -> a strategy, skipping refused spaces.

    Without a space name: ``cell``, or ``taylor`` for a strategy that refuses ``cell``
    (``cmaes`` needs a continuous encoding)."""
    with plugin_on_path():
        classes = available_strategies()

    def make(name, space_name=None, seed=0, screen=None, **options):
        cls = classes[name]
        if space_name is None:
            space_name = "cell" if cls.refusal(make_space("cell")) is None else "taylor"
        space = make_space(space_name)
        if cls.refusal(space) is not None:
            pytest.skip(f"{name} refuses space {space_name} (covered by its own test)")
        options = {**SMALL.get(name, {}), **options}
        return cls(space, seed=seed, screen=screen or make_screen(), **options)

    return make


def signature(candidates):
    return [(c.key, c.parent, c.mutation, c.phase, dict(c.params)) for c in candidates]


def test_builtins_are_registered():
    """The three built-ins are found through the entry point group."""
    assert {"regevo", "random", "tpe"} <= set(NAMES)
    assert "echo_test" in NAMES


@pytest.mark.parametrize("space_name", ["cell", "tree", "taylor"])
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_candidates(build, name, space_name):
    """Two instances with the same seed, fed the same results, propose the same candidates."""
    runs = []
    for _ in range(2):
        strategy = build(name, space_name, seed=7)
        runs.append(signature(r.candidate for r in drive(strategy, STEPS)))
    assert runs[0] == runs[1]
    other = build(name, space_name, seed=8)
    assert signature(r.candidate for r in drive(other, STEPS)) != runs[0]


@pytest.mark.parametrize("space_name", ["cell", "tree", "taylor"])
@pytest.mark.parametrize("name", NAMES)
def test_replay_gives_same_next_ask(build, name, space_name):
    """A fresh instance told the history (screen rebuilt, asked set) asks as the original would."""
    original = build(name, space_name, seed=3)
    records = drive(original, STEPS)
    screen = make_screen([r.candidate.expression for r in records])
    replayed = build(name, space_name, seed=3, screen=screen)
    replayed.tell(records)
    replayed.asked = original.asked
    assert signature(replayed.ask(3)) == signature(original.ask(3))


@pytest.mark.parametrize("name", NAMES)
def test_failed_and_nan_trials_tolerated(build, name):
    """Failed and NaN trials are told without error and never become a parent."""
    strategy = build(name)
    records = drive(strategy, STEPS + 4, failures=True)
    by_number = {r.number: r for r in records}
    assert any(r.state is State.NAN for r in records)
    assert any(r.state is State.OK and not r.ok for r in records)  # ok but NaN fitness
    for r in records:
        if r.candidate.parent is not None:
            assert by_number[r.candidate.parent].ok, f"trial {r.number} bred from a failed trial"
    assert len(strategy.history) == len(records)


@pytest.mark.parametrize("name", NAMES)
def test_all_failures_keep_working(build, name):
    """A strategy whose every trial fails still proposes distinct candidates."""
    strategy = build(name)
    keys = []
    for number in range(12):
        (candidate,) = strategy.ask(1)
        strategy.tell([TrialRecord(number, candidate, State.DIVERGED, None)])
        keys.append(candidate.key)
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("name", NAMES)
def test_global_rng_untouched(build, name):
    """Asking and telling leave the global random, numpy and torch generators as they were."""
    random.seed(1234)
    np.random.seed(1234)
    torch.manual_seed(1234)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    drive(build(name), STEPS)
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])


@pytest.mark.parametrize("name", NAMES)
def test_inputs_not_mutated(build, name):
    """tell does not modify the records or their candidates' params."""
    source = build(name, seed=1)
    records = drive(source, STEPS)
    snapshot = copy.deepcopy(records)
    listing = list(records)
    build(name, seed=2).tell(records)
    assert records == listing
    assert [dict(r.candidate.params) for r in records] == [
        dict(r.candidate.params) for r in snapshot
    ]
    assert records == snapshot


@pytest.mark.parametrize("space_name", ["cell", "taylor"])
@pytest.mark.parametrize("name", NAMES)
def test_outstanding_asks(build, name, space_name):
    """Many asks before any tell work (parallel workers), then telling them all works too."""
    strategy = build(name, space_name)
    first = strategy.ask(8) + strategy.ask(8)
    assert len({c.key for c in first}) == 16
    strategy.tell([synthetic_trial(i, c) for i, c in enumerate(first)])
    more = strategy.ask(4)
    assert len({c.key for c in first + more}) == 20
    assert strategy.asked == 20


@pytest.mark.parametrize("space_name", ["cell", "taylor"])
@pytest.mark.parametrize("name", NAMES)
def test_candidates_screened_and_distinct(build, name, space_name):
    """Every candidate passes a fresh screen on its own and no key repeats."""
    strategy = build(name, space_name)
    records = drive(strategy, STEPS)
    keys = [r.candidate.key for r in records]
    assert len(set(keys)) == len(keys)
    judge = make_screen()
    for r in records:
        verdict = judge.check(strategy.space, r.candidate.genome, record=False)
        assert verdict.accepted, (r.candidate.expression, verdict.reason)
        assert verdict.key == r.candidate.key
        assert verdict.sign == r.candidate.sign
        assert verdict.expression == r.candidate.expression


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_lists_valid_ones(name):
    """A misspelled option raises ConfigError naming the valid options."""
    with plugin_on_path():
        cls = get_strategy(name)
    with pytest.raises(ConfigError, match="unknown option") as info:
        cls(make_space("cell"), screen=make_screen(), no_such_option=1)
    for option in cls.defaults:
        assert option in str(info.value)
