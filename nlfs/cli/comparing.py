"""What ``nlfs compare`` and ``nlfs ablate`` share: their options and the whole run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import click

from nlfs.cli.common import console, echo_json, json_option, resumable_on_ctrl_c


def comparison_options(func: Callable) -> Callable:
    """The options both commands take, after their own arm option."""
    options = [
        click.option("--profile", help="Evaluator profile of every study [default: the config's]."),
        click.option("--budget", type=int, help="Trained evaluations per study."),
        click.option("--seeds", type=int, help="Search seeds per arm (0..K-1)."),
        click.option(
            "--time-budget",
            "time_budget",
            type=float,
            help="Training seconds per study instead of a number of evaluations.",
        ),
        click.option(
            "--reevaluate",
            type=int,
            default=3,
            show_default=True,
            help="Fresh training seeds for each study's top candidates (0: none).",
        ),
        click.option(
            "--top-k",
            "top_k",
            type=int,
            default=3,
            show_default=True,
            help="Candidates per study to re-evaluate.",
        ),
        click.option("--name", help="Prefix of the study names [default: the command's name]."),
        click.option(
            "--workers",
            type=int,
            default=1,
            show_default=True,
            help="Local worker processes per study.",
        ),
        click.option("--storage", help="Journal file or storage URL [default: runs/NAME.journal]."),
        click.option(
            "--config",
            "config_file",
            help="Base search config (name or TOML path) [default: default].",
        ),
        click.option("--device", help="auto, cpu, cuda or cuda:N."),
        click.option("--data-dir", help="Dataset folder (default: the profile dataset's)."),
        click.option(
            "--out",
            required=True,
            type=click.Path(file_okay=False),
            help="Folder of the report (report.md, report.html, summary.json).",
        ),
        click.option(
            "--report-only",
            is_flag=True,
            help="Rebuild the report from the stored studies; train nothing.",
        ),
        json_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_comparison(
    kind: str,
    names: Sequence[str],
    *,
    defaults: dict,
    profile,
    budget,
    seeds,
    time_budget,
    reevaluate,
    top_k,
    name,
    workers,
    storage,
    config_file,
    device,
    data_dir,
    out,
    report_only,
    as_json,
    fixed: dict,
) -> None:
    """Build the arms, run (or reuse) every search and the re-evaluation, write the report.

    ``defaults`` holds the command's budget and seeds; ``fixed`` the ``[search]`` values every
    arm shares (``--space`` for compare, ``--strategy`` for ablate).
    """
    from nlfs.experiments.arms import base_table, split_names, strategy_arms, variant_arms
    from nlfs.experiments.compare import Comparison, collect
    from nlfs.storage import quiet_optuna

    quiet_optuna()
    table, where = base_table(config_file)
    overrides = {"profile": profile, "device": device, "data_dir": data_dir, **fixed}
    build = strategy_arms if kind == "compare" else variant_arms
    arms = build(split_names(names, "arm"), table, where, overrides)
    comparison = Comparison(
        kind=kind,
        name=name or kind,
        arms=tuple(arms),
        seeds=tuple(range(seeds if seeds is not None else defaults["seeds"])),
        budget=budget if budget is not None else defaults["budget"],
        time_budget_s=time_budget,
        reevaluate=reevaluate,
        top_k=top_k,
    )
    storage = storage or str(Path("runs") / f"{comparison.name}.journal")
    if not report_only:
        with resumable_on_ctrl_c():
            _train(comparison, storage, workers, as_json)
    summary = _report(collect(comparison, storage), Path(out))
    if as_json:
        echo_json(summary)
    else:
        _headline(summary, Path(out))


def _train(comparison, storage: str, workers: int, quiet: bool) -> None:
    from functools import partial

    from nlfs.cli.gridrun import run_jobs
    from nlfs.experiments.compare import prepare_reevaluation, run_searches
    from nlfs.search.workers import run_search

    def announce(index: int, total: int, name: str, reused: bool) -> None:
        if not quiet:
            state = "finished, reused" if reused else "running"
            console.print(f"[{index + 1}/{total}] {name}: {state}")

    search = partial(run_search, progress=not quiet)
    run_searches(comparison, storage, workers=workers, run=search, on_study=announce)
    study, total, todo = prepare_reevaluation(comparison, storage)
    if not quiet:
        console.print(f"re-evaluation: {total} jobs, {todo} to run")
    run_jobs(
        study.study_name,
        storage,
        workers=workers,
        device=comparison.reference.device,
        data_dir=comparison.reference.data_dir,
        download=False,
        label="re-evaluate",
        quiet=quiet,
    )


def _report(facts: dict, out: Path) -> dict:
    from nlfs.report.comparison import write_comparison_report

    return write_comparison_report(facts, out)


def _headline(summary: dict, out: Path) -> None:
    from rich.table import Table

    table = Table(title=f"{summary['kind']}: {summary['name']} ({summary['profile']})")
    for column in ("arm", "re-evaluated best (median)", "in-search best (median)", "AUC"):
        table.add_column(column)
    for stats in summary["analysis"]["arms"]:
        table.add_row(
            stats["name"],
            _num(stats["reevaluated_best"]["median"]),
            _num(stats["best_fitness"]["median"]),
            _num(stats["auc"]["median"]),
        )
    console.print(table)
    console.print(f"report: {out / 'report.html'} (also report.md, summary.json)")


def _num(value) -> str:
    return "–" if value is None else f"{value:.4f}"
