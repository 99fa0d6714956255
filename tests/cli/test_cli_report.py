"""`nlfs report` end to end: files written, exit code 0; input mistakes exit 2 with one line."""

from __future__ import annotations

import json
import sys

import optuna
import pytest
from report_fixtures import strict_json, synthetic_records

from nlfs.cli import main
from nlfs.stats.records import write_csv
from nlfs.storage import resolve_storage


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["nlfs", "report", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_report_from_csv_writes_files(tmp_path, monkeypatch, capsys):
    csv_path = tmp_path / "r.csv"
    write_csv(synthetic_records(), csv_path)
    code, out, _ = run(
        monkeypatch,
        capsys,
        "--results",
        str(csv_path),
        "--out",
        str(tmp_path / "out"),
        "--format",
        "json",
        "--baseline",
        "ce",
        "--json",
    )
    assert code == 0
    files = json.loads(out)["files"]
    assert files == [str(tmp_path / "out" / "report.json")]
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["baseline"] == "cross_entropy" and len(data["comparisons"]) == 8


def test_report_with_one_seed_per_setting_writes_null_p_values(tmp_path, monkeypatch, capsys):
    """One seed per setting: the command succeeds, per-setting p-values are null (strict JSON,
    no NaN) and the Markdown shows "–" for them and the tests across settings."""
    csv_path = tmp_path / "r.csv"
    write_csv([r for r in synthetic_records() if r.seed == 0], csv_path)
    out_dir = tmp_path / "out"
    code, _, err = run(
        monkeypatch,
        capsys,
        "--results",
        str(csv_path),
        "--out",
        str(out_dir),
        "--format",
        "md,json",
    )
    assert code == 0, err

    data = strict_json((out_dir / "report.json").read_text())
    assert [t["p_value"] for c in data["comparisons"] for t in c["tests"]] == [None] * 16
    assert len(data["across_settings"]["wilcoxon"]) == 2
    md = (out_dir / "report.md").read_text()
    assert "| – / – / – | – / – / – |" in md and "## Across settings" in md


def test_malformed_csv_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("loss,arch,dataset,augment,seed,metric,value\nce,a,b,c,0,test_acc,oops\n")
    code, _, err = run(monkeypatch, capsys, "--results", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "row 1" in lines[0] and "'value'" in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args,fragment",
    [
        ((), "exactly one of --study"),
        (("--format", "pdf"), "unknown report format 'pdf'"),
        (("--baseline", "mse"), "baseline 'mse' is not among the losses"),
        (("--metric", "loss"), "no records of metric 'loss'"),
    ],
)
def test_input_mistakes_exit_2(tmp_path, monkeypatch, capsys, args, fragment):
    csv_path = tmp_path / "r.csv"
    write_csv(synthetic_records(), csv_path)
    source = () if not args else ("--results", str(csv_path))
    code, _, err = run(monkeypatch, capsys, *source, "--out", str(tmp_path / "o"), *args)
    assert code == 2 and fragment in err


def test_report_from_transfer_study(tmp_path, monkeypatch, capsys):
    """A transfer study in a journal file reports like its CSV would."""
    monkeypatch.chdir(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="grid", storage=resolve_storage(None, "grid"), direction="maximize"
    )
    study.set_user_attr("kind", "transfer")
    for r in synthetic_records():
        trial = study.ask()
        for key, value in dict(
            loss=r.loss,
            arch=r.arch,
            dataset=r.dataset,
            augment=r.augment,
            seed=r.seed,
            final_acc=r.value,
            best_acc=r.value + 0.001,
            seconds=1.0,
            failure_kind=None,
        ).items():
            trial.set_user_attr(key, value)
        study.tell(trial, r.value)
    code, out, err = run(
        monkeypatch,
        capsys,
        "--study",
        "grid",
        "--out",
        "rep",
        "--format",
        "json",
        "--metric",
        "best_test_acc",
    )
    assert code == 0, err
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["metric"] == "best_test_acc" and data["source"] == "study grid"
    assert len(data["summaries"]) == 12


def test_missing_study_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(monkeypatch, capsys, "--study", "nope", "--out", "o")
    assert code == 2 and "no study named 'nope' in runs/nope.journal" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()
