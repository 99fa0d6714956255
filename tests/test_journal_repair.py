"""Damaged journal files: a cut last line is repaired on open, a damaged middle is refused.

The journals here are written by Optuna itself through :mod:`nlfs.storage` (no training), and
read back with Optuna's own reader, the independent judge of what a journal holds.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hypothesis import given
from hypothesis import strategies as st
from optuna.trial import TrialState

from nlfs import journal
from nlfs.errors import ConfigError
from nlfs.journal import JournalCorruptError
from nlfs.storage import (
    INTERRUPTED,
    load_existing_study,
    open_study,
    recover_interrupted,
    resolve_storage,
    set_trial_user_attrs,
    study_storage,
    trial_id_of,
    worker_identity,
)


def _dead_pid() -> int:
    return int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> bytes:
    """A journal of two trials whose worker died; its last line finishes trial 1."""
    path = tmp_path_factory.mktemp("journal") / "s.journal"
    study = open_study("s", resolve_storage(str(path), "s"), attrs={"kind": "search"})
    dead = {**worker_identity(), "pid": _dead_pid()}
    for value in (0.25, 0.5):
        trial = study.ask()
        set_trial_user_attrs(study_storage(study), trial_id_of(trial), {"worker": dead})
        study.tell(trial, value)
    return path.read_bytes()


def _last_line_start(data: bytes) -> int:
    return data.rstrip(b"\n").rfind(b"\n") + 1


def _trials(path: Path) -> list[tuple[int, TrialState, float | None]]:
    """What Optuna's own reader sees in a journal file."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.load_study(study_name="s", storage=storage)
    return [(t.number, t.state, t.value) for t in study.trials]


@given(cut=st.integers(min_value=1, max_value=10_000))
def test_a_cut_last_line_is_dropped_with_a_backup_and_its_trial_recovered(
    written, tmp_path_factory, cut
):
    """Any cut inside the last line: the repaired file is the journal without that line."""
    path = tmp_path_factory.mktemp("cut") / "s.journal"
    start = _last_line_start(written)
    damaged = written[: start + cut % (len(written) - start - 1) + 1]
    assert start < len(damaged) < len(written)
    path.write_bytes(damaged)

    study = load_existing_study("s", str(path))

    assert path.read_bytes() == written[:start]
    assert Path(f"{path}.bak").read_bytes() == damaged
    assert [(t.number, t.state) for t in study.trials] == [
        (0, TrialState.COMPLETE),
        (1, TrialState.RUNNING),
    ]
    assert recover_interrupted(study) == [1]
    assert _trials(path) == [(0, TrialState.COMPLETE, 0.25), (1, TrialState.FAIL, None)]
    assert study.trials[1].user_attrs["failure_kind"] == INTERRUPTED


def test_the_repair_says_in_one_line_what_was_dropped(written, tmp_path, caplog):
    path = tmp_path / "s.journal"
    start = _last_line_start(written)
    cut = written.index(b'"state"', start) - start  # the cut keeps the trial id
    path.write_bytes(written[: start + cut])
    with caplog.at_level(logging.WARNING, logger="nlfs.journal"):
        resolve_storage(str(path), "s")
    (message,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in message
    line = written[:start].count(b"\n") + 1
    assert f"line {line}, {cut} bytes: set_trial_state_values of trial id 1" in message
    assert f"{path}.bak" in message


def test_an_older_backup_is_never_overwritten(written, tmp_path):
    path = tmp_path / "s.journal"
    Path(f"{path}.bak").write_bytes(b"older\n")
    path.write_bytes(written[: _last_line_start(written) + 7])
    resolve_storage(str(path), "s")
    assert Path(f"{path}.bak").read_bytes() == b"older\n"
    assert Path(f"{path}.bak.1").stat().st_size == _last_line_start(written) + 7


def test_a_sound_journal_is_left_alone(written, tmp_path):
    path = tmp_path / "s.journal"
    path.write_bytes(written)
    assert journal.repair_tail(path) is None and journal.scan(path) is None
    assert path.read_bytes() == written
    assert not Path(f"{path}.bak").exists()


def test_a_write_finishing_under_the_lock_is_not_mistaken_for_damage(written, tmp_path):
    """Seen without the lock the tail is partial; the writer holding it completes the line."""
    path = tmp_path / "s.journal"
    start = _last_line_start(written)
    path.write_bytes(written[: start + 30])

    @contextlib.contextmanager
    def writer_finishes():
        with path.open("ab") as fh:
            fh.write(written[start + 30 :])
        yield

    assert journal.repair_tail(path, writer_finishes) is None
    assert path.read_bytes() == written


@pytest.mark.parametrize("garbage", [b"{not json\n", b"[1, 2]\n", b'{"op_code": "x"}\n', b"\xff\n"])
def test_a_damaged_middle_line_is_refused_naming_it_and_nothing_is_written(
    written, tmp_path, garbage
):
    path = tmp_path / "s.journal"
    lines = written.splitlines(keepends=True)
    damaged = b"".join([*lines[:3], garbage, *lines[3:]])
    path.write_bytes(damaged)
    for open_ in (
        lambda: resolve_storage(str(path), "s"),
        lambda: load_existing_study("s", str(path)),
    ):
        with pytest.raises(JournalCorruptError) as caught:
            open_()
        message = str(caught.value)
        assert "\n" not in message
        assert f"journal {path} is damaged at line 4 " in message and "nlfs repair" in message
    assert path.read_bytes() == damaged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.journal"]


def test_a_glued_line_left_by_a_later_append_is_found(written, tmp_path):
    """What Optuna makes of a cut line today: the next writer appends right after it."""
    path = tmp_path / "s.journal"
    start = _last_line_start(written)
    path.write_bytes(written[: start + 50] + written[start:])
    line = written[:start].count(b"\n") + 1
    damage = journal.scan(path)
    assert (damage.line, damage.offset, damage.is_last) == (line, start, True)
    path.write_bytes(written[: start + 50] + written[start:] + written[start:])
    with pytest.raises(JournalCorruptError, match=f"line {line} "):
        resolve_storage(str(path), "s")


def test_salvage_keeps_the_lines_before_the_damage_and_optuna_reads_them(written, tmp_path):
    path, out = tmp_path / "s.journal", tmp_path / "new.journal"
    lines = written.splitlines(keepends=True)
    cut = len(lines) - 2  # the damage hides trial 1's outcome and what follows
    path.write_bytes(b"".join([*lines[:cut], b"garbage\n", *lines[cut:]]))
    result = journal.salvage(path, out)
    assert (result.kept, result.dropped, result.damage.line) == (cut, 3, cut + 1)
    assert out.read_bytes() == b"".join(lines[:cut])
    assert _trials(out)[0] == (0, TrialState.COMPLETE, 0.25)
    assert _trials(out)[1][1] == TrialState.RUNNING
    with pytest.raises(ConfigError, match="exists already"):
        journal.salvage(path, out)


def test_salvage_of_a_sound_journal_writes_nothing(written, tmp_path):
    path, out = tmp_path / "s.journal", tmp_path / "new.journal"
    path.write_bytes(written)
    assert journal.salvage(path, out) is None
    assert not out.exists()


def test_a_full_disk_fails_the_open_before_anything_is_written(tmp_path, monkeypatch):
    """ENOSPC from the operating system, injected at os.write for files in tmp_path only."""
    real_write = os.write

    def full(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    path = tmp_path / "s.journal"
    with pytest.raises(ConfigError, match="No space left on device") as caught:
        resolve_storage(str(path), "s")
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_tail_that_cannot_be_repaired_says_so(written, tmp_path, monkeypatch):
    path = tmp_path / "s.journal"
    path.write_bytes(written[:-1])

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr("nlfs.journal.shutil.copy2", read_only)
    with pytest.raises(ConfigError, match="cannot be repaired in place .Permission denied"):
        load_existing_study("s", str(path))
    assert path.read_bytes() == written[:-1]


def test_the_repair_holds_the_lock_that_optuna_writers_take(tmp_path):
    """While held, Optuna's own lock on the file cannot be taken (its lock file exists)."""
    from optuna.storages.journal._file import LOCK_FILE_SUFFIX

    from nlfs.optuna_compat import journal_lock

    path = tmp_path / "s.journal"
    path.write_bytes(b"")
    with journal_lock(str(path)):
        assert os.path.lexists(f"{path}{LOCK_FILE_SUFFIX}")
    assert not os.path.lexists(f"{path}{LOCK_FILE_SUFFIX}")
