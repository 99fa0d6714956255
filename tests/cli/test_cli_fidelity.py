"""`nlfs fidelity` end to end: a small search ranked on the nano grid, then --report-only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_fixtures import strict_json, synthetic_records
from search_fakes import MICRO_SHORT

from nlfs.cli import cli
from nlfs.experiments.fidelity import Fidelity, collect, load_target
from nlfs.search.config import load_search_config
from nlfs.search.workers import run_search
from nlfs.stats.records import write_csv

pytestmark = pytest.mark.fmnist

NANO_GRID = str(Path(__file__).parents[1] / "profiles" / "nano_transfer.toml")


def test_fidelity_writes_a_summary_of_the_stored_results_and_report_only_rebuilds_it(
    tmp_path, monkeypatch
):
    storage = str(tmp_path / "f.journal")
    config = load_search_config("ci", {"profile": MICRO_SHORT, "budget": 8, "device": "cpu"})
    run_search(config, study_name="s", storage=storage)
    args = ["fidelity", "--study", "s", "--target", NANO_GRID, "--candidates", "4",
            "--top", "3", "--storage", storage, "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "r")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "report:" in result.output
    summary = strict_json((tmp_path / "r" / "summary.json").read_text())
    facts = collect(Fidelity("s", load_target(NANO_GRID), candidates=4, top=3), storage)
    assert {k: v for k, v in summary.items() if k != "analysis"} == json.loads(json.dumps(facts))
    verdict = summary["analysis"]["verdict"]
    assert verdict and verdict in " ".join(result.output.split())  # rich wraps long lines
    assert verdict in (tmp_path / "r" / "report.md").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("--report-only must not train")

    monkeypatch.setattr("nlfs.evaluation.evaluator.Evaluator.evaluate", no_training)
    again = [*args, "--out", str(tmp_path / "again"), "--report-only", "--json"]
    result = CliRunner().invoke(cli, again, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert strict_json((tmp_path / "again" / "summary.json").read_text()) == summary

    # The transfer report takes the same study as its fidelity section.
    csv = tmp_path / "results.csv"
    write_csv(synthetic_records(), csv)
    args = ["report", "--results", str(csv), "--fidelity", "s-fidelity", "--storage", storage,
            "--out", str(tmp_path / "transfer"), "--format", "md,json"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = strict_json((tmp_path / "transfer" / "report.json").read_text())
    assert data["fidelity"] == summary
    report = (tmp_path / "transfer" / "report.md").read_text()
    assert "## Does the surrogate" in report and verdict in report


def test_a_study_that_is_not_a_search_is_refused(tmp_path):
    result = CliRunner().invoke(
        cli, ["fidelity", "--study", "missing", "--storage", str(tmp_path / "x.journal"),
              "--out", str(tmp_path / "r")],
    )  # fmt: skip
    assert result.exit_code != 0 and "no study named 'missing'" in str(result.exception)
