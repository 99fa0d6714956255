"""``nlfs best``: the best losses of a finished (or running) search study."""

from __future__ import annotations

import click

from nlfs.cli.common import json_option, show_summary, storage_option, study_option


@click.command()
@study_option("The study to read.")
@storage_option
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many losses to show.",
)
@json_option
def best(study_name, storage, count, as_json) -> None:
    """Show the best losses of a study with their fitness and expressions."""
    from nlfs.search.progress import summarize
    from nlfs.storage import load_existing_study

    show_summary(summarize(load_existing_study(study_name, storage), count), as_json)
