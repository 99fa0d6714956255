"""Tidy run records: one row per (loss, architecture, dataset, augmentation, seed, metric).

This is the one format statistics and reports read, so results produced elsewhere can be reported
too. The CSV form has exactly these columns (in any order) with a header row::

    loss,arch,dataset,augment,seed,metric,value
    cross_entropy,resnet9,fashion_mnist,none,0,test_acc,0.9123

Extra columns are ignored (results from other tools often carry run ids or timings); a missing
required column, an empty field, a non-integer seed, a non-finite or non-numeric value, or a
duplicate (loss, arch, dataset, augment, seed, metric) row is refused with the file, row and
column named.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path

from nlfs.errors import DataError

COLUMNS: tuple[str, ...] = ("loss", "arch", "dataset", "augment", "seed", "metric", "value")
KEY_COLUMNS: tuple[str, ...] = COLUMNS[:-1]

TEST_ACC = "test_acc"
"""Metric name of the final test accuracy: the accuracy after the last training step."""
BEST_TEST_ACC = "best_test_acc"
"""Metric name of the best test accuracy seen during training (optimistic: selected on test)."""


class RecordError(DataError):
    """A malformed results file; ``row`` and ``column`` locate the problem where known.

    Rows are numbered as data rows (the first row after the header is row 1); the message also
    gives the file line number.
    """

    def __init__(
        self, message: str, *, path: str = "", row: int | None = None, column: str | None = None
    ) -> None:
        super().__init__(message)
        self.path, self.row, self.column = path, row, column


@dataclass(frozen=True)
class RunRecord:
    """One measurement of one run.

    Attributes:
        loss: the loss's name (e.g. ``cross_entropy``, ``baikal``, ``search:17``).
        arch: the architecture.
        dataset: the dataset.
        augment: the augmentation.
        seed: the run's seed; the same seed means the same initial weights and data order across
            losses, so runs pair by seed.
        metric: what ``value`` measures (e.g. ``test_acc``).
        value: the measurement.
    """

    loss: str
    arch: str
    dataset: str
    augment: str
    seed: int
    metric: str
    value: float

    @property
    def key(self) -> tuple[str, str, str, str, int, str]:
        """The identifying part: everything but the value."""
        return (self.loss, self.arch, self.dataset, self.augment, self.seed, self.metric)


def _where(path: str, row: int, line: int, column: str) -> str:
    return f"{path}: row {row} (line {line}), column {column!r}"


def read_csv(path: str | Path) -> list[RunRecord]:
    """Read tidy records from a CSV file with a header row.

    Args:
        path: the file.

    Returns:
        The records in file order.

    Raises:
        RecordError: the file is missing, empty or malformed; the message names the file, the row
            and the column.
    """
    name = str(path)
    try:
        handle = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as err:
        raise RecordError(f"{name}: cannot read results file: {err.strerror}", path=name) from None
    try:
        with handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if not header:
                raise RecordError(
                    f"{name}: empty file, expected a header {','.join(COLUMNS)}", path=name
                )
            header = [h.strip() for h in header]
            reader.fieldnames = header
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise RecordError(
                    f"{name}: missing column {missing[0]!r} (header has {', '.join(header)}; "
                    f"required: {', '.join(COLUMNS)})",
                    path=name,
                    row=0,
                    column=missing[0],
                )
            records: list[RunRecord] = []
            seen: dict[tuple, int] = {}
            for row_no, row in enumerate(reader, start=1):
                line = reader.line_num
                fields_ = {}
                for column in COLUMNS:
                    text = (row.get(column) or "").strip()
                    if not text:
                        raise RecordError(
                            f"{_where(name, row_no, line, column)}: empty field",
                            path=name,
                            row=row_no,
                            column=column,
                        )
                    fields_[column] = text
                fields_["seed"] = _parse_seed(fields_["seed"], name, row_no, line)
                fields_["value"] = _parse_value(fields_["value"], name, row_no, line)
                record = RunRecord(**fields_)
                if record.key in seen:
                    raise RecordError(
                        f"{_where(name, row_no, line, 'seed')}: duplicate of row "
                        f"{seen[record.key]} (same {', '.join(KEY_COLUMNS)})",
                        path=name,
                        row=row_no,
                        column="seed",
                    )
                seen[record.key] = row_no
                records.append(record)
    except UnicodeDecodeError as err:
        raise RecordError(
            f"{name}: not UTF-8 text (byte {err.start} of a read block: {err.reason}); save the "
            "results file as UTF-8",
            path=name,
        ) from None
    except csv.Error as err:  # a malformed quote or a field over the csv module's size limit
        raise RecordError(f"{name}: not a readable CSV file: {err}", path=name) from None
    if not records:
        raise RecordError(f"{name}: no data rows after the header", path=name)
    return records


def _parse_seed(text: str, name: str, row: int, line: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise RecordError(
            f"{_where(name, row, line, 'seed')}: {text!r} is not an integer",
            path=name,
            row=row,
            column="seed",
        ) from None


def _parse_value(text: str, name: str, row: int, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RecordError(
            f"{_where(name, row, line, 'value')}: {text!r} is not a number",
            path=name,
            row=row,
            column="value",
        ) from None
    if not math.isfinite(value):
        raise RecordError(
            f"{_where(name, row, line, 'value')}: {text!r} is not finite; leave failed runs out",
            path=name,
            row=row,
            column="value",
        )
    return value


def write_csv(records: Iterable[RunRecord], path: str | Path) -> None:
    """Write records as a tidy CSV with the header :data:`COLUMNS` (``read_csv`` reads it back).

    Values are written with ``repr`` so they round-trip exactly.
    """
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for record in records:
            row = list(astuple(record))
            row[-1] = repr(float(row[-1]))
            writer.writerow(row)
