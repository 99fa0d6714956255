"""End to end on real Fashion-MNIST: search study -> eliminate -> transfer -> HTML report.

The search study is built from trials directly (the search runner has its own tests); the rest
runs through the command line with the test-only nano profile, and the report's numbers are
checked against the stored trials.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from nlfs.cli import cli
from nlfs.storage import open_study, resolve_storage

pytestmark = pytest.mark.fmnist
PROFILES = Path(__file__).parents[1] / "profiles"
CANDIDATES = [  # (expression, search fitness); all fall as the true-class probability rises
    ("mul(y, sub(1, p))", 0.71),
    ("square(sub(p, y))", 0.70),
    ("neg(mul(y, sqrt(p)))", 0.69),
    ("neg(mul(y, p))", 0.68),
    ("mul(y, inv(add(p, 1)))", 0.60),
]


def _invoke(*args: str) -> dict:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else {}


def test_eliminate_transfer_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default storages go to tmp_path/runs/
    search = open_study("s", resolve_storage(None, "s"), attrs={"kind": "search"})
    for expr, value in CANDIDATES:
        search.add_trial(
            optuna.trial.create_trial(
                value=value,
                params={"x": value},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={"expression": expr, "key": expr, "sign": 1.0},
            )
        )
    stages = tmp_path / "stages.toml"
    stages.write_text(
        f"profile = '{PROFILES / 'nano.toml'}'\ntop = 3\nkeep = [2, 1]\n"
        "[[stages]]\nsteps = 6\n[[stages]]\nsteps = 10\n"
    )

    elim = _invoke(
        "eliminate",
        "--study",
        "s",
        "--stages",
        str(stages),
        "--seeds",
        "2",
        "--device",
        "cpu",
        "--json",
    )
    runs = elim["records"]
    assert [sum(r["stage"] == i for r in runs) for i in (0, 1)] == [3 * 2, 2 * 2]
    assert len(elim["finalists"]) == 1
    stage1: dict[str, list[float]] = {}
    for r in runs:
        if r["stage"] == 1:
            stage1.setdefault(r["key"], []).append(r["fitness"])
    assert elim["finalists"][0]["key"] == max(stage1, key=lambda k: statistics.fmean(stage1[k]))
    assert [(s["ran"], s["kept"], s["seeds"]) for s in elim["stages"]] == [(3, 2, 2), (2, 1, 2)]
    kept_mean, dropped_mean = sorted(map(statistics.fmean, stage1.values()), reverse=True)
    assert elim["stages"][1]["margin"] == pytest.approx(kept_mean - dropped_mean)
    assert (
        _invoke("eliminate", "--study", "s", "--stages", str(stages), "--json")["finalists"]
        == elim["finalists"]
    )  # resumed with the default of 2 seeds: nothing re-run, same answer
    eliminated = optuna.load_study(
        study_name="s-eliminate", storage=resolve_storage(None, "s-eliminate")
    )
    assert len(eliminated.get_trials()) == (3 + 2) * 2

    losses = ",".join(["ce", *elim["transfer_losses"]])
    out = _invoke(
        "transfer",
        "--config",
        str(PROFILES / "nano_transfer.toml"),
        "--losses",
        losses,
        "--study",
        "t",
        "--device",
        "cpu",
        "--json",
    )
    assert out["jobs"] == 4 and len(out["results"]) == 4
    study = optuna.load_study(study_name="t", storage=resolve_storage(None, "t"))
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state is TrialState.COMPLETE for t in trials)
    finalist = elim["transfer_losses"][0]
    assert {t.user_attrs["loss"] for t in trials} == {"ce", finalist}

    _invoke(
        "report",
        "--study",
        "t",
        "--out",
        "report",
        "--format",
        "html,json",
        "--eliminate",
        "s-eliminate",
    )
    html = (tmp_path / "report" / "report.html").read_text()
    for loss in ("ce", finalist):
        accs = [t.user_attrs["final_acc"] for t in trials if t.user_attrs["loss"] == loss]
        cell = f"{statistics.mean(accs):.4f} ± {statistics.stdev(accs):.4f} (n=2)"
        assert cell in html, f"{loss}: {cell} not in the report"
    assert "data:image/png;base64," in html
    assert "Elimination funnel (s-eliminate)" in html
    for stage in (0, 1):  # the funnel matches the stored stage runs (candidates, not runs)
        ran = [r for r in runs if r["stage"] == stage]
        failed = len({r["key"] for r in ran if r["failure_kind"] is not None})
        kept = len({r["key"] for r in ran if r["kept"]})
        row = [stage + 1, f"stage{stage + 1}", len({r["key"] for r in ran}), failed, kept, 2]
        assert "".join(f"<td>{v}</td>" for v in row) in html
    assert "A cut is clear when the margin exceeds the noise" in html
