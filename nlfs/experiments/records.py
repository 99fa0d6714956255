"""Transfer studies read as tidy run records (:mod:`nlfs.stats.records`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nlfs.errors import DataError
from nlfs.stats.records import BEST_TEST_ACC, KEY_COLUMNS, TEST_ACC, RunRecord

_SUCCESS_KINDS = {None, "", "ok", "none"}


@dataclass(frozen=True)
class StudyRecords:
    """Records read from a transfer study, and how many grid cells gave none.

    Attributes:
        records: the measurements of the finished cells.
        failed: cells that ended in a failure (NaN, divergence, timeout, error).
        unfinished: cells not (yet) done: waiting, running, pruned, or interrupted and not re-run.
    """

    records: tuple[RunRecord, ...]
    failed: int
    unfinished: int


def records_from_study(study: Any) -> StudyRecords:
    """Read the cells of a transfer study (an ``optuna.Study``) as tidy records.

    The transfer grid stores each cell as one trial with user attributes ``loss``, ``arch``,
    ``dataset``, ``augment``, ``seed``, ``best_acc``, ``final_acc``, ``seconds`` and
    ``failure_kind``; the study's user attribute ``kind`` is ``"transfer"``. Each finished cell
    gives two records: ``test_acc`` (the final test accuracy, i.e. after the last step, which is
    the honest number since nothing is selected on the test set) and ``best_test_acc`` (the best
    test accuracy seen during training).

    Returns:
        The records and the counts of failed and unfinished cells, which are skipped.

    Raises:
        DataError: the study is not a transfer study, or a cell lacks its attributes.
    """
    import optuna  # deferred: reading CSVs must not pay for importing optuna

    kind = study.user_attrs.get("kind")
    if kind != "transfer":
        raise DataError(
            f"study {study.study_name!r} is not a transfer study (kind={kind!r}); "
            "report reads the studies written by `nlfs transfer`")
    records: list[RunRecord] = []
    seen: dict[tuple, int] = {}
    failed = unfinished = 0
    for trial in _cell_outcomes(study.get_trials(deepcopy=False), optuna.trial.TrialState):
        attrs = trial.user_attrs
        if trial.state != optuna.trial.TrialState.COMPLETE:
            if trial.state == optuna.trial.TrialState.FAIL and not _retried(attrs):
                failed += 1
            else:
                unfinished += 1
            continue
        if attrs.get("failure_kind") not in _SUCCESS_KINDS or attrs.get("final_acc") is None:
            failed += 1
            continue
        missing = [k for k in (*KEY_COLUMNS[:-1], "final_acc") if k not in attrs]
        if missing:
            raise DataError(f"study {study.study_name!r}: trial {trial.number} lacks user "
                            f"attribute {missing[0]!r}")
        base = dict(loss=str(attrs["loss"]), arch=str(attrs["arch"]),
                    dataset=str(attrs["dataset"]), augment=str(attrs["augment"]),
                    seed=int(attrs["seed"]))
        record = RunRecord(**base, metric=TEST_ACC, value=float(attrs["final_acc"]))
        if record.key in seen:
            raise DataError(f"study {study.study_name!r}: trials {seen[record.key]} and "
                            f"{trial.number} are the same grid cell {record.key[:5]}")
        seen[record.key] = trial.number
        records.append(record)
        if attrs.get("best_acc") is not None:
            records.append(RunRecord(**base, metric=BEST_TEST_ACC,
                                     value=float(attrs["best_acc"])))
    return StudyRecords(tuple(records), failed, unfinished)


def _retried(attrs: Any) -> bool:
    """A cell whose worker died is marked ``interrupted`` and enqueued again: not a result."""
    return attrs.get("failure_kind") == "interrupted"


def _cell_outcomes(trials: Iterable[Any], states: Any) -> list[Any]:
    """One trial per grid cell: the complete one, else a failed one, else the latest.

    Trials without a ``cell`` attribute are their own cell. An interrupted trial is superseded by
    the re-enqueued trial of the same cell.
    """
    def preference(trial: Any) -> tuple[int, int]:
        if trial.state == states.COMPLETE:
            return (3, trial.number)
        if trial.state == states.FAIL and not _retried(trial.user_attrs):
            return (2, trial.number)
        return (1, trial.number)

    chosen: dict[Any, Any] = {}
    for trial in trials:
        cell = trial.user_attrs.get("cell", ("trial", trial.number))
        if cell not in chosen or preference(trial) > preference(chosen[cell]):
            chosen[cell] = trial
    return sorted(chosen.values(), key=lambda t: t.number)
