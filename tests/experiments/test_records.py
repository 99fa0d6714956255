"""Tidy CSV records: round trip, and every malformed input named by file, row and column."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nlfs.errors import DataError
from nlfs.experiments.records import records_from_study
from nlfs.stats.records import (
    BEST_TEST_ACC,
    COLUMNS,
    TEST_ACC,
    RecordError,
    RunRecord,
    read_csv,
    write_csv,
)

HEADER = ",".join(COLUMNS)
GOOD = "ce,cnn,fmnist,none,0,test_acc,0.9"


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "results.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_write_then_read_round_trips_exactly(tmp_path):
    records = [
        RunRecord("ce", "cnn", "fmnist", "none", s, "test_acc", 0.1 + s / 3) for s in range(3)
    ]
    write_csv(records, tmp_path / "r.csv")
    assert read_csv(tmp_path / "r.csv") == records


def test_extra_columns_are_ignored_and_order_is_free(tmp_path):
    path = write(
        tmp_path,
        "value,run_id,metric,seed,augment,dataset,arch,loss",
        "0.5,abc,test_acc,3,none,fmnist,cnn,ce",
    )
    assert read_csv(path) == [RunRecord("ce", "cnn", "fmnist", "none", 3, "test_acc", 0.5)]


@pytest.mark.parametrize(
    "line,row,column,fragment",
    [
        ("ce,cnn,fmnist,none,0,test_acc,abc", 2, "value", "not a number"),
        ("ce,cnn,fmnist,none,x1,test_acc,0.5", 2, "seed", "not an integer"),
        ("ce,cnn,fmnist,none,1.5,test_acc,0.5", 2, "seed", "not an integer"),
        ("ce,,fmnist,none,0,test_acc,0.5", 2, "arch", "empty field"),
        ("ce,cnn,fmnist,none,0,test_acc", 2, "value", "empty field"),
        ("ce,cnn,fmnist,none,0,test_acc,nan", 2, "value", "not finite"),
        (GOOD, 2, "seed", "duplicate of row 1"),
    ],
)
def test_malformed_rows_name_file_row_and_column(tmp_path, line, row, column, fragment):
    path = write(tmp_path, HEADER, GOOD, line)
    with pytest.raises(RecordError) as info:
        read_csv(path)
    err = info.value
    assert (err.row, err.column) == (row, column)
    message = str(err)
    assert str(path) in message and f"row {row}" in message and repr(column) in message
    assert fragment in message
    assert isinstance(err, DataError)


def test_missing_column_is_named(tmp_path):
    path = write(tmp_path, "loss,arch,dataset,seed,metric,value", "ce,cnn,fmnist,0,test_acc,1")
    with pytest.raises(RecordError, match="missing column 'augment'"):
        read_csv(path)


@pytest.mark.parametrize("content", ["", HEADER + "\n"])
def test_empty_files_are_refused(tmp_path, content):
    path = tmp_path / "e.csv"
    path.write_text(content)
    with pytest.raises(RecordError, match=str(path)):
        read_csv(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_csv(tmp_path / "nope.csv")


def _transfer_study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("kind", "transfer")
    jobs = [
        ("ce", 0, 0.8, 0.82, "ok"),
        ("ce", 1, 0.81, 0.83, None),
        ("focal", 0, None, None, "nan"),
    ]
    for loss, seed, final, best, kind in jobs:
        trial = study.ask()
        for key, value in dict(
            loss=loss,
            arch="cnn",
            dataset="fmnist",
            augment="none",
            seed=seed,
            best_acc=best,
            final_acc=final,
            seconds=1.0,
            failure_kind=kind,
        ).items():
            trial.set_user_attr(key, value)
        study.tell(trial, final if final is not None else 0.0)
    study.ask()  # a job still running
    return study


def test_records_from_study_reads_final_and_best_and_counts_failures():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    got = records_from_study(_transfer_study())
    assert (got.failed, got.unfinished) == (1, 1)
    by = {(r.loss, r.seed, r.metric): r.value for r in got.records}
    assert by == {
        ("ce", 0, TEST_ACC): 0.8,
        ("ce", 0, BEST_TEST_ACC): 0.82,
        ("ce", 1, TEST_ACC): 0.81,
        ("ce", 1, BEST_TEST_ACC): 0.83,
    }


def test_records_from_study_refuses_other_kinds():
    study = optuna.create_study()
    study.set_user_attr("kind", "search")
    with pytest.raises(DataError, match="not a transfer study"):
        records_from_study(study)


def _job_trials(study, *outcomes):
    """One job's trials, in order: ``(failure_kind, final_acc)``; a final_acc completes it."""
    job = dict(job="c1", loss="ce", arch="cnn", dataset="fmnist", augment="none", seed=0)
    for kind, final in outcomes:
        trial = study.ask()
        for key, value in {**job, "failure_kind": kind, "final_acc": final}.items():
            trial.set_user_attr(key, value)
        if final is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, final)


@pytest.mark.parametrize(
    "outcomes, expected",
    [
        # interrupted, then re-run to completion: one job, one result
        ([("interrupted", None), (None, 0.7)], (0, 0, 0.7)),
        # a result, then a failed duplicate run (two workers raced): the result stands
        ([(None, 0.7), ("nan", None)], (0, 0, 0.7)),
        # a failure is a result too, unless the work was never done (no kind, interrupted)
        ([("nan", None)], (1, 0, None)),
        ([("interrupted", None), (None, None)], (0, 1, None)),
    ],
)
def test_each_job_counts_once_by_its_settling_trial(outcomes, expected):
    """Records follow the one rule of which trial settles a grid job."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("kind", "transfer")
    _job_trials(study, *outcomes)
    got = records_from_study(study)
    values = [r.value for r in got.records if r.metric == TEST_ACC]
    assert (got.failed, got.unfinished, values[0] if values else None) == expected
    assert len(values) <= 1
