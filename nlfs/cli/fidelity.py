"""``nlfs fidelity``: does a search's surrogate ranking carry to a target setting?"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from nlfs.cli.common import console, echo_json, json_option, resumable_on_ctrl_c
from nlfs.cli.gridrun import run_jobs, worker_options


@click.command()
@click.option("--study", "study_name", required=True, help="The search study to check.")
@click.option(
    "--target",
    default="fidelity_cpu",
    show_default=True,
    help="A transfer grid (name under configs/ or TOML) or a profile name to train on.",
)
@click.option(
    "--candidates",
    type=int,
    default=24,
    show_default=True,
    help="Search candidates to pick, spread over the fitness range.",
)
@click.option(
    "--seeds", type=int, help="Paired training seeds on the target [default: the grid's]."
)
@click.option(
    "--top",
    type=int,
    default=10,
    show_default=True,
    help="The surrogate's top candidates the report also looks at alone.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the pick.")
@click.option("--name", help="The fidelity grid study [default: STUDY-fidelity].")
@worker_options
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder of the report (report.md, report.html, summary.json).",
)
@click.option("--report-only", is_flag=True, help="Rebuild the report; train nothing.")
@json_option
def fidelity(
    study_name,
    target,
    candidates,
    seeds,
    top,
    seed,
    name,
    storage,
    workers,
    device,
    data_dir,
    download,
    out,
    report_only,
    as_json,
) -> None:
    """Train N candidates of a search (and the baselines) on a target setting and report how
    well the surrogate's ranking predicts the target's, against the noise ceilings."""
    from nlfs.experiments.fidelity import Fidelity, collect, load_target, prepare
    from nlfs.report.fidelity import write_fidelity_report
    from nlfs.storage import quiet_optuna

    quiet_optuna()
    grid = load_target(target)
    if seeds is not None:
        grid = dataclasses.replace(grid, seeds=seeds)
    experiment = Fidelity(
        study_name, grid, candidates=candidates, seed=seed, top=top, name=name or ""
    )
    if not report_only:
        with resumable_on_ctrl_c():
            study, total, todo = prepare(experiment, storage)
            if not as_json:
                console.print(f"{study.study_name}: {total} jobs, {todo} to run")
            run_jobs(
                study.study_name,
                storage,
                workers=workers or grid.workers,
                device=device,
                data_dir=data_dir,
                download=download,
                label="fidelity",
                quiet=as_json,
            )
    summary = write_fidelity_report(collect(experiment, storage), Path(out))
    if as_json:
        echo_json(summary)
    else:
        console.print(summary["analysis"]["verdict"])
        console.print(f"report: {Path(out) / 'report.html'} (also report.md, summary.json)")
