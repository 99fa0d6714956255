"""The search CLI through click: search --json, resume, best, export, worker, refusals."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from search_fakes import NANO, shared_real_factory

from nlfs.cli import cli
from nlfs.errors import ConfigError


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One small real search, shared by the tests below: (runner, journal path, summary)."""
    mp = pytest.MonkeyPatch()
    # The real evaluator, built once (loading the dataset dominates a nano evaluation).
    mp.setattr("nlfs.search.runner.default_evaluator", shared_real_factory)
    journal = tmp_path_factory.mktemp("cli") / "s.journal"
    runner = CliRunner()
    args = [
        "search",
        "--config",
        "ci",
        "--profile",
        NANO,
        "--budget",
        "2",
        "--study",
        "s",
        "--storage",
        str(journal),
        "--device",
        "cpu",
        "--json",
    ]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    yield runner, journal, json.loads(result.stdout), args
    mp.undo()


@pytest.mark.fmnist
def test_search_json_reports_the_study(searched):
    _, journal, summary, _ = searched
    assert summary["study"] == "s" and summary["storage"] == str(journal)
    assert summary["finished"] == 2 and summary["budget"] == 2
    assert summary["strategy"] == "regevo" and summary["profile"] == "nano"
    assert sum(summary["counts"].values()) == 2
    assert len(summary["best"]) == summary["counts"].get("ok", 0) >= 1, summary
    for row in summary["best"]:
        assert {"number", "fitness", "expression", "key", "sign"} <= set(row)


@pytest.mark.fmnist
def test_rerunning_the_same_command_resumes_and_finishes_at_once(searched):
    runner, _, summary, args = searched
    again = runner.invoke(cli, args, catch_exceptions=False)
    assert again.exit_code == 0
    assert json.loads(again.stdout)["counts"] == summary["counts"]
    table = runner.invoke(cli, args[:-1], catch_exceptions=False)  # without --json
    assert "best losses of s" in table.stdout and "2/2 evaluated" in table.stdout


@pytest.mark.fmnist
def test_a_different_config_for_the_study_is_refused(searched):
    runner, _, _, args = searched
    result = runner.invoke(cli, [*args, "--seed", "5"])
    assert isinstance(result.exception, ConfigError)
    assert "--study" in str(result.exception)


@pytest.mark.fmnist
def test_best_lists_the_top_losses(searched):
    runner, journal, summary, _ = searched
    result = runner.invoke(
        cli,
        ["best", "--study", "s", "--storage", str(journal), "-n", "1", "--json"],
        catch_exceptions=False,
    )
    best = json.loads(result.stdout)["best"]
    assert best == summary["best"][:1]
    table = runner.invoke(cli, ["best", "--study", "s", "--storage", str(journal)])
    assert table.exit_code == 0
    assert len(best) == 1, "the searched fixture has an ok trial"
    assert str(best[0]["number"]) in table.stdout


@pytest.mark.fmnist
def test_export_writes_a_module_and_prints_latex(searched, tmp_path):
    runner, journal, _, _ = searched
    out = tmp_path / "found_loss.py"
    result = runner.invoke(
        cli,
        ["export", "--study", "s", "--storage", str(journal), "--trial", "0", "-o", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "class FoundLoss(torch.nn.Module)" in text and "trial: 0" in text
    latex = runner.invoke(
        cli,
        ["export", "--study", "s", "--storage", str(journal), "--trial", "0", "--format", "latex"],
        catch_exceptions=False,
    )
    assert r"\sum_c" in latex.stdout
    missing = runner.invoke(
        cli, ["export", "--study", "s", "--storage", str(journal), "--trial", "99", "-o", str(out)]
    )
    assert isinstance(missing.exception, ConfigError)


@pytest.mark.fmnist
def test_worker_joins_a_finished_search_and_stops(searched):
    runner, journal, summary, _ = searched
    result = runner.invoke(
        cli, ["worker", "--study", "s", "--storage", str(journal), "--json"], catch_exceptions=False
    )
    assert json.loads(result.stdout)["counts"] == summary["counts"]


def test_worker_hands_studies_of_other_kinds_to_the_grid_runner(tmp_path, monkeypatch):
    from nlfs.storage import open_study, resolve_storage

    journal = str(tmp_path / "grid.journal")
    open_study("g", resolve_storage(journal, "g"), attrs={"kind": "transfer"})
    calls = []
    monkeypatch.setattr("nlfs.experiments.grid.run_worker", lambda *a, **k: calls.append((a, k)))
    result = CliRunner().invoke(
        cli,
        ["worker", "--study", "g", "--storage", journal, "--device", "cpu"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    assert len(calls) == 1 and calls[0][0][0] == "g" and calls[0][1]["device"] == "cpu"


def test_unknown_study_is_an_error_for_people(tmp_path):
    result = CliRunner().invoke(
        cli, ["best", "--study", "nope", "--storage", str(tmp_path / "none.journal")]
    )
    assert isinstance(result.exception, ConfigError)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--strategy", "nope"], "unknown strategy 'nope'; known:"),
        (["--strategy", "tpe", "--space", "tree"], "tpe needs a space with a fixed-length"),
        (["--space", "nope"], "unknown search space 'nope'"),
    ],
)
def test_a_bad_strategy_or_space_fails_before_any_storage_is_made(tmp_path, flags, message):
    journal = tmp_path / "s.journal"
    result = CliRunner().invoke(cli, ["search", "--storage", str(journal), *flags])
    assert isinstance(result.exception, ConfigError)
    assert message in str(result.exception)
    assert not journal.exists()
