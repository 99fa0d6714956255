"""``nlfs worker``: join a running study (a search, or a transfer/elimination grid).

The study's ``kind`` picks the worker loop: a search runs :func:`nlfs.search.workers.join_search`,
any other kind the grid worker of :mod:`nlfs.experiments.grid`. The dispatch lives here, at the
top, so the search layer never imports the experiments built on it.
"""

from __future__ import annotations

import click

from nlfs.cli.common import (
    json_option,
    resumable_on_ctrl_c,
    show_summary,
    storage_option,
    study_option,
)


@click.command()
@study_option("The study to join.")
@storage_option
@click.option("--device", help="auto, cpu, cuda or cuda:N (default: the study's).")
@click.option("--data-dir", help="Dataset folder on this machine.")
@json_option
def worker(study_name, storage, device, data_dir, as_json) -> None:
    """Join a running search (or transfer/elimination grid) as one more worker."""
    from nlfs.storage import load_existing_study, quiet_optuna, study_storage

    quiet_optuna()
    study = load_existing_study(study_name, storage)
    with resumable_on_ctrl_c():
        if study.user_attrs.get("kind") == "refine":  # `nlfs refine`'s tuning study
            from nlfs.experiments import refine

            refine.run_worker(
                study_name, study_storage(study), device=device or "auto", data_dir=data_dir
            )
            return
        if study.user_attrs.get("kind") != "search":
            from nlfs.experiments import grid

            grid.run_worker(
                study_name, study_storage(study), device=device or "auto", data_dir=data_dir
            )
            return
        from nlfs.search.workers import join_search

        summary = join_search(study, device=device, data_dir=data_dir, progress=not as_json)
    show_summary(summary, as_json)
