"""Every use of Optuna internals, in one place; imported only by :mod:`nlfs.storage`.

Optuna's public API has no way to reach a study's storage and id, to append several journal
records in one write, to run a trial's heartbeat thread, to create an in-memory study without an
INFO line, or to score TPE's candidate points. Each of those is one name here, and
``tests/test_optuna_internals.py`` has one test per name, so an Optuna upgrade that moves an
internal fails there first. ``pyproject.toml`` caps Optuna below its next major version.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled
from optuna.storages.journal import JournalFileSymlinkLock
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import FrozenTrial

_IN_MEMORY_LOGGER = "optuna.storages._in_memory"
"""The logger that announces every new in-memory study at INFO."""


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage object a study reads and writes."""
    return study._storage


def study_id_of(study: optuna.Study) -> int:
    """The storage's id of a study (the key of the storage's per-study methods)."""
    return study._study_id


def trial_id_of(trial: FrozenTrial) -> int:
    """The storage's id of a trial (the key of the storage's per-trial methods)."""
    return trial._trial_id


def journal_file_path(storage: BaseStorage) -> str | None:
    """The file of a journal storage on a file backend; None for any other storage."""
    path = getattr(getattr(storage, "_backend", None), "_file_path", None)
    return None if path is None else str(path)


def rdb_url(storage: BaseStorage) -> str | None:
    """The URL of an RDB storage (also when wrapped in Optuna's cache); None otherwise."""
    backend = getattr(storage, "_backend", storage)  # _CachedStorage wraps the RDB storage
    url = getattr(backend, "url", None)
    return None if url is None else str(url)


JOURNAL_OP_NAMES: Mapping[int, str] = {op.value: op.name.lower() for op in JournalOperation}
"""Names of the journal's operation codes (``6`` -> ``set_trial_state_values``)."""


@contextlib.contextmanager
def journal_lock(path: str) -> Iterator[None]:
    """Hold the lock that ``JournalFileBackend(path)`` takes around every append (its default
    lock: a symlink beside the file, broken by Optuna after its grace period if stale)."""
    lock = JournalFileSymlinkLock(path)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _journal_append(storage: BaseStorage, op: JournalOperation, logs: list[dict[str, Any]]) -> bool:
    """Append several journal records in one locked, fsynced write; False if not a journal.

    Optuna's JournalStorage writes (and fsyncs) one record per attribute; a trial has about
    fifteen, which made the journal the runner's largest cost. The records written here are
    exactly those ``set_trial_user_attr`` / ``set_study_user_attr`` write, so every Optuna
    reader replays them unchanged. A storage without the expected internals gets False, and the
    caller falls back to the public one-at-a-time calls.
    """
    if not isinstance(storage, JournalStorage):
        return False
    try:
        lock, backend = storage._thread_lock, storage._backend
        worker_id = storage._replay_result.worker_id
    except AttributeError:
        return False
    with lock:
        backend.append_logs([{"op_code": op, "worker_id": worker_id, **log} for log in logs])
        _replay_all(storage)
    return True


def _replay_all(storage: JournalStorage) -> None:
    """Replay the journal to its end, then raise the first error of our own records.

    Optuna's replay raises at the first record of this writer it cannot apply (another worker
    finished the trial meanwhile) and stops there, so the next record of the same batch would
    raise again at some later, unrelated read; each raise moves past one record, so this ends.
    """
    first: Exception | None = None
    while True:
        try:
            storage._sync_with_backend()
            break
        except (UpdateFinishedTrialError, KeyError) as err:
            first = first or err
    if first is not None:
        raise first


def append_trial_user_attrs(storage: BaseStorage, trial: int, attrs: Mapping[str, Any]) -> bool:
    """Set a trial's user attributes in one journal write; False when not possible."""
    logs = [{"trial_id": trial, "user_attr": {k: v}} for k, v in attrs.items()]
    return _journal_append(storage, JournalOperation.SET_TRIAL_USER_ATTR, logs)


def append_trial_intermediate_values(
    storage: BaseStorage, trial: int, points: Mapping[int, float]
) -> bool:
    """Set several intermediate values of a trial in one journal write; False when not
    possible. The records are those ``set_trial_intermediate_value`` writes."""
    logs = [
        {"trial_id": trial, "step": int(step), "intermediate_value": float(value)}
        for step, value in points.items()
    ]
    return _journal_append(storage, JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE, logs)


def append_study_user_attrs(storage: BaseStorage, study: int, attrs: Mapping[str, Any]) -> bool:
    """Set a study's user attributes in one journal write; False when not possible."""
    logs = [{"study_id": study, "user_attr": {k: v}} for k, v in attrs.items()]
    return _journal_append(storage, JournalOperation.SET_STUDY_USER_ATTR, logs)


def heartbeat_enabled(storage: BaseStorage) -> bool:
    """Whether the storage records trial heartbeats (an RDB storage built with an interval)."""
    return is_heartbeat_enabled(storage)


def heartbeat_thread(trial: int, storage: BaseStorage):
    """Optuna's heartbeat thread for a trial (``start()`` / ``join()``; a no-op without one)."""
    return get_heartbeat_thread(trial, storage)


def stale_trial_ids(storage: BaseStorage, study: int) -> list[int]:
    """Ids of the study's RUNNING trials whose heartbeat stopped longer than the grace period.

    ``fail_stale_trials`` fails them at once, and an RDB storage refuses attributes on a
    finished trial, so NLFS asks which they are first and writes the failure kind before
    failing them. A storage without a heartbeat has none.
    """
    if not is_heartbeat_enabled(storage):
        return []
    return list(storage._get_stale_trial_ids(study))


def quiet_in_memory_study(
    name: str,
    direction: optuna.study.StudyDirection,
) -> tuple[BaseStorage, int]:
    """A new in-memory storage holding one study ``name``: (storage, study id).

    The in-memory storage logs every study it creates at INFO; a strategy's private study
    would otherwise print a line on every resume.
    """
    storage = optuna.storages.InMemoryStorage()
    announcer = logging.getLogger(_IN_MEMORY_LOGGER)
    level = announcer.level
    announcer.setLevel(logging.WARNING)
    try:
        return storage, storage.create_new_study(directions=[direction], study_name=name)
    finally:
        announcer.setLevel(level)


class ScoredTPESampler(optuna.samplers.TPESampler):
    """``TPESampler`` whose acquisition values pass through :meth:`adjust_scores`.

    TPE scores ``n_ei_candidates`` points drawn from the good-trial density and keeps the best;
    a subclass may rule points out (score ``-inf``) before that choice.
    """

    def adjust_scores(self, samples: Mapping[str, np.ndarray], scores: np.ndarray) -> np.ndarray:
        """Return the scores of the candidate points (``samples``: parameter name -> one
        internal-representation value per point). The default keeps TPE's scores."""
        return scores

    def _compute_acquisition_func(self, samples, mpe_below, mpe_above) -> np.ndarray:
        scores = np.array(super()._compute_acquisition_func(samples, mpe_below, mpe_above))
        return self.adjust_scores(samples, scores)
