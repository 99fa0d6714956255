"""``nlfs ablate``: search-space variants against each other with one strategy."""

from __future__ import annotations

import click

from nlfs.cli.comparing import comparison_options, run_comparison
from nlfs.experiments.arms import DEFAULT_VARIANTS

DEFAULTS = {"budget": 45, "seeds": 3}
"""About 15 minutes on 2 CPU cores with the micro profile and the six default variants."""


@click.command()
@click.option(
    "--spaces",
    default=",".join(DEFAULT_VARIANTS),
    show_default=True,
    help="Comma-separated variant names (configs/ablations/*.toml or [variants.*] of --config).",
)
@click.option("--strategy", help="Strategy of every study [default: the config's].")
@comparison_options
def ablate(spaces, strategy, **options) -> None:
    """Ablate the search space: one study per (variant, seed), re-evaluated, then a report.

    Rerunning reuses finished studies and resumes an interrupted one.
    """
    run_comparison("ablate", spaces, defaults=DEFAULTS, fixed={"strategy": strategy}, **options)
