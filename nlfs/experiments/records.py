"""Transfer studies read as tidy run records (:mod:`nlfs.stats.records`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nlfs.errors import DataError
from nlfs.stats.records import BEST_TEST_ACC, KEY_COLUMNS, TEST_ACC, RunRecord

_SUCCESS_KINDS = {None, "", "ok", "none"}


@dataclass(frozen=True)
class StudyRecords:
    """Records read from a transfer study, and how many grid jobs gave none.

    Attributes:
        records: the measurements of the settled jobs.
        failed: jobs that ended in a failure (NaN, divergence, timeout, error).
        unfinished: jobs not (yet) settled: waiting, running, pruned, or interrupted and not
            re-run.
    """

    records: tuple[RunRecord, ...]
    failed: int
    unfinished: int


def records_from_study(study: Any) -> StudyRecords:
    """Read the jobs of a transfer study (an ``optuna.Study``) as tidy records.

    The transfer grid stores each job as trials with user attributes ``loss``, ``arch``,
    ``dataset``, ``augment``, ``seed``, ``best_acc``, ``final_acc``, ``seconds`` and
    ``failure_kind``; the study's user attribute ``kind`` is ``"transfer"``. Which trial settles
    a job is :func:`nlfs.experiments.jobs.settling_trial`'s rule; a trial without a job id is a
    job of its own. Each settled job gives two records: ``test_acc`` (the final test accuracy,
    i.e. after the last step, which is the honest number since nothing is selected on the test
    set) and ``best_test_acc`` (the best test accuracy seen during training).

    Returns:
        The records and the counts of failed and unfinished jobs, which are skipped.

    Raises:
        DataError: the study is not a transfer study, or a job lacks its attributes.
    """
    # Deferred: reading CSVs (nlfs.stats.records) must not pay for importing optuna.
    from optuna.trial import TrialState

    from nlfs.experiments.jobs import job_id, settling_trial

    kind = study.user_attrs.get("kind")
    if kind != "transfer":
        raise DataError(
            f"study {study.study_name!r} is not a transfer study (kind={kind!r}); "
            "report reads the studies written by `nlfs transfer`"
        )
    jobs: dict[Any, list[Any]] = {}
    for trial in study.get_trials(deepcopy=False):
        jobs.setdefault(job_id(trial) or ("trial", trial.number), []).append(trial)
    settled = []
    failed = unfinished = 0
    for trials in jobs.values():
        trial = settling_trial(trials)
        if trial is None:
            unfinished += 1
        elif (
            trial.state is not TrialState.COMPLETE
            or trial.user_attrs.get("failure_kind") not in _SUCCESS_KINDS
            or trial.user_attrs.get("final_acc") is None
        ):
            failed += 1
        else:
            settled.append(trial)
    records: list[RunRecord] = []
    seen: dict[tuple, int] = {}
    for trial in sorted(settled, key=lambda t: t.number):
        attrs = trial.user_attrs
        missing = [k for k in (*KEY_COLUMNS[:-1], "final_acc") if k not in attrs]
        if missing:
            raise DataError(
                f"study {study.study_name!r}: trial {trial.number} lacks user "
                f"attribute {missing[0]!r}"
            )
        base = dict(
            loss=str(attrs["loss"]),
            arch=str(attrs["arch"]),
            dataset=str(attrs["dataset"]),
            augment=str(attrs["augment"]),
            seed=int(attrs["seed"]),
        )
        record = RunRecord(**base, metric=TEST_ACC, value=float(attrs["final_acc"]))
        if record.key in seen:
            raise DataError(
                f"study {study.study_name!r}: trials {seen[record.key]} and "
                f"{trial.number} are two jobs of the same run {record.key[:5]}"
            )
        seen[record.key] = trial.number
        records.append(record)
        if attrs.get("best_acc") is not None:
            records.append(RunRecord(**base, metric=BEST_TEST_ACC, value=float(attrs["best_acc"])))
    return StudyRecords(tuple(records), failed, unfinished)
