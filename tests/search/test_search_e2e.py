"""End to end through the runner with the real evaluator: every strategy on the nano profile,
and one real search on micro that must find a loss close to cross-entropy."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from search_fakes import NANO, shared_real_factory

from nlfs.evaluation.results import EvalRequest
from nlfs.screening import loss_from_spec
from nlfs.search.config import load_search_config
from nlfs.search.workers import run_search

optuna.logging.set_verbosity(optuna.logging.WARNING)

REQUIRED = {
    "expression",
    "key",
    "sign",
    "parent",
    "mutation",
    "eval_seed",
    "failure_kind",
    "device",
    "seconds",
}


@pytest.mark.fmnist
@pytest.mark.parametrize("strategy", ["regevo", "random", "tpe"])
def test_each_strategy_searches_and_records_an_optuna_study(tmp_path, strategy):
    config = load_search_config(
        "ci", {"strategy": strategy, "profile": NANO, "budget": 3, "device": "cpu"}
    )
    journal = tmp_path / "study.journal"
    summary = run_search(
        config, study_name="e2e", storage=str(journal), evaluator_factory=shared_real_factory
    )
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


CLOSE_TO_CE = 0.02  # accuracy a found loss may lose to cross-entropy on micro and still count


def fitness_or_floor(result) -> float:
    """A result's fitness for ranking; a failed run (no fitness) ranks below every fitness."""
    return result.fitness if result.fitness is not None else float("-inf")


@pytest.mark.fmnist
def test_a_real_micro_search_ranks_label_blind_losses_low_and_finds_one_near_cross_entropy(
    tmp_path,
):
    """24 micro evaluations of random search on the cell space find a loss within 0.02 of
    cross-entropy, while a constant and a label-blind loss, trained by the same evaluator from
    the same seed, rank far below cross-entropy."""
    config = load_search_config(
        "ci", {"strategy": "random", "budget": 24, "seed": 0, "device": "cpu"}
    )
    summary = run_search(
        config,
        study_name="micro",
        storage=str(tmp_path / "j"),
        evaluator_factory=shared_real_factory,
    )
    assert summary["finished"] == 24 and summary["profile"] == "micro"
    evaluator = shared_real_factory(config.profile, config)
    ce, constant, label_blind = evaluator.evaluate(
        [
            EvalRequest(loss_from_spec("ce"), config.eval_seed),
            # no gradient reaches the logits: the network never leaves its initial weights
            EvalRequest(loss_from_spec("mul(y, 1)", sign=1.0), config.eval_seed),
            # p's entropy, minimised: confident predictions whatever the label
            EvalRequest(loss_from_spec("mul(p, log(p))", sign=-1.0), config.eval_seed),
        ]
    )
    assert ce.fitness is not None and ce.fitness >= 0.75, ce.message
    for blind in (constant, label_blind):
        assert fitness_or_floor(blind) < ce.fitness - 0.3, blind
    best = summary["best"][0]
    assert best["fitness"] >= ce.fitness - CLOSE_TO_CE, (best, ce.fitness)
    assert fitness_or_floor(label_blind) < best["fitness"]
