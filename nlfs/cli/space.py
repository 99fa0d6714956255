"""``nlfs space``: sample screened candidates of a search space, or screen one expression."""

from __future__ import annotations

import random
from dataclasses import asdict

import click
import numpy as np
from rich.table import Table

from nlfs.cli.common import console, echo_json, json_option, seed_option

MAX_DRAWS_PER_CANDIDATE = 1_000
"""Draws per requested candidate before ``sample`` gives up (a space that never passes)."""

space_option = click.option(
    "--space",
    "space_name",
    default="cell",
    show_default=True,
    help="Search space (cell, tree or taylor).",
)


def _space(name: str):
    from nlfs.errors import ConfigError
    from nlfs.spaces import get_space

    try:
        return get_space(name)
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--space") from None


def _rng(seed: int) -> random.Random:
    """A ``random.Random`` derived from ``seed`` through a SeedSequence (never global state)."""
    state = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64)
    return random.Random(int(state[0]) << 64 | int(state[1]))


@click.group()
def space() -> None:
    """Sample and check candidates of a search space."""


@space.command()
@space_option
@click.option(
    "-n",
    "count",
    metavar="N",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Number of accepted candidates to draw.",
)
@seed_option
@json_option
def sample(space_name: str, count: int, seed: int, as_json: bool) -> None:
    """Draw N screened, distinct candidates, then rejection counts by reason."""
    from nlfs.errors import NLFSError
    from nlfs.screening.screen import Screen

    search_space = _space(space_name)
    rng = _rng(seed)
    screen = Screen()
    candidates = []
    draws = 0
    while len(candidates) < count:
        if draws >= MAX_DRAWS_PER_CANDIDATE * count:
            raise NLFSError(
                f"only {len(candidates)} of {count} candidates passed screening in {draws} "
                f"draws from space {space_name!r}; rejections: {screen.counts}"
            )
        draws += 1
        verdict = screen.check(search_space, search_space.sample(rng))
        if verdict.accepted:
            candidates.append(
                {"expression": verdict.expression, "key": verdict.key, "sign": verdict.sign}
            )
    rejections = dict(sorted(screen.counts.items()))
    if as_json:
        echo_json({"candidates": candidates, "rejections": rejections})
        return
    table = Table(title=f"{count} candidates of space {space_name!r} (seed {seed})")
    for column in ("#", "expression", "sign", "key"):
        table.add_column(column)
    for i, c in enumerate(candidates, 1):
        table.add_row(str(i), c["expression"], f"{c['sign']:+.0f}", c["key"])
    console.print(table)
    counts = Table(title=f"rejections in {draws} draws")
    counts.add_column("reason")
    counts.add_column("count", justify="right")
    for reason, n in rejections.items():
        counts.add_row(reason, str(n))
    console.print(counts)


@space.command()
@click.argument("expression")
@click.option(
    "--space",
    "space_name",
    default=None,
    help="Also check that the expression is a valid genome of this space (cell, tree, taylor).",
)
@json_option
@click.pass_context
def check(ctx: click.Context, expression: str, space_name: str | None, as_json: bool) -> None:
    """Screen EXPRESSION: exit 0 accepted, 1 rejected, 2 unparsable."""
    from nlfs.losses.expressions import ParseError, canonical, expression_key, parse
    from nlfs.screening.screen import Screen, Verdict
    from nlfs.spaces import InvalidGenome

    screen = Screen(dedupe=False)
    try:
        if space_name is None:
            verdict = screen.check_tree(expression, record=False)
        else:
            search_space = _space(space_name)
            try:
                genome = search_space.from_expression(expression)
            except InvalidGenome as err:
                text = canonical(parse(expression, search_space.pset))
                verdict = Verdict(False, err.reason, text, expression_key(text), 1.0)
            else:
                verdict = screen.check(search_space, genome, record=False)
    except ParseError as err:
        click.echo(f"Error: cannot parse {expression!r}: {err}", err=True)
        ctx.exit(2)
    if as_json:
        echo_json(asdict(verdict))
    elif verdict.accepted:
        console.print(
            f"accepted: {verdict.expression}  (sign {verdict.sign:+.0f}, key {verdict.key})",
            markup=False,
        )
    else:
        console.print(f"rejected ({verdict.reason}): {verdict.expression}", markup=False)
    ctx.exit(0 if verdict.accepted else 1)
