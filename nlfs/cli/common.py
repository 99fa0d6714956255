"""Pieces shared by the CLI commands: options, JSON output, the rich console, Ctrl-C."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

console = Console(stderr=False, highlight=False)
"""Human-readable output (tables, progress). Machine output goes through :func:`echo_json`."""

err_console = Console(stderr=True, highlight=False)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object instead of tables."
)
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
storage_option = click.option(
    "--storage", help="Journal file path or storage URL [default: runs/STUDY.journal]."
)


def study_option(help_: str, **kwargs: Any):
    """``--study NAME`` (required unless ``kwargs`` say otherwise), as ``study_name``."""
    return click.option("--study", "study_name", help=help_, **{"required": True, **kwargs})


def echo_json(data: Any) -> None:
    """Print ``data`` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def show_summary(summary: Mapping[str, Any], as_json: bool) -> None:
    """A search study's summary: one JSON object, or the best-losses table and counts."""
    from nlfs.search.progress import render_best

    if as_json:
        echo_json(summary)
    else:
        render_best(summary, console)


@contextmanager
def resumable_on_ctrl_c() -> Iterator[None]:
    """Turn Ctrl-C into one line saying how to resume, and exit code 130.

    The workers have marked their running trials interrupted by then (the next run redoes them).
    """
    try:
        yield
    except KeyboardInterrupt:
        err_console.print(
            "Interrupted: the running trial is marked interrupted and will be evaluated again; "
            "run the same command to resume."
        )
        raise SystemExit(130) from None
