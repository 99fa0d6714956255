"""Acceptance of ``nlfs run``: a tiny pipeline end to end on real Fashion-MNIST (nano profile,
tiny budgets and grids). Each step's study exists and feeds the next, a rerun trains nothing and
gives the same report, and the verdict's numbers are the report JSON's, which the stored trials
back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from nlfs.cli import cli, main
from nlfs.report.verdict import sentences
from nlfs.storage import resolve_storage

PROFILES = Path(__file__).parents[1] / "profiles"
KINDS = {"search": "search", "eliminate": "eliminate", "transfer": "transfer"}
TINY = f"""
[pipeline]
name = "tiny"

[search]
profile = "{PROFILES / "nano.toml"}"
budget = 6
device = "cpu"
[search.strategy_options]
population = 3
tournament = 2

[eliminate]
profile = "{PROFILES / "nano.toml"}"
top = 2
keep = [1]
seeds = 1
stages = [{{ steps = 6 }}]

[transfer]
config = "{PROFILES / "nano_transfer.toml"}"
baselines = ["ce", "focal"]
seeds = 2

[fidelity]
candidates = 4
top = 2
[fidelity.target]
config = "{PROFILES / "nano_transfer.toml"}"
seeds = 1

[report]
resamples = 200
"""


def _studies(storage: str) -> dict[str, optuna.Study]:
    resolved = resolve_storage(storage, "tiny")
    return {
        step: optuna.load_study(study_name=f"tiny-{step}", storage=resolved)
        for step in ("search", "eliminate", "transfer", "fidelity")
    }


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.fmnist
def test_run_end_to_end_then_a_rerun_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY)
    printed = _run("--config", "tiny.toml", "--device", "cpu")
    for index, step in enumerate(("search", "eliminate", "transfer", "fidelity", "report"), 1):
        assert f"step {index}/5 {step}" in printed
    assert "report: reports/tiny/report.html" in printed

    storage = "runs/tiny.journal"
    studies = _studies(storage)
    for step, study in studies.items():
        assert study.user_attrs["kind"] == KINDS.get(step, step)
    counts = {step: len(s.get_trials()) for step, s in studies.items()}
    assert counts["search"] >= 6 and min(counts.values()) > 0
    report = json.loads((tmp_path / "reports" / "tiny" / "report.json").read_text())

    out = json.loads(_run("--config", "tiny.toml", "--device", "cpu", "--json"))
    assert out["trained"] == {"search": 0, "eliminate": 0, "transfer": 0, "fidelity": 0}
    assert {s: len(study.get_trials()) for s, study in _studies(storage).items()} == counts
    rerun = json.loads((tmp_path / "reports" / "tiny" / "report.json").read_text())
    assert rerun["verdict"] == {**report["verdict"], "trained_this_run": out["trained"]}
    assert out["verdict"] == rerun["verdict"]

    # The finalist flowed from the elimination into the transfer grid by its search trial.
    (finalist,) = out["finalists"]
    kept = studies["eliminate"].user_attrs["kept"]["0"]
    entrant = next(c for c in studies["eliminate"].user_attrs["candidates"] if c["key"] in kept)
    assert finalist == f"tiny-search:{entrant['source_trial']}"
    transfer_losses = {t.user_attrs["loss"] for t in studies["transfer"].get_trials()}
    assert transfer_losses == {finalist, "ce", "focal"}

    # The verdict's numbers are the report JSON's, and its sentences are rendered from them.
    verdict = rerun["verdict"]
    assert sentences(verdict) == verdict["sentences"]
    markdown = (tmp_path / "reports" / "tiny" / "report.md").read_text()
    assert all(f"- {s}" in markdown for s in verdict["sentences"])
    versus_ce = next(t for t in verdict["transfer"] if t["against"] == "ce")
    (row,) = versus_ce["per_setting"]
    (table,) = [c for c in rerun["comparisons"] if c["loss"] == finalist]
    assert row["mean_difference"] == table["mean_difference"]
    assert row["cohens_d"] == table["cohens_d"]
    assert row["p_holm"] == next(t["p_holm"] for t in table["tests"] if t["test"] == "paired_t")
    # ... and the stored trials back them: the search's spend, the finalist's mean difference.
    search = verdict["spend"]["search"]
    finished = [t for t in studies["search"].get_trials() if t.state.is_finished()]
    assert search["evaluations"] == len(finished) == 6
    assert search["ok"] == sum(t.state is TrialState.COMPLETE for t in finished)
    accs: dict[str, list[float]] = {}
    for t in studies["transfer"].get_trials():
        accs.setdefault(t.user_attrs["loss"], []).append(t.user_attrs["final_acc"])
    assert row["mean_difference"] == pytest.approx(
        sum(accs[finalist]) / 2 - sum(accs["ce"]) / 2, abs=1e-12
    )
    fidelity = verdict["fidelity"]
    assert fidelity["candidates"] == 4 and fidelity["ceiling"] is None  # one target seed


def test_a_bad_config_is_one_line_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text("[transfer]\nbaselines = ['ce', 'nosuch']\n")
    monkeypatch.setattr(sys, "argv", ["nlfs", "run", "--config", "bad.toml"])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("Error: unknown loss 'nosuch'") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing was created
