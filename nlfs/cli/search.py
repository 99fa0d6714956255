"""``nlfs search`` and ``nlfs worker``: run a loss search on an Optuna study, or join one."""

from __future__ import annotations

import click

from nlfs.cli.common import console, echo_json, err_console, json_option

_INTERRUPTED = (
    "Interrupted: the running trial is marked interrupted and will be evaluated again; "
    "run the same command to resume."
)


def _quiet_optuna() -> None:
    import optuna

    # Optuna logs every trial at INFO; our own progress bar and table say what matters.
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@click.command()
@click.option("--strategy", help="Search strategy: regevo, random, tpe or a plugin's name.")
@click.option("--space", help="Search space: cell or tree.")
@click.option("--profile", help="Evaluator profile: micro, quick, paper or a TOML path.")
@click.option("--budget", type=int, help="Finished trials to reach (shared by all workers).")
@click.option("--seed", type=int, help="Seed of the strategy's proposals.")
@click.option("--study", "study_name", help="Study name [default: STRATEGY-SPACE-PROFILE-sSEED].")
@click.option(
    "--storage", help="Journal file path or storage URL [default: runs/STUDY.journal]."
)
@click.option(
    "--config", "config_file", help="Config name under configs/ or a TOML path [default: default]."
)
@click.option("--workers", type=int, help="Local worker processes on the study.")
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option("--data-dir", help="Dataset folder (default: the profile dataset's location).")
@json_option
def search(
    strategy, space, profile, budget, seed, study_name, storage, config_file, workers, device,
    data_dir, as_json,
) -> None:
    """Search for a loss; running the same command again resumes the study.

    With no options: regularized evolution on the cell space with the micro profile on
    Fashion-MNIST (configs/default.toml), about 10 minutes on 2 CPU cores.
    """
    from nlfs.search.config import load_search_config
    from nlfs.search.progress import render_best
    from nlfs.search.workers import run_search

    _quiet_optuna()
    overrides = {
        "strategy": strategy, "space": space, "profile": profile, "budget": budget,
        "seed": seed, "workers": workers, "device": device, "data_dir": data_dir,
    }
    config = load_search_config(config_file, overrides)
    try:
        summary = run_search(
            config, study_name=study_name, storage=storage, progress=not as_json
        )
    except KeyboardInterrupt:
        err_console.print(_INTERRUPTED)
        raise SystemExit(130) from None
    if as_json:
        echo_json(summary)
    else:
        render_best(summary, console)


@click.command()
@click.option("--study", "study_name", required=True, help="The study to join.")
@click.option("--storage", help="Journal file path or storage URL [default: runs/STUDY.journal].")
@click.option("--device", help="auto, cpu, cuda or cuda:N (default: the study's).")
@click.option("--data-dir", help="Dataset folder on this machine.")
@json_option
def worker(study_name, storage, device, data_dir, as_json) -> None:
    """Join a running search (or transfer/elimination grid) as one more worker."""
    from nlfs.search.progress import render_best
    from nlfs.search.workers import join_study

    _quiet_optuna()
    try:
        summary = join_study(
            study_name, storage, device=device, data_dir=data_dir, progress=not as_json
        )
    except KeyboardInterrupt:
        err_console.print(_INTERRUPTED)
        raise SystemExit(130) from None
    if summary is None:
        return
    if as_json:
        echo_json(summary)
    else:
        render_best(summary, console)
