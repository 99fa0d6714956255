"""``nlfs refine``: tune the coefficients of a found loss, then re-evaluate it with fresh seeds."""

from __future__ import annotations

import click

from nlfs.cli.common import console, echo_json, json_option, resumable_on_ctrl_c
from nlfs.cli.gridrun import fmt_acc, run_jobs, worker_options
from nlfs.errors import ConfigError


def _nodes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--nodes takes comma-separated node positions, got {text!r}") from None


@click.command()
@click.option("--study", "study_name", required=True, help="The search study holding the loss.")
@click.option("--trial", type=int, required=True, help="Trial number of the loss to refine.")
@click.option(
    "--budget",
    type=int,
    default=50,
    show_default=True,
    help="Evaluations of the tuning study, the original (trial 0) included.",
)
@click.option(
    "--sampler",
    type=click.Choice(["cmaes", "tpe"]),
    default="cmaes",
    show_default=True,
    help="Optuna's CMA-ES (started at the original's coefficients) or TPE.",
)
@click.option("--profile", help="Evaluator profile [default: the search's].")
@click.option(
    "--seeds",
    type=int,
    default=5,
    show_default=True,
    help="Fresh training seeds of the re-evaluation of the original and the refined loss.",
)
@click.option(
    "--nodes",
    help="Comma-separated prefix positions of the nodes to lift [default: all but the root].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampler.")
@click.option("--name", help="The tuning study [default: STUDY-refine-tTRIAL].")
@worker_options
@json_option
def refine(
    study_name,
    trial,
    budget,
    sampler,
    profile,
    seeds,
    nodes,
    seed,
    name,
    storage,
    workers,
    device,
    data_dir,
    download,
    as_json,
) -> None:
    """Lift a found loss (a weight, and where well-defined an offset, at chosen nodes), tune its
    coefficients as an Optuna study (trial 0 is the original, on the same seed), and re-evaluate
    the original and the best setting with fresh seeds.

    Run the same command again to resume, or on another machine with the same --storage to add
    a worker. The refined loss is then a loss like any other: `nlfs transfer --losses
    NAME:best`, `nlfs export --study NAME --trial N`.
    """
    from nlfs.experiments import refine as experiment
    from nlfs.experiments.refine_reevaluate import reevaluate
    from nlfs.storage import quiet_optuna

    quiet_optuna()
    config = experiment.RefineConfig(
        study_name,
        trial,
        budget=budget,
        sampler=sampler,
        profile=profile,
        seeds=seeds,
        seed=seed,
        nodes=_nodes(nodes),
        name=name or "",
    )

    def on_trial(number: int, expression: str, fitness: float | None) -> None:
        if not as_json:
            console.print(f"trial {number}: {fmt_acc(fitness)}  {expression}")

    def run_grid(grid_name: str) -> None:
        run_jobs(
            grid_name,
            storage,
            workers=workers or 1,
            device=device,
            data_dir=data_dir,
            download=download,
            label="re-evaluation",
            quiet=as_json,
        )

    with resumable_on_ctrl_c():
        study, lifted = experiment.prepare(config, storage)
        if not as_json:
            console.print(f"{study.study_name}: lifted {lifted.expression}")
            for line in lifted.describe():
                console.print(f"  {line}")
            frozen = study.user_attrs.get("frozen")
            if frozen:
                console.print(
                    f"  left as they are (no move passes the screen and changes the gradient): "
                    f"{', '.join(frozen)}"
                )
        experiment.run_local(
            study.study_name,
            storage,
            workers=workers or 1,
            device=device,
            data_dir=data_dir,
            on_trial=on_trial,
        )
        summary = reevaluate(study.study_name, storage, seeds, run_grid)
    if as_json:
        echo_json(summary)
        return
    _show(summary)


def _show(summary: dict) -> None:
    again = summary["reevaluation"]
    in_study = summary["in_study"]
    console.print(
        f"in-study fitness (seed {in_study['eval_seed']}): original {fmt_acc(in_study['original'])}"
        f", best {fmt_acc(in_study['refined'])} (trial {summary['trial']})"
    )
    if "mean_difference" in again:
        low, high = again["ci95"]
        p = again["paired_t_p"]
        console.print(
            f"re-evaluated on {len(again['seeds'])} fresh seeds: original "
            f"{again['mean_original']:.4f}, refined {again['mean_refined']:.4f}; paired "
            f"difference {again['mean_difference']:+.4f} (95% CI {low:+.4f} to {high:+.4f}, "
            f"paired t p = {'-' if p is None else f'{p:.3g}'})"
        )
    console.print(f"refined loss: {summary['expression']} (sign {summary['sign']:+.0f})")
    console.print(
        f"use it: nlfs transfer --losses {summary['study']}:best ...; "
        f"nlfs export --study {summary['study']} --trial {summary['trial']} -o refined.py"
    )
