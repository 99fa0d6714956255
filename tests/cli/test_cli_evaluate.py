"""``nlfs evaluate``: JSON and table output, one-line errors with exit code 2."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from nlfs.cli import cli, main

TINY = """
dataset = "fashion-mnist"
train_size = 256
val_size = 128
model = "tiny_cnn"
width = 4
batch_size = 32
eval_batch_size = 128
steps = 4
eval_every = 2
"""


@pytest.fixture
def tiny_profile(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return str(path)


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["nlfs", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


@pytest.mark.fmnist
def test_json_output_has_the_record_fields(tiny_profile):
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--loss",
            "cross_entropy",
            "--profile",
            tiny_profile,
            "--seed",
            "3",
            "--json",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("fitness", "state", "best_acc", "final_acc", "steps", "seconds", "profile"):
        assert key in data
    assert data["state"] == "ok" and data["fitness"] == data["best_acc"]
    assert data["steps"] == 4 and data["profile"] == "tiny" and data["seed"] == 3


@pytest.mark.fmnist
def test_an_expression_trains_and_prints_a_table(tiny_profile):
    result = CliRunner().invoke(
        cli, ["evaluate", "--loss", "neg(mul(y, log(p)))", "--profile", tiny_profile]
    )
    assert result.exit_code == 0, result.output
    assert "fitness" in result.output and "tiny_cnn" in result.output


def test_a_missing_dataset_is_one_line_and_exit_2(monkeypatch, capsys, tiny_profile, tmp_path):
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "evaluate",
        "--loss",
        "cross_entropy",
        "--profile",
        tiny_profile,
        "--data-dir",
        str(tmp_path),
    )
    assert code == 2
    assert err.startswith("Error:") and err.count("\n") == 1 and "dataset-fashion-mnist" in err


def test_an_unknown_profile_lists_the_known_ones(monkeypatch, capsys):
    code, _, err = run_main(
        monkeypatch, capsys, "evaluate", "--loss", "cross_entropy", "--profile", "nonesuch"
    )
    assert code == 2 and "micro" in err and "quick" in err


def test_an_unknown_loss_name_is_exit_2(monkeypatch, capsys, tiny_profile):
    code, _, err = run_main(
        monkeypatch, capsys, "evaluate", "--loss", "no_such_loss", "--profile", tiny_profile
    )
    assert code == 2 and "cross_entropy" in err
