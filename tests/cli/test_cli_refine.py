"""`nlfs refine` end to end: a real tiny refinement (nano profile, real Fashion-MNIST) that
resumes, is reused, and exports."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from nlfs.cli import cli
from nlfs.errors import ConfigError
from nlfs.experiments.refine import uses_budget
from nlfs.storage import load_existing_study, resolve_storage

pytestmark = pytest.mark.fmnist

CE = "neg(mul(y, log(p)))"
NANO = str(Path(__file__).parents[1] / "profiles" / "nano.toml")


def _search(storage: str) -> None:
    """A stored search study whose trial 0 is cross-entropy written as an expression."""
    study = optuna.create_study(
        study_name="s", storage=resolve_storage(storage, "s"), direction="maximize"
    )
    study.set_user_attr("kind", "search")
    study.set_user_attr("config", {"profile": NANO, "eval_seed": 0})
    trial = study.ask()
    trial.set_user_attr("expression", CE)
    trial.set_user_attr("sign", 1.0)
    study.tell(trial, 0.5)


def _refine(storage: str, budget: int) -> dict:
    args = ["refine", "--study", "s", "--trial", "0", "--budget", str(budget), "--seeds", "2",
            "--nodes", "2", "--storage", storage, "--device", "cpu", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_refine_trains_resumes_with_a_raised_budget_and_reuses_finished_work(tmp_path, monkeypatch):
    storage = str(tmp_path / "r.journal")
    _search(storage)
    first = _refine(storage, 3)
    study = load_existing_study("s-refine-t0", storage)
    trials = study.get_trials(deepcopy=False)
    assert sum(map(uses_budget, trials)) == 3
    assert trials[0].user_attrs["expression"] == CE and trials[0].user_attrs["original"]
    assert study.user_attrs["lifted_nodes"] == ["node 2 (w2, b2): y"]
    assert first["in_study"]["original"] == trials[0].value
    assert len(first["reevaluation"]["original"]) == 2

    second = _refine(storage, 4)  # resumes: one more trial, the first three untouched
    again = load_existing_study("s-refine-t0", storage).get_trials(deepcopy=False)
    assert sum(map(uses_budget, again)) == 4
    assert [(t.number, t.params, t.value) for t in again[: len(trials)]] == [
        (t.number, t.params, t.value) for t in trials
    ]
    assert second["reevaluation"]["original"] == first["reevaluation"]["original"]  # reused

    def no_training(*args, **kwargs):
        raise AssertionError("a finished refinement must not train again")

    monkeypatch.setattr("nlfs.evaluation.evaluator.Evaluator.evaluate", no_training)
    assert _refine(storage, 4) == second
    grid = load_existing_study("s-refine-t0-reevaluate", storage).get_trials(deepcopy=False)
    done = [t for t in grid if t.state == TrialState.COMPLETE]
    assert len(done) == len({t.user_attrs["job"] for t in grid})  # no job trained twice

    # The refined loss exports like any other, its coefficients in the formula.
    number = second["trial"]
    args = ["export", "--study", "s-refine-t0", "--trial", str(number), "--storage", storage]
    result = CliRunner().invoke(cli, [*args, "--format", "latex"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    coefficients = second["coefficients"]
    if number != 0:  # the original has no coefficients to show
        shown = [v for v in coefficients.values() if v not in (0.0, 1.0)]
        assert shown and all(repr(v) in result.output for v in shown)
    out = tmp_path / "refined.py"
    result = CliRunner().invoke(cli, [*args, "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert second["expression"] in out.read_text()


def test_refine_refuses_a_loss_with_nothing_to_tune(tmp_path):
    storage = str(tmp_path / "r.journal")
    study = optuna.create_study(
        study_name="s", storage=resolve_storage(storage, "s"), direction="maximize"
    )
    study.set_user_attr("config", {"profile": NANO, "eval_seed": 0})
    trial = study.ask()
    trial.set_user_attr("expression", "log10(div(y, p))")  # weights only shift it by constants
    trial.set_user_attr("sign", 1.0)
    study.tell(trial, 0.5)
    args = ["refine", "--study", "s", "--trial", "0", "--storage", storage]
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, ConfigError)  # `nlfs` prints it as one line
    assert "nothing to refine" in str(result.exception)
