"""``nlfs transfer``: a grid of losses x architectures x datasets x augmentations x seeds."""

from __future__ import annotations

import dataclasses

import click
from rich.table import Table

from nlfs.cli.common import console, echo_json, json_option
from nlfs.cli.gridrun import fmt_acc, run_jobs, worker_options


def _split(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


@click.command("transfer")
@click.option(
    "--losses",
    help="Comma-separated: ce, baikal, focal, poly1, an expression, STUDY:TRIAL or STUDY:best.",
)
@click.option("--archs", help="Comma-separated architectures (see the models of the evaluator).")
@click.option("--datasets", help="Comma-separated datasets (fashion-mnist, cifar10, ...).")
@click.option(
    "--augment",
    help="Comma-separated augmentations (none, flipcrop, cutout, mixup, "
    "randaugment, ...; combine with +).",
)
@click.option("--seeds", type=int, help="Paired seeds per setting.")
@click.option("--epochs", type=float, help="Train each job this many epochs ...")
@click.option("--steps", type=int, help="... or this many steps (default: the config's).")
@click.option(
    "--study",
    "study_name",
    default="transfer",
    show_default=True,
    help="Study holding the grid; rerun to resume or extend it.",
)
@click.option(
    "--config",
    "--profile",
    "config_name",
    default="transfer_cpu",
    show_default=True,
    help="Grid config: a name under configs/ or a TOML file.",
)
@worker_options
@json_option
def transfer(
    losses,
    archs,
    datasets,
    augment,
    seeds,
    epochs,
    steps,
    study_name,
    config_name,
    storage,
    workers,
    device,
    data_dir,
    download,
    as_json,
) -> None:
    """Train every loss on every setting and seed; report test accuracy.

    The grid's jobs are trials of one study, run by local workers (--workers) and by any
    `nlfs worker --study NAME --storage URL` that joins. Seeds are paired across losses.
    """
    from nlfs.experiments.transfer import (
        check_axes,
        load_transfer_config,
        prepare,
        resolve_losses,
        results,
        summary,
    )
    from nlfs.storage import quiet_optuna, resolve_storage, storage_label

    quiet_optuna()
    config = load_transfer_config(config_name)
    overrides = {
        "losses": _split(losses),
        "archs": _split(archs),
        "datasets": _split(datasets),
        "augment": _split(augment),
        "seeds": seeds,
        "workers": workers,
    }
    changes = {k: v for k, v in overrides.items() if v is not None}
    if steps is not None or epochs is not None:
        changes.update(steps=steps, epochs=epochs)
    config = dataclasses.replace(config, **changes)
    check_axes(config)
    refs = resolve_losses(config.losses, storage)
    resolved = resolve_storage(storage, study_name)
    study, total, added = prepare(study_name, resolved, config, refs)
    if not as_json:
        console.print(
            f"transfer study [bold]{study_name}[/] in {storage_label(resolved)}: "
            f"{total} jobs, {added} to run"
        )
    run_jobs(
        study_name,
        storage,
        workers=config.workers,
        device=device,
        data_dir=data_dir,
        download=download,
        label="jobs",
        quiet=as_json,
    )
    rows = results(study)
    table_rows = summary(rows)
    if as_json:
        echo_json(
            {
                "study": study_name,
                "storage": storage_label(resolved),
                "jobs": total,
                "results": rows,
                "summary": table_rows,
            }
        )
        return
    _print_summary(table_rows)


def _print_summary(rows) -> None:
    table = Table(title="Final test accuracy (mean ± std over seeds; best per setting in bold)")
    for name in ("arch", "dataset", "augment", "loss", "accuracy", "runs", "failed"):
        table.add_column(
            name,
            justify="right" if name in ("runs", "failed") else "left",
            no_wrap=name == "accuracy",
        )
    best: dict[tuple, float] = {}
    for row in rows:
        key = (row["arch"], row["dataset"], row["augment"])
        if row["mean"] is not None:
            best[key] = max(best.get(key, row["mean"]), row["mean"])
    for row in rows:
        key = (row["arch"], row["dataset"], row["augment"])
        acc = fmt_acc(row["mean"])
        if row["std"] is not None:
            acc += f" ± {row['std']:.4f}"
        if row["mean"] is not None and row["mean"] == best.get(key):
            acc = f"[bold]{acc}[/]"
        table.add_row(*key, row["loss"], acc, str(row["runs"]), str(row["failed"]))
    console.print(table)
