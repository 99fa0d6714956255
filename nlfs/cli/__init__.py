"""The ``nlfs`` command line: a thin click layer over the library.

Subcommands live one per module and are imported only when called, so ``nlfs --help`` stays fast
(torch is not imported for it). Errors caused by input become one line and a non-zero exit.
"""

from __future__ import annotations

import importlib

import click

from nlfs.errors import NLFSError

COMMANDS: dict[str, tuple[str, str]] = {
    "space": ("nlfs.cli.space", "Sample and check candidates of a search space."),
    "losses": ("nlfs.cli.losses", "List and show the built-in baseline losses."),
    "evaluate": ("nlfs.cli.evaluate", "Train one loss with a fidelity profile."),
    "search": ("nlfs.cli.search", "Search for a loss with a strategy."),
    "worker": ("nlfs.cli.worker", "Join a running search or grid study as a worker."),
    "best": ("nlfs.cli.best", "Show the best losses of a study."),
    "export": ("nlfs.cli.export", "Export a found loss as a PyTorch module."),
    "eliminate": ("nlfs.cli.eliminate", "Re-train the best candidates at growing fidelity."),
    "transfer": ("nlfs.cli.transfer", "Run a transfer grid of losses."),
    "report": ("nlfs.cli.report", "Statistical report of transfer results."),
    "compare": ("nlfs.cli.compare", "Compare search strategies on equal budgets."),
    "ablate": ("nlfs.cli.ablate", "Compare search-space variants with one strategy."),
    "fidelity": ("nlfs.cli.fidelity", "Does the surrogate's ranking carry to a target setting?"),
    "refine": ("nlfs.cli.refine", "Tune the coefficients of a found loss."),
    "run": ("nlfs.cli.run", "The whole pipeline, search to verdict, in one command."),
    "repair": ("nlfs.cli.repair", "Salvage a damaged journal's sound lines into a new file."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported from :data:`COMMANDS` on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[name][0])
        return getattr(module, name.replace("-", "_"))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="nlfs")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    envvar="NLFS_THREADS",
    help="CPU threads for torch in this process (default: torch's choice). On a busy machine "
    "1 avoids OpenMP threads spinning against other work. Env: NLFS_THREADS.",
)
def cli(threads: int | None) -> None:
    """NLFS: neural loss function search for image-classifier CNNs."""
    if threads is not None:
        import torch  # only here: `nlfs --help` stays fast

        torch.set_num_threads(threads)


def main() -> None:
    """Entry point: run the CLI, printing input errors as one line (exit code 2)."""
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Exit as exit_:
        raise SystemExit(exit_.exit_code) from None
    except click.ClickException as err:
        err.show()
        raise SystemExit(err.exit_code) from None
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        raise SystemExit(130) from None
    except NLFSError as err:
        click.echo(f"Error: {err}", err=True)
        raise SystemExit(2) from None
    # Outside standalone mode click returns the code of ``ctx.exit(code)`` instead of exiting.
    if isinstance(code, int) and code:
        raise SystemExit(code)
