"""`nlfs compare` and `nlfs ablate` end to end with tiny budgets: summary.json from storage."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from report_fixtures import strict_json
from search_fakes import MICRO_SHORT

from nlfs.cli import cli
from nlfs.errors import ConfigError
from nlfs.experiments.arms import base_table, strategy_arms, variant_arms
from nlfs.experiments.compare import Comparison, collect

pytestmark = pytest.mark.fmnist


def _invoke(args: list[str]):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _common(tmp_path, budget: int, seeds: int) -> list[str]:
    return [
        "--profile", MICRO_SHORT, "--budget", str(budget), "--seeds", str(seeds),
        "--reevaluate", "2", "--top-k", "1", "--device", "cpu",
        "--storage", str(tmp_path / "c.journal"), "--out", str(tmp_path / "report"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_compare")
    _invoke(["compare", "--strategies", "random,tpe,regevo", *_common(tmp, 4, 2), "--json"])
    return tmp, strict_json((tmp / "report" / "summary.json").read_text())


def test_compare_summary_holds_the_facts_recomputed_from_storage(compared):
    tmp, summary = compared
    table, where = base_table("default")
    arms = strategy_arms(["random", "tpe", "regevo"], table, where,
                         {"profile": MICRO_SHORT, "device": "cpu"})  # fmt: skip
    comparison = Comparison("compare", "compare", tuple(arms), (0, 1), 4, None, 2, 1)
    facts = collect(comparison, str(tmp / "c.journal"))
    analysis = summary["analysis"]
    assert {k: v for k, v in summary.items() if k != "analysis"} == json.loads(json.dumps(facts))
    by_name = {a["name"]: a for a in analysis["arms"]}
    assert list(by_name) == ["random", "tpe", "regevo"]
    for arm in facts["arms"]:
        best = [s["reevaluated_best"] for s in arm["studies"]]
        assert by_name[arm["name"]]["reevaluated_best"]["median"] == pytest.approx(np.median(best))
        auc = [s["auc"] for s in arm["studies"]]
        assert by_name[arm["name"]]["auc"]["q75"] == pytest.approx(np.percentile(auc, 75))


def test_compare_report_files_and_report_only_rebuilds_them_without_training(compared, monkeypatch):
    tmp, summary = compared
    report = (tmp / "report" / "report.md").read_text()
    assert "Search strategies compared" in report
    median = summary["analysis"]["arms"][0]["reevaluated_best"]["median"]
    assert f"{median:.4f}" in report
    assert 'src="data:image/png' in (tmp / "report" / "report.html").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("--report-only must not train")

    monkeypatch.setattr("nlfs.evaluation.evaluator.Evaluator.evaluate", no_training)
    out = tmp / "again"
    args = _common(tmp, 4, 2)
    args[args.index("--out") + 1] = str(out)
    _invoke(["compare", "--strategies", "random,tpe,regevo", *args, "--report-only", "--json"])
    assert strict_json((out / "summary.json").read_text()) == summary


def test_ablate_runs_variants_with_one_strategy(tmp_path):
    _invoke(["ablate", "--spaces", "cell,cell_yp", "--strategy", "random",
             *_common(tmp_path, 3, 1), "--json"])  # fmt: skip
    summary = strict_json((tmp_path / "report" / "summary.json").read_text())
    assert summary["kind"] == "ablate" and summary["axis"] == "variant"
    names = [a["name"] for a in summary["arms"]]
    assert names == ["cell", "cell_yp"]
    table, where = base_table("default")
    arms = variant_arms(names, table, where, {"strategy": "random", "profile": MICRO_SHORT})
    assert [a["config_hash"] for a in summary["arms"]] == [a.config.hash() for a in arms]
    for arm in summary["arms"]:
        (study,) = arm["studies"]
        assert study["study"] == f"ablate-{arm['name']}-s0" and study["evaluations"] == 3
        for top in study["top"]:
            assert "1" not in top["expression"].replace("(", " ").replace(",", " ").split() or (
                arm["name"] == "cell"
            )
    assert all(math.isfinite(v) for v in summary["baseline"]["reevaluated"])


def test_unknown_arms_are_refused_before_any_study_is_made(tmp_path):
    """`main` prints these ConfigErrors as one line with exit code 2 (test_cli_main)."""
    storage = tmp_path / "x.journal"
    for args, message in (
        (["ablate", "--spaces", "cell,nope"], "unknown space variant 'nope'; known: cell, "),
        (["compare", "--strategies", "regevo"], "at least two arms"),
        (["compare", "--strategies", "regevo,nope"], "nope"),
    ):
        result = CliRunner().invoke(
            cli, [*args, "--storage", str(storage), "--out", str(tmp_path / "r")]
        )
        assert isinstance(result.exception, ConfigError), result.output
        assert message in str(result.exception) and "\n" not in str(result.exception)
    assert not storage.exists()
