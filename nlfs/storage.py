"""Where a study lives: Optuna storages, opening studies, and recovering dead workers' trials.

A search is one Optuna study (docs/architecture.md), so anything that reads Optuna storages
(``optuna.load_study``, optuna-dashboard) reads our runs. The default storage is a journal file
under ``runs/`` (no server); a URL such as ``sqlite:///x.db`` or ``postgresql://...`` selects
Optuna's RDB storage with a heartbeat, the scale-out path for workers on many machines.

Every trial records the worker that runs it (``worker``: host, pid and a start token), so a run
that starts later can tell a trial whose worker died (its pid is gone on this host, or, on an RDB
storage, its heartbeat stopped) from one that is still running, fail it with failure kind
``interrupted`` and evaluate its candidate again.

The rest of NLFS reaches Optuna internals only through names of this module (``study_storage``,
``study_id_of``, ``trial_id_of``, ``Heartbeat``, ``ScoredTPESampler``, ...); their
implementations live in :mod:`nlfs.optuna_compat`, which nothing else imports.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import (
    DuplicatedStudyError,
    ExperimentalWarning,
    UpdateFinishedTrialError,
)
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from nlfs import journal, optuna_compat
from nlfs.errors import ConfigError
from nlfs.optuna_compat import (
    ScoredTPESampler,
    quiet_in_memory_study,
    study_id_of,
    study_storage,
    trial_id_of,
)


def _env_seconds(name: str, default: int) -> int:
    """A whole number of seconds from the environment variable ``name`` (``default`` if unset)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name}={text!r} must be a whole number of seconds, at least 1")
    return int(text)


HEARTBEAT_INTERVAL_S = _env_seconds("NLFS_HEARTBEAT_S", 60)
"""How often a worker on an RDB storage records that it is alive (seconds; env NLFS_HEARTBEAT_S).
Every worker and command on one study should use the same values."""
GRACE_PERIOD_S = _env_seconds("NLFS_GRACE_S", 180)
"""How long a missing heartbeat is tolerated before the trial counts as interrupted (seconds;
env NLFS_GRACE_S). Shorter recovers a dead worker's trial sooner; it must stay well above the
heartbeat interval, or a slow database round trip fails a live worker's trial."""
if GRACE_PERIOD_S <= HEARTBEAT_INTERVAL_S:
    raise ConfigError(
        f"NLFS_GRACE_S ({GRACE_PERIOD_S}) must exceed NLFS_HEARTBEAT_S ({HEARTBEAT_INTERVAL_S})"
    )
STRAGGLER_POLL_S = 1.0
"""How often a worker with nothing left to do checks on other workers' running trials on a
journal (an RDB storage is checked once per heartbeat interval)."""

INTERRUPTED = "interrupted"
"""``failure_kind`` of a trial whose worker stopped (Ctrl-C, crash); its candidate is redone."""
SURPLUS = "surplus"
"""``failure_kind`` of a reservation made after the shared budget was already reached."""
NOT_COUNTED = (INTERRUPTED, SURPLUS)
"""Failure kinds that do not use up budget (the work was never done)."""

# Containers that share a hostname but not process ids must each set NLFS_WORKER_HOST, or one
# would judge another's trials by a pid that means nothing in its own namespace.
_HOST = os.environ.get("NLFS_WORKER_HOST", "").strip() or socket.gethostname()
_TOKEN = uuid.uuid4().hex[:8]


def quiet_optuna() -> None:
    """Keep Optuna's INFO lines (one per trial and per study) out of the command's output."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def worker_identity() -> dict[str, Any]:
    """This process as a trial attribute: host, pid and a token unique to this process start."""
    return {"host": _HOST, "pid": os.getpid(), "token": _TOKEN}


def worker_label() -> str:
    """A short unique name of this worker process (for per-worker study attributes)."""
    return f"{_HOST}-{os.getpid()}-{_TOKEN}"


def storage_label(storage: BaseStorage) -> str:
    """A human-readable description of a storage (path of a journal file or the URL)."""
    return (
        optuna_compat.journal_file_path(storage)
        or optuna_compat.rdb_url(storage)
        or type(storage).__name__
    )


def resolve_storage(
    storage: str | None,
    study_name: str,
    runs_dir: str | os.PathLike = "runs",
    *,
    writable: bool = True,
) -> BaseStorage:
    """The Optuna storage named on the command line.

    Args:
        storage: None for the default journal file ``<runs_dir>/<study_name>.journal``; a URL
            containing ``://`` for an RDB storage (``sqlite:///...``, ``postgresql://...``);
            anything else is the path of a journal file.
        study_name: the study, used to name the default journal file.
        runs_dir: folder of default journal files (created when missing).
        writable: a journal must be writable: its folder is tested with a write now, so a
            read-only folder or a full disk fails before any training (readers pass False).

    A journal whose last line was cut mid-write is repaired (a ``.bak`` copy is kept and one
    line on stderr says what was dropped; see :mod:`nlfs.journal`).

    Raises:
        ConfigError: a path that is a folder, or whose parent folder is missing outside the
            current directory (the default ``runs_dir`` is always created), or a URL the RDB
            storage cannot open, or a journal that cannot be written.
        JournalCorruptError: a journal damaged before its last line (nothing is written).
    """
    if storage is not None and "://" in storage:
        try:
            with warnings.catch_warnings():
                # The heartbeat is "experimental" in Optuna; it is the documented way to fail
                # trials of dead workers, so the warning would only be noise for users.
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(
                    storage, heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=GRACE_PERIOD_S
                )
        except Exception as err:  # sqlalchemy raises many kinds; all mean "cannot open"
            raise ConfigError(f"cannot open storage {storage!r}: {err}") from None
    if storage is None:
        if not study_name or "/" in study_name or study_name.startswith("."):
            raise ConfigError(f"study name {study_name!r} cannot name a file; choose another")
        path = Path(runs_dir) / f"{study_name}.journal"
    else:
        path = Path(storage).expanduser()
    path = path.resolve()
    if path.is_dir():
        raise ConfigError(f"storage {path} is a folder; give a journal file path or a URL")
    if not path.parent.exists():
        # Only folders under the working directory are created, so a typo elsewhere fails.
        if storage is not None and not path.parent.is_relative_to(Path.cwd().resolve()):
            raise ConfigError(f"folder {path.parent} of storage {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
    if writable:
        _check_writable_once(path)
    return _open_journal(path)


_WRITABLE: set[Path] = set()
"""Journals this process has found writable: the probe write is made once per file, not on
every recovery poll."""


def _check_writable_once(path: Path) -> None:
    if path not in _WRITABLE:
        journal.check_writable(path)
        _WRITABLE.add(path)


def _open_journal(path: Path) -> JournalStorage:
    """A journal storage on ``path``, its cut last line repaired (:mod:`nlfs.journal`)."""
    try:
        backend = JournalFileBackend(str(path))  # creates the file when missing
    except OSError as err:
        raise ConfigError(f"cannot create storage {path}: {err.strerror or err}") from None
    journal.repair_tail(
        path, lambda: optuna_compat.journal_lock(str(path)), optuna_compat.JOURNAL_OP_NAMES
    )
    try:
        return JournalStorage(backend)
    except Exception:  # Optuna's replay of a bad line: JSON, key, type or assertion errors
        damage = journal.scan(path)
        if damage is None:
            raise
        raise journal.corrupt_error(damage) from None


def load_existing_study(
    study_name: str,
    storage: str | BaseStorage | None,
    runs_dir: str | os.PathLike = "runs",
) -> optuna.Study:
    """Load a study that must already exist; the one loader of every command that reads one.

    Unlike :func:`resolve_storage` this never creates an empty journal file for a typo.

    Args:
        study_name: the study.
        storage: as for :func:`resolve_storage` (None: ``<runs_dir>/<study_name>.journal``), or
            an open storage object.
        runs_dir: folder of default journal files.

    Raises:
        ConfigError: no such journal file, or no such study in the storage (one line naming
            the storage, and the studies it holds).
    """
    if isinstance(storage, BaseStorage):
        resolved = storage
    else:
        if storage is None or "://" not in storage:
            path = Path(storage or Path(runs_dir) / f"{study_name}.journal").expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"no study named {study_name!r} in {path}: the file does not exist; create "
                    "the study first (`nlfs search`, `nlfs transfer`, `nlfs eliminate`) or pass "
                    "--storage where it was stored"
                )
        resolved = resolve_storage(storage, study_name, runs_dir, writable=False)
    try:
        return optuna.load_study(study_name=study_name, storage=resolved)
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(resolved)) or "none"
        raise ConfigError(
            f"no study named {study_name!r} in {storage_label(resolved)}; studies there: {names}"
        ) from None


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs.extend(_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            diffs.append(f"{prefix}{key}: stored {json.dumps(a)} vs now {json.dumps(b)}")
    return diffs


def open_study(
    study_name: str,
    storage: BaseStorage,
    *,
    attrs: Mapping[str, Any],
    unhashed: Iterable[str] = (),
) -> optuna.Study:
    """Create (direction maximize) or load a study, refusing a resume with another config.

    ``attrs`` become study user attributes. When the study exists and its stored
    ``config_hash`` differs from ``attrs["config_hash"]``, nothing is written and
    :class:`ConfigError` names the differing values (from the stored ``config`` attribute) and
    how to start a new study instead; keys of ``config`` named in ``unhashed`` (values that
    may change between runs, such as the budget) are left out of that list. On a matching
    resume the attributes are refreshed (for example a raised ``budget``).
    """
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        created = False
    except KeyError:
        try:
            study = optuna.create_study(
                study_name=study_name, storage=storage, direction="maximize"
            )
            created = True
        except DuplicatedStudyError:  # another worker created it a moment ago
            study = optuna.load_study(study_name=study_name, storage=storage)
            created = False
    if not created:
        stored = study.user_attrs
        if stored.get("kind", attrs.get("kind")) != attrs.get("kind"):
            raise ConfigError(
                f"study {study_name!r} is a {stored.get('kind')!r} study, not "
                f"{attrs.get('kind')!r}; choose another --study name"
            )
        if "config_hash" in attrs and stored.get("config_hash") not in (None, attrs["config_hash"]):
            skip = set(unhashed)
            old = {k: v for k, v in (stored.get("config") or {}).items() if k not in skip}
            new = {k: v for k, v in (attrs.get("config") or {}).items() if k not in skip}
            diffs = _differences(old, new)
            detail = "; ".join(diffs) if diffs else "config hash differs"
            raise ConfigError(
                f"study {study_name!r} in {storage_label(storage)} was run with another config "
                f"({detail}); to start a new search pass another --study NAME or --storage"
            )
    for key, value in attrs.items():
        if created or study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    return study


def set_trial_user_attrs(storage: BaseStorage, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """Set several user attributes of a trial (one journal write where possible)."""
    if not optuna_compat.append_trial_user_attrs(storage, trial_id, attrs):
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)


def set_trial_intermediate_values(
    storage: BaseStorage, trial_id: int, points: Mapping[int, float]
) -> None:
    """Store points of a running trial's learning curve (Optuna's ``trial.report``), ``step ->
    value``, in one journal write where possible (each write is a locked, fsynced append)."""
    if not points:
        return
    if not optuna_compat.append_trial_intermediate_values(storage, trial_id, points):
        for step, value in points.items():
            storage.set_trial_intermediate_value(trial_id, int(step), float(value))


def set_study_user_attrs(study: optuna.Study, attrs: Mapping[str, Any]) -> None:
    """Set several user attributes of a study (one journal write where possible)."""
    if not optuna_compat.append_study_user_attrs(study_storage(study), study_id_of(study), attrs):
        for key, value in attrs.items():
            study.set_user_attr(key, value)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _worker_dead(worker: Any) -> bool:
    """True when the recorded worker ran on this host and its process is gone."""
    if not isinstance(worker, Mapping) or worker.get("host") != _HOST:
        return False
    pid = worker.get("pid")
    if not isinstance(pid, int):
        return False
    if pid == os.getpid():
        # Our own pid: the trial is ours only if it carries this process's token.
        return worker.get("token") != _TOKEN
    return not _pid_alive(pid)


def mark_interrupted(study: optuna.Study, number: int, trial_id: int | None = None) -> bool:
    """Fail a RUNNING trial with failure kind ``interrupted``; False if it already finished."""
    storage = study_storage(study)
    if trial_id is None:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id_of(study), number)
    try:
        set_trial_user_attrs(storage, trial_id, {"failure_kind": INTERRUPTED, "state": INTERRUPTED})
        return bool(storage.set_trial_state_values(trial_id, TrialState.FAIL))
    except (UpdateFinishedTrialError, RuntimeError):
        return False  # another worker finished or recovered it first


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose worker is dead; return their numbers.

    Journal storages: a trial's ``worker`` attribute names host and pid; a pid that no longer
    exists on this host means the worker died (trials of other hosts are left alone: only a
    worker on that host, or an RDB heartbeat, can tell). RDB storages with a heartbeat: trials
    whose heartbeat stopped longer than the grace period ago are failed the same way.
    The runner evaluates the candidates of these trials again.
    """
    storage = study_storage(study)
    path = optuna_compat.journal_file_path(storage)
    if path is not None:  # every writing command passes here before it trains
        _check_writable_once(Path(path))
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    recovered = []
    for trial in running:
        if _worker_dead(trial.user_attrs.get("worker")) and mark_interrupted(
            study, trial.number, trial_id_of(trial)
        ):
            recovered.append(trial.number)
    # Not Optuna's fail_stale_trials: it fails the trials first, and an RDB storage then
    # refuses the failure kind that tells an interrupted trial from a failed training.
    for trial_id in optuna_compat.stale_trial_ids(storage, study_id_of(study)):
        number = storage.get_trial_number_from_id(trial_id)
        if number not in recovered and mark_interrupted(study, number, trial_id):
            recovered.append(number)
    return sorted(recovered)


def await_stragglers(study: optuna.Study, own: Iterable[int] = ()) -> list[int]:
    """Wait while other workers' trials run, recovering those whose worker died.

    A worker with nothing left to do calls this before it exits, so that a trial whose worker
    died is redone by a live one instead of waiting for the next command: the dead trial's
    candidate (or grid job) is retried at once on a journal of this host, and after the
    heartbeat grace period on an RDB storage. Only trials this process can judge are waited for
    (all of them with a heartbeat; on a journal, those of workers on this host).

    Args:
        study: the study.
        own: numbers of this worker's trials (never waited for).

    Returns:
        The numbers recovered as ``interrupted`` (the caller retries them), or an empty list
        once no other judgeable trial is running.
    """
    storage = study_storage(study)
    heartbeat = optuna_compat.heartbeat_enabled(storage)
    poll_s = HEARTBEAT_INTERVAL_S if heartbeat else STRAGGLER_POLL_S
    mine = set(own)
    while True:
        running = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.number not in mine and (heartbeat or _on_this_host(t.user_attrs.get("worker")))
        ]
        if not running:
            return []
        recovered = recover_interrupted(study)
        if recovered:
            return recovered
        time.sleep(poll_s)  # a live worker is still training: its trial ends or goes stale


def _on_this_host(worker: Any) -> bool:
    return isinstance(worker, Mapping) and worker.get("host") == _HOST


def mark_alive(storage: BaseStorage, trial_id: int, *, name_worker: bool = False) -> None:
    """Give a trial this worker's first sign of life right after it turned RUNNING.

    Recovery judges a RUNNING trial by its worker's pid (this host) or its heartbeat (RDB): a
    trial that has neither, because its worker died before the :class:`Heartbeat` thread made
    its first beat, would stay RUNNING for good (and workers waiting for stragglers on an RDB
    storage would wait for it for good). Called right after the claim, this leaves one storage
    call's width between the claim and the first sign. ``name_worker``: also write the
    ``worker`` attribute (a search trial names it in its template already).
    """
    if name_worker:
        storage.set_trial_user_attr(trial_id, "worker", worker_identity())
    if optuna_compat.heartbeat_enabled(storage):
        storage.record_heartbeat(trial_id)


def create_running_trial(study: optuna.Study, user_attrs: Mapping[str, Any]) -> int:
    """A new RUNNING trial carrying ``user_attrs`` (the worker's identity among them), with its
    first sign of life given at once (:func:`mark_alive`); returns its trial id."""
    template = FrozenTrial(
        number=-1,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=datetime.now(tz=UTC),
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs=dict(user_attrs),
        system_attrs={},
        intermediate_values={},
        trial_id=-1,
    )
    storage = study_storage(study)
    trial_id = storage.create_new_trial(study_id_of(study), template_trial=template)
    mark_alive(storage, trial_id)
    return trial_id


class Heartbeat:
    """Records an RDB storage heartbeat for one trial while it runs (no-op for journals)."""

    def __init__(self, study: optuna.Study, trial_id: int) -> None:
        self._thread = optuna_compat.heartbeat_thread(trial_id, study_storage(study))

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join()


__all__ = [
    "GRACE_PERIOD_S",
    "HEARTBEAT_INTERVAL_S",
    "INTERRUPTED",
    "NOT_COUNTED",
    "SURPLUS",
    "Heartbeat",
    "ScoredTPESampler",
    "await_stragglers",
    "create_running_trial",
    "load_existing_study",
    "mark_alive",
    "mark_interrupted",
    "open_study",
    "quiet_in_memory_study",
    "quiet_optuna",
    "recover_interrupted",
    "resolve_storage",
    "set_study_user_attrs",
    "set_trial_intermediate_values",
    "set_trial_user_attrs",
    "storage_label",
    "study_id_of",
    "study_storage",
    "trial_id_of",
    "worker_identity",
    "worker_label",
]
