"""``nlfs space`` and ``nlfs losses`` through click's test runner: exit codes, JSON, seeds."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nlfs.cli import cli
from nlfs.losses.baselines import BASELINES
from nlfs.losses.expressions import expression_key


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("space", ["cell", "tree"])
def test_sample_json_has_the_documented_shape(space):
    """--json prints one object: N distinct candidates (expression, key, sign) and counts."""
    result = run("space", "sample", "--space", space, "-n", "6", "--seed", "3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"candidates", "rejections"}
    candidates = data["candidates"]
    assert len(candidates) == 6
    assert all(set(c) == {"expression", "key", "sign"} for c in candidates)
    assert len({c["expression"] for c in candidates}) == 6
    assert all(c["sign"] in (1.0, -1.0) for c in candidates)
    assert all(isinstance(n, int) and n > 0 for n in data["rejections"].values())


def test_sample_same_seed_same_output_other_seed_other_output():
    """The same seed prints the same candidates; another seed prints others."""
    args = ("space", "sample", "-n", "5", "--json")
    a = run(*args, "--seed", "11").output
    assert a == run(*args, "--seed", "11").output
    assert (
        json.loads(a)["candidates"] != json.loads(run(*args, "--seed", "12").output)["candidates"]
    )


def test_sample_table_lists_candidates_and_rejections():
    """Without --json the candidates and the rejection counts are printed as tables."""
    result = run("space", "sample", "-n", "3", "--seed", "1")
    assert result.exit_code == 0
    assert "candidates" in result.output and "rejections" in result.output


def test_unknown_space_is_a_usage_error():
    """An unknown space exits 2 naming the known ones."""
    result = run("space", "sample", "--space", "nope")
    assert result.exit_code == 2 and "cell" in result.output and "tree" in result.output


def test_check_exit_codes_accepted_rejected_unparsable():
    """check exits 0 for an accepted, 1 for a rejected and 2 for an unparsable expression."""
    accepted = run("space", "check", "neg(mul(y, log(p)))")
    assert accepted.exit_code == 0 and "accepted" in accepted.output
    rejected = run("space", "check", "log(p)")
    assert rejected.exit_code == 1 and "missing_y" in rejected.output
    bad = run("space", "check", "neg(mul(y, lg(p)))")
    assert bad.exit_code == 2 and "'lg'" in bad.output
    arity = run("space", "check", "add(y)")
    assert arity.exit_code == 2 and "add takes 2 arguments" in arity.output


def test_check_json_is_the_verdict():
    """check --json prints the verdict: accepted, reason, expression, key, sign."""
    result = run("space", "check", "mul(y,  log(p))", "--json")
    data = json.loads(result.output)
    assert result.exit_code == 0
    assert data == {
        "accepted": True,
        "reason": "ok",
        "expression": "mul(y, log(p))",
        "key": expression_key("mul(y, log(p))"),
        "sign": -1.0,
    }


def test_check_in_a_space_reports_genome_reasons():
    """With --space, an expression a cell cannot hold is rejected as not_representable."""
    deep = "mul(mul(mul(mul(mul(mul(y, p), p), p), p), p), p)"  # six operator nodes; a cell: 5
    result = run("space", "check", deep, "--space", "cell", "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["reason"] == "not_representable"
    assert run("space", "check", "neg(mul(y, log(p)))", "--space", "cell").exit_code == 0
    assert run("space", "check", "neg(mul(y, log(p)))", "--space", "tree").exit_code == 0


def test_losses_list_and_show():
    """list names every baseline; show prints the plain and LaTeX formulas."""
    listed = run("losses", "list", "--json")
    assert listed.exit_code == 0
    assert [e["name"] for e in json.loads(listed.output)["losses"]] == list(BASELINES)
    shown = run("losses", "show", "baikal")
    assert shown.exit_code == 0
    assert BASELINES["baikal"].text in shown.output and BASELINES["baikal"].latex in shown.output
    assert run("losses", "show", "nope").exit_code == 2
