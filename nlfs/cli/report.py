"""``nlfs report``: a statistical report of transfer results, from a study or a tidy CSV."""

from __future__ import annotations

import click

from nlfs.cli.common import echo_json, json_option, seed_option
from nlfs.errors import DataError


@click.command("report")
@click.option("--study", help="Transfer study to report (written by `nlfs transfer`).")
@click.option("--storage", help="Optuna storage URL or journal file [default: runs/NAME.journal].")
@click.option(
    "--results",
    "results",
    type=click.Path(dir_okay=False),
    help="Tidy CSV instead of a study: loss,arch,dataset,augment,seed,metric,value.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the report files and figures (created).",
)
@click.option(
    "--format",
    "formats",
    default="md,html,tex,json",
    show_default=True,
    help="Comma-separated formats: md, html (self-contained), tex, json.",
)
@click.option(
    "--baseline",
    default="ce",
    show_default=True,
    help="Loss every other is compared with (ce = cross_entropy).",
)
@click.option(
    "--metric",
    default="test_acc",
    show_default=True,
    help="Metric to analyse (study metrics: test_acc = final, best_test_acc).",
)
@click.option(
    "--alpha",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Significance level (after correction).",
)
@click.option(
    "--pairing",
    type=click.Choice(["auto", "paired", "unpaired"]),
    default="auto",
    show_default=True,
    help="Pair runs by seed: where seeds match, always, or never.",
)
@click.option(
    "--stars-test",
    type=click.Choice(["t", "rank"]),
    default="t",
    show_default=True,
    help="Test behind the stars: t (paired t / Welch) or rank (Wilcoxon / "
    "Mann-Whitney; needs 6+ seeds to reach 0.05).",
)
@click.option(
    "--tie-tolerance",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Mean differences up to this count as ties in wins/ties/losses.",
)
@click.option("--lower-is-better", is_flag=True, help="The metric is an error, not an accuracy.")
@click.option(
    "--eliminate",
    "eliminate_study",
    help="Elimination study whose funnel to include (same --storage).",
)
@click.option(
    "--fidelity",
    "fidelity_study",
    help="Fidelity study (nlfs fidelity) whose section to include (same --storage).",
)
@click.option(
    "--resamples",
    default=10_000,
    show_default=True,
    type=click.IntRange(100),
    help="Bootstrap resamples B for the confidence intervals.",
)
@seed_option
@json_option
def report(
    study,
    storage,
    results,
    out_dir,
    formats,
    baseline,
    metric,
    alpha,
    pairing,
    stars_test,
    tie_tolerance,
    lower_is_better,
    eliminate_study,
    fidelity_study,
    resamples,
    seed,
    as_json,
) -> None:
    """Statistical report of transfer results: tables, tests, ranks and figures.

    Reads a transfer study (--study) or a tidy CSV (--results) and writes report.md,
    report.html, report.tex and report.json with PNG figures to --out.
    """
    from nlfs.experiments.records import records_from_study
    from nlfs.report import build_report, funnel_from_study, parse_formats, write_report
    from nlfs.stats.records import read_csv
    from nlfs.storage import load_existing_study

    if (study is None) == (results is None):
        raise click.UsageError("give exactly one of --study NAME or --results FILE.csv")
    chosen = parse_formats(formats)
    notes: list[str] = []
    if results is not None:
        records, source = read_csv(results), str(results)
    else:
        loaded = records_from_study(load_existing_study(study, storage))
        records, source = list(loaded.records), f"study {study}"
        if loaded.failed or loaded.unfinished:
            notes.append(
                f"{loaded.failed} failed and {loaded.unfinished} unfinished grid jobs were left out"
            )
        if not records:
            raise DataError(f"study {study!r} has no finished jobs yet")
    funnel = None
    if eliminate_study is not None:
        funnel = funnel_from_study(load_existing_study(eliminate_study, storage))
    fidelity = None
    if fidelity_study is not None:
        from nlfs.experiments.fidelity import collect, from_study

        experiment = from_study(load_existing_study(fidelity_study, storage))
        fidelity = collect(experiment, storage)
    built = build_report(
        records,
        source=source,
        baseline=baseline,
        metric=metric,
        alpha=alpha,
        pairing=pairing,
        significance_test=stars_test,
        higher_is_better=not lower_is_better,
        tie_tolerance=tie_tolerance,
        seed=seed,
        resamples=resamples,
        funnel=funnel,
        notes=notes,
    )
    written = write_report(built, out_dir, chosen, fidelity=fidelity)
    a = built.analysis
    if as_json:
        echo_json(
            {
                "files": [str(p) for p in written],
                "friedman_p": a.friedman.p_value if a.friedman else None,
                "critical_difference": a.nemenyi.critical_difference if a.nemenyi else None,
            }
        )
        return
    from nlfs.cli.common import console

    console.print(
        f"{len(a.losses)} losses x {len(a.settings)} settings, metric {a.metric}, "
        f"baseline {a.baseline}"
    )
    for w in a.wins:
        console.print(
            f"  {w.loss}: {w.wins} wins, {w.ties} ties, {w.losses} losses vs "
            f"{w.baseline} (sign test p = {w.sign_test_p:.3g})"
        )
    if a.friedman is not None:
        console.print(
            f"  Friedman p = {a.friedman.p_value:.3g}, Nemenyi CD = "
            f"{a.nemenyi.critical_difference:.3f}"
        )
    for path in written:
        if path.suffix != ".png":
            console.print(f"wrote {path}")
