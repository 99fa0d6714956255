"""What ``nlfs transfer`` and ``nlfs eliminate`` share: worker options and a progress bar."""

from __future__ import annotations

from collections.abc import Callable

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nlfs.cli.common import console


def worker_options(func: Callable) -> Callable:
    """``--storage --workers --device --data-dir --download``, in that order in ``--help``."""
    options = [
        click.option(
            "--storage",
            default=None,
            help="Journal file or Optuna URL (default: runs/<study>.journal).",
        ),
        click.option(
            "--workers",
            type=int,
            default=None,
            help="Local worker processes (more: `nlfs worker --study NAME`).",
        ),
        click.option(
            "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."
        ),
        click.option(
            "--data-dir",
            default=None,
            type=click.Path(file_okay=False),
            help="Folder of dataset files (default: Debian's Fashion-MNIST).",
        ),
        click.option("--download", is_flag=True, help="Let torchvision download datasets."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_jobs(
    study_name: str,
    storage: str | None,
    *,
    workers: int,
    device: str,
    data_dir: str | None,
    download: bool,
    label: str,
    quiet: bool,
    where: dict | None = None,
) -> None:
    """Run the study's waiting jobs with ``workers`` local workers behind a progress bar.

    The bar counts the jobs whose attributes match ``where`` (all jobs when None).
    """
    from nlfs.experiments.grid import run_local
    from nlfs.experiments.jobs import progress_counts

    def run(on_progress=None) -> None:
        run_local(
            study_name,
            storage,
            workers=workers,
            device=device,
            data_dir=data_dir,
            download=download,
            on_progress=on_progress,
        )

    if quiet:
        run()
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=None, failed=0)

        def update(study) -> None:
            done, failed, total = progress_counts(study, where)
            progress.update(task, completed=done, total=total, failed=failed)

        run(update)


def fmt_acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
