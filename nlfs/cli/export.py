"""``nlfs export``: write a found loss of a search study as a standalone PyTorch module."""

from __future__ import annotations

import click

from nlfs.cli.common import console, storage_option, study_option
from nlfs.errors import ConfigError


@click.command()
@study_option("The study to read.")
@storage_option
@click.option("--trial", "number", type=int, required=True, help="Trial number to export.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="The .py file to write.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["py", "latex"]),
    default="py",
    show_default=True,
    help="A PyTorch module file, or print the LaTeX formula.",
)
def export(study_name, storage, number, output, fmt) -> None:
    """Export a found loss as a standalone PyTorch module (imports only torch)."""
    from optuna.trial import TrialState

    from nlfs.losses.export import latex_formula, write_module
    from nlfs.storage import load_existing_study, storage_label, study_storage

    study = load_existing_study(study_name, storage)
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise ConfigError(f"study {study_name!r} has no trial {number} (0..{len(trials) - 1})")
    trial = trials[number]
    expression, sign = trial.user_attrs.get("expression"), trial.user_attrs.get("sign")
    if expression is None or sign is None:
        raise ConfigError(f"trial {number} of {study_name!r} has no candidate to export")
    if fmt == "latex":
        click.echo(latex_formula(expression, sign))
        return
    if output is None:
        raise ConfigError("export needs -o FILE.py (or --format latex to print the formula)")
    state = "ok" if trial.state == TrialState.COMPLETE else trial.user_attrs.get("state")
    # Only a completed trial has a fitness (a PRUNED trial's value is its last checkpoint).
    fitness = trial.value if trial.state == TrialState.COMPLETE else None
    provenance = {
        "study": study_name,
        "storage": storage_label(study_storage(study)),
        "trial": number,
        "state": state,
        "fitness (best validation accuracy)": fitness,
        "profile": study.user_attrs.get("profile"),
        "strategy": study.user_attrs.get("strategy"),
        "space": study.user_attrs.get("space"),
        "key": trial.user_attrs.get("key"),
    }
    path = write_module(output, expression, sign, provenance=provenance)
    console.print(f"wrote {path} (trial {number}, {state}, fitness {fitness})")
