"""Pieces shared by the CLI commands: options, JSON output, the rich console."""

from __future__ import annotations

import json
import sys
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


def echo_json(data: Any) -> None:
    """Print ``data`` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
