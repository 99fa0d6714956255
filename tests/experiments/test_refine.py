"""Refinement (nlfs.experiments.refine): tuning a lifted loss's coefficients as an Optuna study."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from click.testing import CliRunner
from optuna.trial import TrialState

from nlfs.cli import cli
from nlfs.errors import ConfigError
from nlfs.evaluation.results import EvalResult, State
from nlfs.experiments import refine
from nlfs.experiments.grid import build_loss
from nlfs.experiments.grid import run_local as run_grid
from nlfs.experiments.refine_reevaluate import reevaluate
from nlfs.experiments.transfer import resolve_losses
from nlfs.losses.lift import lift
from nlfs.screening.coefficients import screen_setting
from nlfs.storage import load_existing_study, resolve_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

ORIGINAL = "neg(mul(y, log(p)))"
TARGET = {"w2": 0.6, "b2": 0.04}
"""The better coefficients of the synthetic objective: targets 0.6 * y + 0.04 (smoothing)."""
NANO = "tests/profiles/nano.toml"

_Q = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
_Y = torch.cat([torch.ones(99), torch.zeros(99)]).double()
_P = torch.cat([_Q, 1 - _Q])


def _values(loss) -> torch.Tensor:
    with torch.no_grad():
        return loss.elementwise(_Y, _P)


_TARGET_VALUES = _values(lift(ORIGINAL, nodes=[2]).loss([TARGET["w2"], TARGET["b2"]], 1.0))


def synthetic_fitness(loss, seed: int | None = None) -> float:
    """1 / (1 + mean squared distance to the target loss's values): highest exactly at TARGET.

    With a ``seed`` (re-evaluation), minus a small noise that differs by seed and by loss.
    """
    error = float(((_values(loss) - _TARGET_VALUES) ** 2).mean())
    noise = 0.0 if seed is None else 0.001 * ((seed * len(loss.expression)) % 5)
    return 1.0 / (1.0 + error) - noise


class SyntheticEvaluator:
    """Scores a loss by :func:`synthetic_fitness` (no training); ``noisy`` adds the seed noise."""

    def __init__(self, *args, noisy: bool = False) -> None:
        self.noisy = noisy

    def evaluate(self, requests):
        results = []
        for request in requests:
            fitness = synthetic_fitness(request.loss, request.seed if self.noisy else None)
            results.append(EvalResult(State.OK, fitness, fitness, 1, 0.0, "synthetic"))
        return results


def _search(storage: str, expression: str = ORIGINAL) -> None:
    """A stored search study with one completed trial holding ``expression``."""
    study = optuna.create_study(
        study_name="s", storage=resolve_storage(storage, "s"), direction="maximize"
    )
    study.set_user_attr("kind", "search")
    study.set_user_attr("config", {"profile": NANO, "eval_seed": 7})
    trial = study.ask()
    trial.set_user_attr("expression", expression)
    trial.set_user_attr("sign", 1.0)
    study.tell(trial, 0.5)


def _tune(storage: str, budget: int, **options) -> optuna.Study:
    config = refine.RefineConfig("s", 0, budget=budget, seeds=3, nodes=(2,), **options)
    study, _ = refine.prepare(config, storage)
    refine.run_worker(study.study_name, storage, evaluator_factory=SyntheticEvaluator)
    return load_existing_study(study.study_name, storage)


@pytest.mark.parametrize("sampler", ["cmaes", "tpe"])
def test_refinement_finds_the_known_better_coefficients_of_a_synthetic_objective(tmp_path, sampler):
    storage = str(tmp_path / "r.journal")
    _search(storage)
    study = _tune(storage, 100, sampler=sampler)
    trials = study.get_trials(deepcopy=False)
    assert trials[0].user_attrs["original"] and trials[0].user_attrs["expression"] == ORIGINAL
    assert trials[0].params == {"w2": 1.0, "b2": 0.0}
    assert trials[0].user_attrs["eval_seed"] == 7  # the search's seed: paired with the search
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    # The screen signs each setting, so (-w, -b) with sign -1 is the same loss as (w, b).
    w, b = (best.user_attrs["sign"] * c for c in best.user_attrs["coefficients"])
    tolerance = (0.1, 0.03) if sampler == "cmaes" else (0.25, 0.1)  # TPE is coarser
    assert abs(w - TARGET["w2"]) < tolerance[0] and abs(b - TARGET["b2"]) < tolerance[1]
    assert best.value > trials[0].value


def test_a_raised_budget_resumes_the_same_study_and_nlfs_worker_joins_it(tmp_path, monkeypatch):
    storage = str(tmp_path / "r.journal")
    _search(storage)
    first = _tune(storage, 5)
    before = [(t.number, t.params) for t in first.get_trials(deepcopy=False)]
    refine.prepare(refine.RefineConfig("s", 0, budget=9, seeds=3, nodes=(2,)), storage)
    monkeypatch.setattr(refine, "default_evaluator", SyntheticEvaluator)
    args = ["worker", "--study", "s-refine-t0", "--storage", storage]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    trials = load_existing_study("s-refine-t0", storage).get_trials(deepcopy=False)
    assert [(t.number, t.params) for t in trials[: len(before)]] == before
    assert sum(map(refine.uses_budget, trials)) == 9
    assert sum(bool(t.user_attrs.get("original")) for t in trials) == 1
    with pytest.raises(ConfigError, match="another config"):
        refine.prepare(refine.RefineConfig("s", 0, budget=9, nodes=(1, 2)), storage)


def test_the_screen_rejects_a_setting_that_flattens_the_loss_and_keeps_a_good_one():
    assert screen_setting(ORIGINAL) == (True, "ok", 1.0)
    flat = lift(ORIGINAL, nodes=[3]).instantiate([0.0, 0.0])  # weight 0 on log(p)
    accepted, reason, _ = screen_setting(flat)
    assert not accepted and reason == "constant"


def _grid_factory(setting, device, data_dir, download):
    return SyntheticEvaluator(noisy=True)


def test_reevaluation_pairs_original_and_refined_on_fresh_seeds_and_serves_study_best(tmp_path):
    storage = str(tmp_path / "r.journal")
    _search(storage)
    study = _tune(storage, 12)
    name = study.study_name
    summary = reevaluate(
        name, storage, 3, lambda grid: run_grid(grid, storage, evaluator_factory=_grid_factory)
    )
    best = max(
        (t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE),
        key=lambda t: t.value,
    )
    again = summary["reevaluation"]
    assert again["seeds"] == [1007, 1008, 1009]
    original_loss = build_loss(ORIGINAL, 1.0)
    refined_loss = build_loss(best.user_attrs["expression"], best.user_attrs["sign"])
    assert again["original"] == [synthetic_fitness(original_loss, s) for s in again["seeds"]]
    assert again["refined"] == [synthetic_fitness(refined_loss, s) for s in again["seeds"]]
    differences = np.subtract(again["refined"], again["original"])
    assert again["mean_difference"] == pytest.approx(differences.mean())
    low, high = again["ci95"]
    assert low <= again["mean_difference"] <= high
    assert load_existing_study(name, storage).user_attrs["refined"] == summary
    # STUDY:best is the refined loss, built like any expression.
    (ref,) = resolve_losses([f"{name}:best"], storage)
    assert (ref.spec, ref.sign) == (summary["expression"], summary["sign"])
    assert ref.label == f"{name}:{best.number}"
