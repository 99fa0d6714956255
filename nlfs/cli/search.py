"""``nlfs search``: run (or resume) a loss search on an Optuna study."""

from __future__ import annotations

import click

from nlfs.cli.common import json_option, resumable_on_ctrl_c, show_summary, storage_option


@click.command()
@click.option("--strategy", help="Search strategy: regevo, random, tpe, cmaes or a plugin's name.")
@click.option("--space", help="Search space: cell, tree or taylor.")
@click.option("--profile", help="Evaluator profile: micro, quick, paper or a TOML path.")
@click.option("--budget", type=int, help="Finished trials to reach (shared by all workers).")
@click.option("--seed", type=int, help="Seed of the strategy's proposals.")
@click.option("--study", "study_name", help="Study name [default: STRATEGY-SPACE-PROFILE-sSEED].")
@storage_option
@click.option(
    "--config", "config_file", help="Config name under configs/ or a TOML path [default: default]."
)
@click.option("--workers", type=int, help="Local worker processes on the study.")
@click.option(
    "--group", type=int, help="Trials each worker trains together [default: per device, 1]."
)
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option("--data-dir", help="Dataset folder (default: the profile dataset's location).")
@json_option
def search(
    strategy,
    space,
    profile,
    budget,
    seed,
    study_name,
    storage,
    config_file,
    workers,
    group,
    device,
    data_dir,
    as_json,
) -> None:
    """Search for a loss; running the same command again resumes the study.

    With no options: regularized evolution on the cell space with the micro profile on
    Fashion-MNIST (configs/default.toml), about 2 minutes on 2 CPU cores (the median rule
    stops most candidates early).
    """
    from nlfs.search.config import load_search_config
    from nlfs.search.workers import run_search
    from nlfs.storage import quiet_optuna

    quiet_optuna()
    overrides = {
        "strategy": strategy,
        "space": space,
        "profile": profile,
        "budget": budget,
        "seed": seed,
        "workers": workers,
        "group": group,
        "device": device,
        "data_dir": data_dir,
    }
    config = load_search_config(config_file, overrides)
    with resumable_on_ctrl_c():
        summary = run_search(config, study_name=study_name, storage=storage, progress=not as_json)
    show_summary(summary, as_json)
