"""Damaged journals through the real ``nlfs`` command: repaired on open, refused, salvaged.

A real micro search writes the journal; the damage is made by cutting its bytes, as power loss
or a full disk would; the study is read back with Optuna's own reader.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
import torch
from click.testing import CliRunner
from optuna.trial import TrialState
from search_fakes import shared_real_factory

from nlfs.cli import cli
from nlfs.storage import NOT_COUNTED

NLFS = str(Path(sys.executable).with_name("nlfs"))
BUDGET = 2
CUTS = {"one byte": 0.0, "all but the newline": 1.0, "random": random.Random(12).random()}
"""Where the last line is cut, as a fraction of the bytes between its first and its last."""


def _search_args(storage: Path) -> list[str]:
    return ["search", "--config", "ci", "--profile", "micro", "--budget", str(BUDGET),
            "--study", "s", "--storage", str(storage), "--device", "cpu", "--json"]  # fmt: skip


def _search(storage: Path) -> subprocess.CompletedProcess:
    """The search in a process of its own: it is dead when the next command looks at it."""
    command = [NLFS, "--threads", "1", *_search_args(storage)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture
def resume(monkeypatch, caplog):
    """The same search in this process (with the real evaluator shared across tests, since
    loading the data dominates): (result, what was logged at WARNING)."""
    monkeypatch.setattr("nlfs.search.runner.default_evaluator", shared_real_factory)
    threads = torch.get_num_threads()

    def run(storage: Path):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="nlfs.journal"):
            args = ["--threads", "1", *_search_args(storage)]  # no OpenMP threads spinning
            result = CliRunner().invoke(cli, args, catch_exceptions=False)
        return result, [r.getMessage() for r in caplog.records]

    yield run
    torch.set_num_threads(threads)


def _nlfs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NLFS, *args], capture_output=True, text=True, timeout=120)


def _study(path: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return optuna.load_study(study_name="s", storage=storage)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> bytes:
    """The journal of a finished real micro search of BUDGET trials."""
    path = tmp_path_factory.mktemp("search") / "s.journal"
    result = _search(path)
    assert result.returncode == 0, result.stderr
    return path.read_bytes()


def _last_line_start(data: bytes) -> int:
    return data.rstrip(b"\n").rfind(b"\n") + 1


@pytest.mark.fmnist
@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS)
def test_a_search_whose_last_write_was_cut_resumes_and_redoes_that_trial_once(
    searched, tmp_path, cut, resume
):
    start = _last_line_start(searched)
    last = json.loads(searched[start:])
    assert (last["op_code"], last["trial_id"]) == (6, BUDGET - 1)  # the last trial's finish
    length = len(searched) - start  # with its newline
    keep = 1 + round(cut * (length - 2))  # 1 .. length - 1 bytes of it survive
    path = tmp_path / "s.journal"
    path.write_bytes(searched[: start + keep])

    result, logged = resume(path)

    assert result.exit_code == 0, result.output
    (said,) = logged
    assert said.startswith(f"Repaired journal {path}: dropped its last line (line ")
    assert f"{keep} bytes" in said
    assert Path(f"{path}.bak").read_bytes() == searched[: start + keep]
    trials = _study(path).trials
    cut_trial, redo = trials[BUDGET - 1], trials[-1]
    assert len(trials) == BUDGET + 1
    assert cut_trial.state == TrialState.FAIL
    assert cut_trial.user_attrs["failure_kind"] == "interrupted"
    assert redo.user_attrs["retry_of"] == BUDGET - 1
    assert redo.user_attrs["key"] == cut_trial.user_attrs["key"]
    counted = [t for t in trials if t.user_attrs.get("failure_kind") not in NOT_COUNTED]
    assert len(counted) == BUDGET == len({t.user_attrs["key"] for t in counted})
    assert json.loads(result.stdout)["finished"] == BUDGET


@pytest.mark.fmnist
def test_the_repair_is_one_line_on_the_stderr_of_a_reading_command(searched, tmp_path):
    path = tmp_path / "s.journal"
    start = _last_line_start(searched)
    path.write_bytes(searched[: start + 14])  # up to the op code and its comma
    line = searched[:start].count(b"\n") + 1
    result = _nlfs("best", "--study", "s", "--storage", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(
        f"Repaired journal {path}: dropped its last line (line {line}, 14 "
        "bytes: set_trial_state_values; no newline at its end (cut mid-write)); the damaged "
        f"file is kept as {path}.bak"
    )
    assert result.stderr.count("\n") == 1
    assert json.loads(result.stdout)["finished"] == BUDGET - 1  # the cut trial is running


def _glued(searched: bytes) -> tuple[bytes, int]:
    """A cut line with a later write appended to it (what Optuna itself leaves), and its
    line number: a damaged line in the middle."""
    lines = searched.splitlines(keepends=True)
    middle = len(lines) // 2
    return b"".join([*lines[:middle], lines[middle][:20], *lines[middle:]]), middle + 1


@pytest.mark.fmnist
def test_a_damaged_middle_line_is_a_one_line_error_and_nothing_is_written(searched, tmp_path):
    path = tmp_path / "s.journal"
    damaged, line = _glued(searched)
    path.write_bytes(damaged)
    for args in (["best", "--study", "s"], ["export", "--study", "s", "--trial", "0"]):
        result = _nlfs(*args, "--storage", str(path))
        assert result.returncode == 2
        assert result.stderr.startswith(f"Error: journal {path} is damaged at line {line} ")
        assert result.stderr.count("\n") == 1 and "nlfs repair" in result.stderr
    result = _search(path)
    assert result.returncode == 2 and f"damaged at line {line} " in result.stderr
    assert path.read_bytes() == damaged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.journal"]


@pytest.mark.fmnist
def test_repair_salvages_the_lines_before_the_damage_and_the_search_resumes(
    searched, tmp_path, resume
):
    path = tmp_path / "s.journal"
    damaged, line = _glued(searched)
    path.write_bytes(damaged)
    result = _nlfs("repair", "--storage", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    out = tmp_path / "s.repaired.journal"
    lines = searched.splitlines(keepends=True)
    assert report["out"] == str(out) and report["line"] == line
    assert (report["kept"], report["dropped"]) == (line - 1, len(lines) - line + 1)
    assert out.read_bytes() == b"".join(lines[: line - 1])
    assert path.read_bytes() == damaged

    resumed, logged = resume(out)
    assert resumed.exit_code == 0 and logged == [], resumed.output
    counted = [t for t in _study(out).trials if t.user_attrs.get("failure_kind") not in NOT_COUNTED]
    assert len(counted) == BUDGET == len({t.user_attrs["key"] for t in counted})
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in counted)


def test_repair_of_a_sound_journal_or_onto_an_existing_file(tmp_path):
    path = tmp_path / "s.journal"
    path.write_bytes(b'{"op_code":0,"worker_id":"w","study_name":"s","directions":[2]}\n')
    result = _nlfs("repair", "--storage", str(path))
    assert result.returncode == 0 and "every line is sound; nothing written" in result.stdout
    path.write_bytes(path.read_bytes() + b"{cut")
    (tmp_path / "taken.journal").write_bytes(b"")
    result = _nlfs("repair", "--storage", str(path), "--out", str(tmp_path / "taken.journal"))
    assert result.returncode == 2 and "exists already" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.fixture
def read_only_folder():
    """A folder no one but root may write: (folder, how to run a command as someone else).

    Root writes anywhere, so as root the command runs as ``nobody`` (setpriv), in a folder
    outside pytest's private temporary tree.
    """
    top = Path(tempfile.mkdtemp(prefix="nlfs-ro-"))
    top.chmod(0o755)
    folder = top / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            shutil.rmtree(top)
            pytest.skip("running as root without setpriv: no way to be refused a write")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        # `nobody` must be able to run this checkout's venv: not so where it sits in a private
        # folder (a fresh clone under `mktemp -d`, say)
        probe = subprocess.run([*prefix, NLFS, "--help"], capture_output=True, timeout=120)
        if probe.returncode != 0:
            shutil.rmtree(top)
            pytest.skip("as root, and `nobody` cannot run this checkout's nlfs (private folder)")
    yield folder, prefix
    folder.chmod(0o755)
    shutil.rmtree(top)


def test_a_storage_in_a_read_only_folder_is_refused_before_training(read_only_folder):
    folder, prefix = read_only_folder
    path = folder / "s.journal"
    env = {**os.environ, "HOME": str(folder.parent)}
    result = subprocess.run(
        [*prefix, NLFS, "--threads", "1", "search", "--profile", "micro", "--budget", "1",
         "--study", "s", "--storage", str(path), "--device", "cpu"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"Error: cannot write storage {path}: Permission denied")
    assert result.stderr.count("\n") == 1
    assert list(folder.iterdir()) == []
