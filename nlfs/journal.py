"""Journal files damaged on disk: finding the damage, repairing a cut last line, salvaging.

An Optuna journal file holds one JSON object per line (one storage operation each), appended
under a lock and fsynced. Power loss, a full disk or a writer killed mid-write can leave the
last line cut short; Optuna then fails with a JSON decoding error, or worse, the next writer
glues its line onto the partial one and the damage moves into the middle of the file.

- A damaged *last* line is repaired on open (:func:`repair_tail`, called by
  :func:`nlfs.storage.resolve_storage`): the file is copied to ``FILE.bak``, the partial line is
  cut off and one line on stderr says what was dropped. Only the operation being written is
  lost; a trial it left RUNNING is recovered as ``interrupted`` like any dead worker's trial.
- A damaged line in the *middle* is not guessed at: :class:`JournalCorruptError` names the file
  and line, nothing is written, and ``nlfs repair`` (:func:`salvage`) copies the lines before it
  into a new file.

This module knows the file format only (lines of JSON objects with an ``op_code``); the lock
and the names of Optuna's operations are passed in by :mod:`nlfs.storage`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from nlfs.errors import ConfigError, NLFSError

logger = logging.getLogger(__name__)
"""Repairs are reported here at WARNING (with no logging set up, Python prints the bare
message on stderr: one line)."""

PROBE_BYTES = 64 * 1024
"""Size of the write that tests a journal's folder before any training: room for the records
of a few trials, so a disk that is full (or nearly) fails now and not after hours of work."""

_CHUNK = 1 << 20
"""Bytes read at a time when scanning a journal."""


class JournalCorruptError(NLFSError):
    """A journal file with a damaged line that is not its last: it is left as it is."""


@dataclass(frozen=True)
class Damage:
    """The first damaged line of a journal file.

    Attributes:
        path: the journal file.
        line: its 1-based line number.
        offset: byte offset where it starts; every byte before it is sound.
        length: its length in bytes (with the newline, if it has one).
        size: size of the file when scanned.
        reason: what is wrong with it, for people.
    """

    path: Path
    line: int
    offset: int
    length: int
    size: int
    reason: str

    @property
    def is_last(self) -> bool:
        """Whether nothing follows the damaged line (a write cut short)."""
        return self.offset + self.length == self.size


@dataclass(frozen=True)
class Salvage:
    """What :func:`salvage` wrote: ``kept`` operations (lines) into ``out``, ``dropped`` lost."""

    source: Path
    out: Path
    kept: int
    dropped: int
    damage: Damage


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of every line of ``path``, the last one possibly without newline."""
    with path.open("rb") as fh:
        offset = 0
        for line in fh:
            yield offset, line
            offset += len(line)


def _problem(line: bytes) -> str | None:
    """Why ``line`` is not a sound journal record, or None when it is one."""
    if not line.endswith(b"\n"):
        return "no newline at its end (cut mid-write)"
    try:
        record = json.loads(line)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError alike
        return f"not JSON ({type(err).__name__}: {str(err).splitlines()[0][:80]})"
    if not isinstance(record, dict) or not isinstance(record.get("op_code"), int):
        return "not a journal record (a JSON object with an integer op_code)"
    return None


def scan(path: str | os.PathLike) -> Damage | None:
    """The first damaged line of the journal file ``path``; None when every line is sound."""
    path = Path(path)
    size = path.stat().st_size
    for number, (offset, line) in enumerate(_lines(path), start=1):
        if offset + len(line) > size:  # appended while we read: not ours to judge
            return None
        reason = _problem(line)
        if reason is not None:
            return Damage(path, number, offset, len(line), size, reason)
    return None


def _last_line(path: Path) -> bytes:
    """The last line of ``path`` (read backwards, so a long journal costs a few reads)."""
    with path.open("rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        start, tail = end, b""
        while start > 0:
            start = max(0, start - 4096)
            fh.seek(start)
            tail = fh.read(end - start)
            cut = tail.rfind(b"\n", 0, len(tail) - 1)
            if cut >= 0:
                return tail[cut + 1 :]
        return tail


def tail_is_sound(path: str | os.PathLike) -> bool:
    """Whether the last line of ``path`` is a complete record (or the file is empty)."""
    line = _last_line(Path(path))
    return not line or _problem(line) is None


def describe(line: bytes, op_names: Mapping[int, str] | None = None) -> str:
    """What a (possibly cut) record was doing, for people: ``set_trial_state_values of trial
    id 3``; read with patterns, since the line is not valid JSON."""
    op = re.search(rb'"op_code":\s*(\d+)', line)
    if op is None:
        return "an operation cut before its name"
    code = int(op.group(1))
    what = (op_names or {}).get(code, f"operation {code}")
    trial = re.search(rb'"trial_id":\s*(\d+)', line)
    return f"{what} of trial id {int(trial.group(1))}" if trial else what


def corrupt_error(damage: Damage) -> JournalCorruptError:
    """The one-line error for a journal damaged before its last line."""
    return JournalCorruptError(
        f"journal {damage.path} is damaged at line {damage.line} of its lines ({damage.reason}) "
        f"and more lines follow, so it is not a cut last write; nothing was written. Run "
        f"`nlfs repair --storage {damage.path}` to copy the {damage.line - 1} sound lines "
        "before it into a new file"
    )


def _free_name(path: Path) -> Path:
    """``path``, or ``path.N`` for the smallest N not taken (an older backup is never lost)."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def repair_tail(
    path: str | os.PathLike,
    lock: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    op_names: Mapping[int, str] | None = None,
) -> Damage | None:
    """Cut a damaged last line off a journal file, keeping a ``.bak`` copy; None if sound.

    Cheap when the file is sound (its last line is read, nothing else). Otherwise, holding
    ``lock`` (the lock the journal's writers take, so a write in progress is never mistaken
    for damage), the whole file is scanned again: a damaged last line is copied away with the
    file to ``FILE.bak`` and truncated, and one line is logged saying what was dropped.

    Args:
        path: the journal file (it must exist).
        lock: returns a context manager holding the writers' lock.
        op_names: names of the journal's operation codes, for the message.

    Returns:
        The damage repaired, or None when there was none.

    Raises:
        JournalCorruptError: a damaged line that is not the last (nothing is written).
        ConfigError: the file cannot be repaired where it is (no permission, disk full).
    """
    path = Path(path)
    if tail_is_sound(path):
        return None
    try:
        with lock():
            damage = scan(path)
            if damage is None:
                return None  # it was a write in progress, finished by now
            if not damage.is_last:
                raise corrupt_error(damage)
            backup = _free_name(path.with_name(path.name + ".bak"))
            shutil.copy2(path, backup)
            with path.open("r+b") as fh:
                dropped = fh.read()[damage.offset :]
                fh.truncate(damage.offset)
                fh.flush()
                os.fsync(fh.fileno())
    except OSError as err:
        raise ConfigError(
            f"journal {path} has a damaged last line and cannot be repaired in place "
            f"({err.strerror or err}); copy it somewhere writable and run `nlfs repair`"
        ) from None
    logger.warning(
        "Repaired journal %s: dropped its last line (line %d, %d bytes: %s; %s); the damaged "
        "file is kept as %s, and a trial it left running is recovered as interrupted.",
        path,
        damage.line,
        damage.length,
        describe(dropped, op_names),
        damage.reason,
        backup,
    )
    return damage


def salvage(path: str | os.PathLike, out: str | os.PathLike) -> Salvage | None:
    """Copy the sound lines of a journal before its first damaged line into a new file.

    Every operation before the damage is kept, in order, so the new file is a journal of the
    study as it stood then; the damaged line and every line after it are dropped. A trial left
    RUNNING in it is recovered as ``interrupted`` by the next command that resumes it.

    Returns:
        What was kept and dropped; None (and nothing written) when the journal is sound.

    Raises:
        ConfigError: ``path`` is missing, or ``out`` exists already or cannot be written.
    """
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise ConfigError(f"journal {path} does not exist")
    if out.exists():
        raise ConfigError(f"{out} exists already; pass another --out")
    damage = scan(path)
    if damage is None:
        return None
    dropped = 0
    try:
        with path.open("rb") as src, out.open("xb") as dst:
            remaining = damage.offset
            while remaining:
                chunk = src.read(min(_CHUNK, remaining))
                dst.write(chunk)
                remaining -= len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
            for _ in src:
                dropped += 1
    except OSError as err:
        raise ConfigError(f"cannot write {out}: {err.strerror or err}") from None
    return Salvage(path, out, damage.line - 1, dropped, damage)


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, before any training, if the journal ``path`` cannot be written.

    A file is created and written (:data:`PROBE_BYTES`, fsynced) next to the journal and
    removed: a read-only folder and a full disk both fail here, with one line.

    Raises:
        ConfigError: naming the journal and the operating system's reason.
    """
    path = Path(path)
    try:
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        fd, probe = tempfile.mkstemp(prefix=".nlfs-probe-", dir=path.parent)
        try:
            written = 0
            while written < PROBE_BYTES:
                written += os.write(fd, bytes(PROBE_BYTES - written))
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise ConfigError(
            f"cannot write storage {path}: {err.strerror or err} in {path.parent}; free some "
            "space or pass a writable --storage"
        ) from None


__all__ = [
    "PROBE_BYTES",
    "Damage",
    "JournalCorruptError",
    "Salvage",
    "check_writable",
    "corrupt_error",
    "describe",
    "repair_tail",
    "salvage",
    "scan",
    "tail_is_sound",
]
