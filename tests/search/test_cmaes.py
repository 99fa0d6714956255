"""The cmaes strategy: refusals, seeds, replay across generations, convergence, restarts, and
real tiny searches on the taylor space (cmaes with resume, and every strategy that takes it).

The Strategy contract suite (tests/search/test_strategy_contract.py) runs over cmaes too.
"""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from search_fakes import MICRO_SHORT, RealFactory, shared_real_factory
from strategy_fakes import make_screen, make_space

from nlfs.cli import cli
from nlfs.errors import ConfigError
from nlfs.evaluation.results import State
from nlfs.screening.screen import Screen
from nlfs.search.config import SearchConfig
from nlfs.search.strategy import TrialRecord, get_strategy
from nlfs.search.workers import run_search
from nlfs.spaces.taylor import TaylorSpace
from nlfs.storage import resolve_storage
from strategies.cmaes import CMAESStrategy

optuna.logging.set_verbosity(optuna.logging.WARNING)

TARGET = np.array([0.5, -0.25, 1.0, 2.0, -1.0, -2.0, 0.5, 0.0])
"""Optimum of the synthetic objective: a loss the screen accepts (close to squared error)."""


def distance(candidate) -> float:
    return float(np.linalg.norm(np.array(candidate.genome) - TARGET))


def quadratic_trial(number: int, candidate, fail_every: int = 0) -> TrialRecord:
    """Fitness 1 - |theta - TARGET|^2 / 100; with ``fail_every``, every such trial diverges."""
    if fail_every and number % fail_every == fail_every - 1:
        return TrialRecord(number, candidate, State.DIVERGED, None)
    return TrialRecord(number, candidate, State.OK, 1.0 - distance(candidate) ** 2 / 100)


def run(strategy: CMAESStrategy, asks: int, fail_every: int = 0) -> list[TrialRecord]:
    """Ask one, score it, tell it, ``asks`` times (trial number = ask index)."""
    records = []
    for _ in range(asks):
        (candidate,) = strategy.ask(1)
        records.append(quadratic_trial(strategy.asked - 1, candidate, fail_every))
        strategy.tell(records[-1:])
    return records


def cmaes(seed: int = 0, screen: Screen | None = None, **options) -> CMAESStrategy:
    space = TaylorSpace(bound=4.0)
    return CMAESStrategy(space, seed=seed, screen=screen or Screen(dedupe=False), **options)


@pytest.mark.parametrize("space", ["cell", "tree"])
def test_refuses_spaces_without_a_continuous_encoding_in_one_line(space):
    """cell (categorical) and tree (no encoding) are refused, naming the remedy."""
    with pytest.raises(ConfigError, match=f"continuous encoding; space '{space}'") as info:
        CMAESStrategy(make_space(space), screen=make_screen())
    assert "--space taylor" in str(info.value) and "\n" not in str(info.value)


def test_the_cli_refuses_cmaes_on_cell_before_any_storage(tmp_path):
    journal = tmp_path / "s.journal"
    result = CliRunner().invoke(cli, ["search", "--storage", str(journal), "--strategy", "cmaes"])
    assert isinstance(result.exception, ConfigError) and "--space taylor" in str(result.exception)
    assert not journal.exists()


@pytest.mark.parametrize("options", [{"population": 3}, {"sigma0": 0.0}, {"sigma0": 2.0}])
def test_bad_options_are_config_errors(options):
    with pytest.raises(ConfigError, match="strategy 'cmaes'"):
        cmaes(**options)


def test_generations_advance_on_ok_results_only():
    """A generation ends after `population` ok trials of it; a failure is replaced, not told."""
    strategy = cmaes(population=4)
    records = run(strategy, 15, fail_every=3)  # trials 2, 5, 8, 11, 14 diverge
    generations = [r.candidate.params["generation"] for r in records]
    # ok trials 0, 1, 3, 4 end generation 0; 6, 7, 9, 10 end generation 1.
    assert generations == [0] * 5 + [1] * 6 + [2] * 4
    assert strategy.generation == 2


def test_same_seed_same_candidates_other_seed_others():
    first = [r.candidate.genome for r in run(cmaes(seed=4, population=4), 12)]
    assert first == [r.candidate.genome for r in run(cmaes(seed=4, population=4), 12)]
    assert first != [r.candidate.genome for r in run(cmaes(seed=5, population=4), 12)]


def test_replay_across_generations_gives_the_same_next_asks():
    """Told the history of 5 generations (with failures), a fresh instance asks as the original."""
    original = cmaes(seed=2, population=4)
    records = run(original, 23, fail_every=7)
    screen = Screen.rebuild([r.candidate.expression for r in records], dedupe=False)
    replayed = cmaes(seed=2, screen=screen, population=4)
    replayed.tell(records)
    replayed.asked = original.asked
    assert replayed.generation == original.generation >= 4
    assert [c.genome for c in replayed.ask(6)] == [c.genome for c in original.ask(6)]


def test_converges_on_a_quadratic_despite_failures():
    """About 60 generations bring the proposals from ~5 away (the initial spread around the
    centre) to within 0.2 of the optimum (0.02 to 0.05 over seeds 0-5), failures and all."""
    strategy = cmaes(seed=1, population=8)
    records = run(strategy, 560, fail_every=9)
    first, last = records[:8], records[-8:]
    assert np.mean([distance(r.candidate) for r in first]) > 3.0
    assert np.mean([distance(r.candidate) for r in last]) < 0.2
    assert strategy.restarts == 0


def test_a_flat_objective_makes_cmaes_restart_and_keep_asking():
    """Equal fitness everywhere trips CMA-ES's stop rule (flat over 10 + 30 n / population = 70
    generations); it restarts from the initial spread."""
    strategy = cmaes(seed=3, population=4)
    for number in range(400):
        (candidate,) = strategy.ask(1)
        strategy.tell([TrialRecord(number, candidate, State.OK, 0.5)])
        if strategy.restarts:
            break
    assert strategy.restarts == 1
    spread = [c.genome for c in strategy.ask(8)]
    assert np.std(np.array(spread), axis=0).mean() > 0.3  # back to sigma0 = 1/6 of the range


# --- real tiny searches (the micro profile cut to 40 steps) ----------------------------------


def taylor_config(strategy: str, budget: int, options: dict) -> SearchConfig:
    return SearchConfig(
        strategy=strategy,
        space="taylor",
        profile=MICRO_SHORT,
        budget=budget,
        seed=3,
        eval_seed=5,
        device="cpu",
        strategy_options=options,
    )


def outcomes(path) -> list[tuple]:
    """(key, fitness, failure kind, generation) of each counted trial, in number order."""
    study = optuna.load_study(study_name="s", storage=resolve_storage(str(path), "s"))
    return [
        (t.user_attrs["key"], t.value, t.user_attrs["failure_kind"], generation(t))
        for t in study.get_trials()
        if t.user_attrs.get("failure_kind") not in ("interrupted", "surplus")
    ]


def generation(trial) -> int:
    return trial.user_attrs["params"]["generation"]


@pytest.mark.fmnist
def test_a_resumed_cmaes_search_equals_an_unbroken_one(tmp_path):
    """Stopped after 2 real trials and resumed to 6, cmaes (population 4) asks what one
    unbroken run asks: the generation update after 4 ok trials is rebuilt from storage."""
    options = {"population": 4}
    whole = tmp_path / "whole"
    run_search(
        taylor_config("cmaes", 6, options),
        study_name="s",
        storage=str(whole),
        evaluator_factory=RealFactory(),
    )
    split = tmp_path / "split"
    run_search(
        taylor_config("cmaes", 2, options),
        study_name="s",
        storage=str(split),
        evaluator_factory=RealFactory(),
    )
    again = RealFactory()
    run_search(
        taylor_config("cmaes", 6, options),
        study_name="s",
        storage=str(split),
        evaluator_factory=again,
    )
    assert len(again.seen) == 4, "the resumed run re-evaluated finished trials"
    unbroken = outcomes(whole)
    assert outcomes(split) == unbroken and len(unbroken) == 6
    assert unbroken[-1][-1] == 1, "the resumed part never reached a second generation"


@pytest.mark.fmnist
@pytest.mark.parametrize("strategy", ["cmaes", "random", "tpe", "regevo"])
def test_nlfs_search_runs_every_strategy_on_the_taylor_space(tmp_path, monkeypatch, strategy):
    """`nlfs search --space taylor --strategy S --budget 2` trains real candidates and stores
    them as expressions with real literals."""
    monkeypatch.setattr("nlfs.search.runner.default_evaluator", shared_real_factory)
    journal = tmp_path / "s.journal"
    args = ["search", "--space", "taylor", "--strategy", strategy, "--budget", "2",
            "--profile", MICRO_SHORT, "--study", "s", "--storage", str(journal),
            "--device", "cpu", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["finished"] == 2
    space = TaylorSpace()
    study = optuna.load_study(study_name="s", storage=resolve_storage(str(journal), "s"))
    for trial in study.get_trials():
        genome = space.from_json(trial.user_attrs["genome"])
        assert space.canonical(genome) == trial.user_attrs["expression"]
    assert get_strategy(strategy).name == strategy
