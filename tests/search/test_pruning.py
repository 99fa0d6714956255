"""Pruning rules: their decisions equal Optuna's pruners' on the same stored trials; config.

Each trial's curve is reported to a real Optuna study whose pruner decides at every point (the
reference); our rule decides on the same points from the trials Optuna stored (intermediate
values only, read as the runner's TrialCache hands them over). Curves are random with crossing
ranks, so both prune and keep decisions occur.
"""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nlfs.errors import ConfigError
from nlfs.search.config import SearchConfig, config_from_table, load_search_config
from nlfs.search.pruning import Population, PruningConfig, make_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)

STEPS = (50, 100, 150, 200)


class StoredTrials:
    """The two things a Population reads from a TrialCache, filled from an Optuna study."""

    def __init__(self) -> None:
        self.finished_log: list[optuna.trial.FrozenTrial] = []

    def running(self) -> list[optuna.trial.FrozenTrial]:
        return []


def random_curves(n: int, seed: int) -> list[list[tuple[int, float]]]:
    """Noisy rising curves whose ranks cross between steps."""
    rng = np.random.default_rng(seed)
    curves = []
    for _ in range(n):
        level, slope = rng.uniform(0.3, 0.7), rng.uniform(0.0, 0.2)
        curves.append(
            [(s, float(level + slope * i + rng.normal(0, 0.05))) for i, s in enumerate(STEPS)]
        )
    return curves


def decisions(reference: optuna.pruners.BasePruner, config: PruningConfig, seed: int):
    """(Optuna's decisions, ours) at every point of 40 trials run one after another."""
    study = optuna.create_study(direction="maximize", pruner=reference)
    stored = StoredTrials()
    population, rule = Population(stored), make_pruner(config)
    theirs, ours = [], []
    for curve in random_curves(40, seed):
        trial = study.ask()
        pruned = False
        for i, (step, value) in enumerate(curve):
            trial.report(value, step)
            theirs.append(trial.should_prune())
            ours.append(rule.should_prune(curve[: i + 1], population, trial.number))
            if theirs[-1]:
                pruned = True
                break
        if pruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, max(v for _, v in curve))
        stored.finished_log.append(study.get_trials(deepcopy=False)[-1])
    return theirs, ours


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"n_startup_trials": 3, "n_warmup_steps": 100},
        {"n_startup_trials": 0, "interval_steps": 100, "n_min_trials": 4},
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_median_rule_decides_as_optunas_median_pruner(options, seed):
    """Same stored trials, same point: prune exactly when Optuna's MedianPruner prunes."""
    config = PruningConfig(rule="median", **options)
    reference = optuna.pruners.MedianPruner(
        n_startup_trials=config.n_startup_trials,
        n_warmup_steps=config.n_warmup_steps,
        interval_steps=config.interval_steps,
        n_min_trials=config.n_min_trials,
    )
    theirs, ours = decisions(reference, config, seed)
    assert ours == theirs
    assert any(theirs) and not all(theirs)


@pytest.mark.parametrize(
    "options",
    [
        {"min_resource": 50, "reduction_factor": 2},
        {"min_resource": 50, "reduction_factor": 3, "bootstrap_count": 2},
        {"min_resource": 25, "reduction_factor": 2, "min_early_stopping_rate": 1},
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_halving_rule_decides_as_optunas_successive_halving(options, seed):
    """Same stored trials, same point: prune exactly when Optuna's SuccessiveHalvingPruner
    prunes (its rung values live in system attributes; ours come from the curves)."""
    config = PruningConfig(rule="halving", n_startup_trials=0, **options)
    reference = optuna.pruners.SuccessiveHalvingPruner(
        min_resource=config.min_resource,
        reduction_factor=config.reduction_factor,
        min_early_stopping_rate=config.min_early_stopping_rate,
        bootstrap_count=config.bootstrap_count,
    )
    theirs, ours = decisions(reference, config, seed)
    assert ours == theirs
    assert any(theirs) and not all(theirs)


def test_halving_waits_for_startup_trials():
    """With n_startup_trials, no candidate is stopped before that many trials completed."""
    config = PruningConfig(rule="halving", n_startup_trials=5, min_resource=50)
    reference = optuna.pruners.SuccessiveHalvingPruner(min_resource=50, reduction_factor=3)
    theirs, ours = decisions(reference, config, 0)
    per_trial = len(STEPS)
    assert not any(ours[: 5 * per_trial])  # the first 5 trials run to the end (4 points each)
    assert any(ours)


def test_running_peers_compete_at_a_rung():
    """A running trial of another worker counts at a rung it reached (as in Optuna)."""

    class Running(StoredTrials):
        def running(self):
            return [
                optuna.trial.create_trial(
                    state=TrialState.COMPLETE, value=0.9, intermediate_values={50: 0.9}
                )
            ]

    population = Population(Running())
    rule = make_pruner(PruningConfig(rule="halving", n_startup_trials=0, reduction_factor=2))
    assert rule.should_prune([(50, 0.5)], population)
    assert not rule.should_prune([(50, 0.95)], population)


def test_no_rule_never_prunes():
    config = PruningConfig()
    assert config.rule == "none"
    stored = StoredTrials()
    assert not make_pruner(config).should_prune([(50, 0.0)], Population(stored))


def test_pruning_table_is_read_and_validated():
    table = {"search": {"budget": 5}, "pruning": {"rule": "median", "n_warmup_steps": 50}}
    config = config_from_table(table, where="t.toml")
    assert config.pruning == PruningConfig(rule="median", n_warmup_steps=50)
    with pytest.raises(ConfigError, match="unknown key.*rul.*valid keys: rule"):
        config_from_table({"pruning": {"rul": "median"}}, where="t.toml")
    with pytest.raises(ConfigError, match="rule must be one of none, median, halving"):
        config_from_table({"pruning": {"rule": "hyperband"}}, where="t.toml")
    with pytest.raises(ConfigError, match="reduction_factor must be at least 2"):
        config_from_table({"pruning": {"rule": "halving", "reduction_factor": 1}}, where="t.toml")
    with pytest.raises(ConfigError, match="cannot set 'pruning'"):
        config_from_table({"search": {"pruning": {}}}, where="t.toml")


def test_no_pruning_keeps_the_hash_of_configs_stored_before_pruning():
    """A study stored before [pruning] existed resumes: rule none is left out of the hash."""
    plain = SearchConfig()
    assert "pruning" not in plain.hashed_dict()
    assert plain.hash() != SearchConfig(pruning=PruningConfig(rule="median")).hash()


def test_default_search_prunes_with_the_median_rule():
    assert load_search_config().pruning.rule == "median"


def test_rung_steps():
    config = PruningConfig(rule="halving", min_resource=200, reduction_factor=3)
    assert config.rung_steps(1800) == [200, 600, 1800]
