"""``nlfs repair``: salvage a damaged journal file's sound lines into a new file."""

from __future__ import annotations

from pathlib import Path

import click

from nlfs.cli.common import console, echo_json, json_option


def default_out(storage: Path) -> Path:
    """``runs/s.journal`` -> ``runs/s.repaired.journal`` (still a journal path for --storage)."""
    return storage.with_name(f"{storage.stem}.repaired{storage.suffix or '.journal'}")


@click.command()
@click.option("--storage", required=True, help="The damaged journal file.")
@click.option("--out", help="The new journal file [default: FILE.repaired.journal beside it].")
@json_option
def repair(storage, out, as_json) -> None:
    """Copy the sound lines of a damaged journal, up to its first damaged line, to a new file.

    The journal itself is left as it is. A cut last line needs no command (every command
    repairs it on open); this is for a line damaged in the middle, which commands refuse.
    Resume from the new file with --storage NEW (or move it over the old one): a trial it
    left running is recovered as interrupted and its candidate evaluated again.
    """
    from nlfs.journal import salvage

    source = Path(storage).expanduser()
    target = Path(out).expanduser() if out else default_out(source)
    result = salvage(source, target)
    if as_json:
        echo_json(
            {
                "storage": str(source),
                "damaged": result is not None,
                "out": None if result is None else str(result.out),
                "kept": None if result is None else result.kept,
                "dropped": None if result is None else result.dropped,
                "line": None if result is None else result.damage.line,
                "reason": None if result is None else result.damage.reason,
            }
        )
    elif result is None:
        console.print(f"{source}: every line is sound; nothing written.", soft_wrap=True)
    else:
        console.print(
            f"{source}: line {result.damage.line} is damaged ({result.damage.reason}). Kept "
            f"{result.kept} operations in {result.out}; dropped {result.dropped} lines from "
            f"line {result.damage.line} on. Resume with --storage {result.out}.",
            soft_wrap=True,
        )
