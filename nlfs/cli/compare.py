"""``nlfs compare``: search strategies against each other on equal budgets."""

from __future__ import annotations

import click

from nlfs.cli.comparing import comparison_options, run_comparison

DEFAULTS = {"budget": 90, "seeds": 3}
"""About 15 minutes on 2 CPU cores with the micro profile and three strategies."""


@click.command()
@click.option(
    "--strategies",
    default="regevo,random,tpe",
    show_default=True,
    help="Comma-separated strategy names.",
)
@click.option("--space", help="Search space of every study [default: the config's].")
@comparison_options
def compare(strategies, space, **options) -> None:
    """Compare search strategies: one study per (strategy, seed), re-evaluated, then a report.

    Rerunning reuses finished studies and resumes an interrupted one.
    """
    run_comparison("compare", strategies, defaults=DEFAULTS, fixed={"space": space}, **options)
