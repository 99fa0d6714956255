"""``nlfs eliminate``: re-train a search's best candidates at growing fidelity, halving the pool."""

from __future__ import annotations

import click
from rich.table import Table

from nlfs.cli.common import console, echo_json, json_option
from nlfs.cli.gridrun import fmt_acc, run_jobs, worker_options
from nlfs.errors import ConfigError


def _counts(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ConfigError(
            f"--keep takes comma-separated counts such as 25,12,6,4, got {value!r}"
        ) from None


@click.command("eliminate")
@click.option("--study", "source", required=True, help="The search study to draw from.")
@click.option("--top", type=int, help="Best candidates (distinct keys) entering stage 1.")
@click.option("--keep", help="Survivors per stage, e.g. 25,12,6,4 (one count per stage).")
@click.option(
    "--seeds",
    type=int,
    help="Training seeds per candidate and stage, kept by the mean (default: the protocol's).",
)
@click.option(
    "--stages",
    "stages_name",
    default="eliminate_cpu",
    show_default=True,
    help="Protocol: a name under configs/ (eliminate_paper) or a TOML file.",
)
@click.option("--out-study", help="Study for the results (default: <study>-eliminate).")
@worker_options
@json_option
def eliminate(
    source,
    top,
    keep,
    seeds,
    stages_name,
    out_study,
    storage,
    workers,
    device,
    data_dir,
    download,
    as_json,
) -> None:
    """Successive halving of a search's best losses over stages of growing fidelity.

    Each stage re-trains the surviving candidates with its profile variant, once per seed, and
    keeps the best by their mean fitness over the seeds; each cut is shown against the
    seed-to-seed noise. Rerun to resume: finished stages are not re-run.
    """
    from dataclasses import asdict

    from nlfs.experiments.eliminate import (
        load_elimination_config,
        open_elimination,
        records,
        run_elimination,
    )
    from nlfs.experiments.funnel import funnel_from_study
    from nlfs.storage import load_existing_study, quiet_optuna, resolve_storage, storage_label

    quiet_optuna()
    config = load_elimination_config(stages_name, top=top, keep=_counts(keep), seeds=seeds)
    out_study = out_study or f"{source}-eliminate"
    load_existing_study(source, storage)  # a typo fails before the results study is created
    resolved = resolve_storage(storage, out_study)
    study, settings, pool = open_elimination(out_study, resolved, config, source, storage)
    if not as_json:
        console.print(
            f"elimination study [bold]{out_study}[/] in {storage_label(resolved)}: "
            f"{len(pool)} candidates of {source!r}, keep "
            f"{','.join(map(str, config.keep))}, {config.seeds} seed(s) each"
        )

    def run_stage(index: int, jobs: int) -> None:
        run_jobs(
            out_study,
            storage,
            workers=workers or 1,
            device=device,
            data_dir=data_dir,
            download=download,
            label=f"stage {index + 1}/{len(config.stages)}",
            quiet=as_json,
            where={"stage": index},
        )

    def on_stage(index: int, kept: list[str]) -> None:
        if not as_json:
            _print_stage(records(study), funnel_from_study(study).stages[index], config)

    finalists = run_elimination(study, settings, config, pool, run_stage, on_stage)
    by_key = {c.key: c for c in pool}
    specs = [f"{source}:{by_key[k].source_trial}" for k in finalists]
    if as_json:
        echo_json(
            {
                "study": out_study,
                "source": source,
                "records": records(study),
                "stages": [asdict(s) for s in funnel_from_study(study).stages],
                "finalists": [
                    {
                        "key": k,
                        "expression": by_key[k].expression,
                        "source_trial": by_key[k].source_trial,
                    }
                    for k in finalists
                ],
                "transfer_losses": specs,
            }
        )
        return
    console.print("finalists: " + (", ".join(specs) or "none"))
    if specs:
        console.print(f"next: nlfs transfer --losses ce,baikal,{','.join(specs)}")


def _print_stage(rows, stage, config) -> None:
    """One stage's candidates by mean fitness, with its cut against the seed-to-seed noise."""
    from nlfs.experiments.cuts import verdict
    from nlfs.experiments.funnel import candidate_scores, tau_text

    runs = [r for r in rows if r["stage"] == stage.stage]
    scores = sorted(
        candidate_scores(runs, config.training_seeds),
        key=lambda c: (c.mean is None, -(c.mean or 0.0)),
    )
    failures = {}
    for row in runs:
        if row["failure_kind"]:
            failures.setdefault(row["key"], []).append(row["failure_kind"])
    table = Table(
        title=f"stage {stage.stage + 1}: kept {stage.kept} of {stage.ran}",
        caption=(
            f"noise (seed-to-seed sd) {fmt_acc(stage.noise)}, margin (last kept - best dropped) "
            f"{fmt_acc(stage.margin)}: {verdict(stage.clear)} (clear: margin > noise)"
            + (f"; Kendall tau vs previous stage {tau_text(stage)}" if stage.stage else "")
        ),
    )
    seed_columns = [f"seed {s}" for s in config.training_seeds]
    for name in ("kept", "mean", *seed_columns, "source trial", "candidate", "failure"):
        table.add_column(name)
    for score in scores:
        table.add_row(
            "yes" if score.kept else "",
            fmt_acc(score.mean),
            *(fmt_acc(v) for v in score.fitnesses[: len(seed_columns)]),
            str(score.source_trial),
            score.candidate,
            ", ".join(failures.get(score.key, [])),
        )
    console.print(table)
