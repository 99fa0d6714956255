"""``nlfs losses``: the built-in baseline losses and their formulas."""

from __future__ import annotations

import click
from rich.table import Table

from nlfs.cli.common import console, echo_json, json_option


def _entry(b) -> dict[str, str | None]:
    return {
        "name": b.name,
        "summary": b.summary,
        "text": b.text,
        "latex": b.latex,
        "expression": b.expression,
    }


@click.group()
def losses() -> None:
    """List and show the built-in baseline losses."""


@losses.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the baseline losses with their formulas."""
    from nlfs.losses.baselines import BASELINES

    if as_json:
        echo_json({"losses": [_entry(b) for b in BASELINES.values()]})
        return
    table = Table(title="baseline losses (per sample; sums run over classes)")
    for column in ("name", "formula", "expression", "what"):
        table.add_column(column)
    for b in BASELINES.values():
        table.add_row(b.name, b.text, b.expression or "-", b.summary)
    console.print(table)


@losses.command()
@click.argument("name")
@json_option
def show(name: str, as_json: bool) -> None:
    """Show the baseline loss NAME: formula in plain text and LaTeX, and its expression."""
    from nlfs.errors import ConfigError
    from nlfs.losses.baselines import baseline

    try:
        b = baseline(name)
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="NAME") from None
    if as_json:
        echo_json(_entry(b))
        return
    console.print(f"{b.name}: {b.summary}", markup=False)
    console.print(f"  formula:    {b.text}", markup=False)
    console.print(f"  LaTeX:      {b.latex}", markup=False)
    expression = b.expression or "(not expressible with the operator set)"
    console.print(f"  expression: {expression}", markup=False)
