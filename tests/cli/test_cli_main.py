"""The root command: lazy subcommands, --threads, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from click.testing import CliRunner

from nlfs.cli import COMMANDS, cli


def test_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_threads_option_sets_torchs_thread_count():
    before = torch.get_num_threads()
    try:
        result = CliRunner().invoke(cli, ["--threads", "1", "losses", "list"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_threads_must_be_positive():
    result = CliRunner().invoke(cli, ["--threads", "0", "losses", "list"])
    assert result.exit_code == 2
    assert "--threads" in result.output


def test_input_errors_are_one_line_with_exit_code_2():
    """The installed entry point prints an NLFSError as one line, no traceback."""
    nlfs = Path(sys.executable).parent / "nlfs"
    proc = subprocess.run(
        [str(nlfs), "evaluate", "--loss", "nope"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("Error: unknown loss 'nope'")
    assert "Traceback" not in proc.stderr


def test_each_command_lives_in_a_module_named_after_it():
    """``nlfs NAME`` is the click command ``NAME`` of ``nlfs/cli/NAME.py``."""
    import click

    ctx = click.Context(cli)
    for name, (module, _) in COMMANDS.items():
        assert module == f"nlfs.cli.{name}"
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
