"""The report of ``nlfs compare`` (search strategies) and ``nlfs ablate`` (search-space variants).

:func:`analyse` (in :mod:`nlfs.report.comparison_analysis`) derives every number from the facts
that :func:`nlfs.experiments.compare.collect` gathers from the stored studies;
:func:`write_comparison_report` writes ``summary.json`` (the facts plus that analysis, so every
number shown can be read back), ``report.md``, a self-contained ``report.html`` and the figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from nlfs.report.comparison_analysis import METRIC_LABELS, analyse
from nlfs.report.document import Block, Bullets, Entry, Figure, Heading, Paragraph, Table, num
from nlfs.report.document import pval as _pval
from nlfs.report.summary import SUMMARY_FORMATS, write_summary_report

COMPARISON_FORMATS = SUMMARY_FORMATS
TITLES = {"compare": "Search strategies compared", "ablate": "Search-space ablation"}
DASH = "–"


def write_comparison_report(
    facts: dict, out_dir: Path, formats: Iterable[str] = COMPARISON_FORMATS
) -> dict:
    """Analyse the facts of one comparison or ablation and write the report (see
    :func:`nlfs.report.summary.write_summary_report` for the formats, the return value and the
    errors)."""
    from nlfs.report.comparison_plots import write_comparison_figures

    analysis = analyse(facts)
    return write_summary_report(
        facts,
        analysis,
        out_dir,
        formats,
        figures=lambda out: write_comparison_figures(facts, analysis, out),
        layout=lambda figures, html: layout(facts, analysis, figures, latex=html),
    )


def pval(p: float | None) -> str:
    """A p-value, or an en dash where the test is undefined."""
    return DASH if p is None else _pval(p)


def spread(summary: dict, digits: int = 4) -> str:
    """``median [q25, q75]`` of a per-seed summary: the value alone for one seed, an en dash for
    none."""
    if summary["median"] is None:
        return DASH
    if summary["n"] == 1:  # an interquartile range of one value says nothing
        return num(summary["median"], digits)
    low, high = num(summary["q25"], digits), num(summary["q75"], digits)
    return f"{num(summary['median'], digits)} [{low}, {high}]"


def layout(facts: dict, analysis: dict, figures: Sequence[Figure], *, latex: bool) -> list[Block]:
    """The report as blocks; ``latex`` adds the best losses' LaTeX (as ``\\( ... \\)`` text)."""
    unit = "variant" if facts.get("axis") == "variant" else "strategy"
    figure = {f.path.rsplit("/", 1)[-1]: f for f in figures}
    blocks: list[Block] = [
        Heading(TITLES.get(facts["kind"], "Comparison"), 1),
        Paragraph(setup_text(facts)),
        Bullets(
            tuple(
                f"{arm['name']}: {arm['description']} (config hash {arm['config_hash']})"
                for arm in facts["arms"]
            )
        ),
        Heading("Headline"),
        headline_table(facts, analysis),
        Paragraph(headline_legend(facts, analysis)),
        Heading("Anytime curves"),
        *(figure[n] for n in ("anytime_evaluations.png", "anytime_seconds.png") if n in figure),
        Paragraph(
            "Curves step at each finished evaluation. On the evaluation axis a seed counts up to "
            "its own last evaluation; on the wall-seconds axis (a common grid for every "
            f"{unit}) a finished study keeps its final best. A band starts once every seed has "
            "a successful evaluation (and on the evaluation axis ends with the shortest study), "
            "so the median over seeds never falls."
        ),
        *(figure[n] for n in ("final_best.png",) if n in figure),
        Heading("Pairwise tests"),
        Paragraph(analysis["pairing"]),
        pairwise_table(analysis),
        Paragraph(
            "Δ = mean(A) − mean(B) with its unpaired percentile bootstrap 95% interval; δ: "
            "Cliff's delta (positive: A tends higher); U: Mann-Whitney U of A; p raw and "
            "Holm-corrected over the pairs of each metric. A pair with fewer than two values "
            f"per arm, or whose values are all equal, is not tested ({DASH})."
        ),
        *friedman_blocks(analysis, figure.get("critical_difference.png")),
        Heading("Screening, failures and diversity"),
        rates_table(analysis),
        Paragraph(
            "Rejection and duplicate rates are over all screened candidates (rejected + "
            "trained), summed over seeds; duplicates are the rejections for a duplicate key or "
            "probe curve. Failure rate: failed / trained evaluations; pruned evaluations "
            "(stopped early by the pruning rule, no fitness) are neither ok nor failed. "
            "Distinct keys and "
            "diversity (mean pairwise probe-fingerprint distance of the top 20): median over "
            "seeds."
        ),
        Heading("Best losses found"),
        best_losses_table(analysis, latex=latex),
    ]
    return blocks


def setup_text(facts: dict) -> str:
    budget = (
        f"a budget of {facts['budget']} trained evaluations per study"
        if facts.get("budget") is not None
        else f"a time budget of {num(facts.get('time_budget_s'), 1)} wall seconds per study"
    )
    reeval = facts.get("reevaluate", 0)
    seeds = ", ".join(str(s) for s in facts["seeds"])
    text = (
        f"{facts['name']}: {len(facts['arms'])} arms varying the {facts['axis']}, "
        f"{len(facts['seeds'])} search seeds each ({seeds}), {budget}. Profile "
        f"{facts['profile']} (settings hash {facts['profile_hash']}) on {facts['machine']}; "
        f"every trial trains with evaluation seed {facts['eval_seed']}. Budgets count trained "
        "evaluations (finished ok, failed or pruned); candidates rejected by the screen, "
        "duplicates included, do not consume budget and are reported below. "
    )
    if reeval:
        fresh = ", ".join(str(s) for s in facts["reevaluation_seeds"])
        text += (
            f"A search's best fitness is optimistically biased: it is the maximum of many noisy "
            f"evaluations with one training seed. The top {facts['top_k']} candidates of every "
            f"study were therefore retrained with {reeval} fresh training seeds ({fresh}); a "
            "study's re-evaluated best is the highest mean over them, and it is the headline "
            "score, with the in-search best beside it."
        )
    else:
        text += (
            "No re-evaluation was run, so the headline compares in-search best fitness, which is "
            "optimistically biased (the maximum of many noisy evaluations with one training "
            "seed)."
        )
    return text


def headline_table(facts: dict, analysis: dict) -> Table:
    reeval = bool(facts.get("reevaluate"))
    columns = ["Arm", "Seeds"]
    if reeval:
        columns.append("Re-evaluated best")
    columns += ["In-search best", "AUC", "Evaluations to cross-entropy"]
    rows = []
    for arm in analysis["arms"]:
        to_ce = arm["evals_to_baseline"]
        reached = f"{to_ce['reached']}/{to_ce['of']} seeds"
        row = [arm["name"], str(arm["seeds"])]
        if reeval:
            row.append(spread(arm["reevaluated_best"]))
        row += [
            spread(arm["best_fitness"]),
            spread(arm["auc"]),
            f"{spread(to_ce, 1)} ({reached})",
        ]
        rows.append(tuple(Entry(t) for t in row))
    base = analysis["baseline"]
    row = ["cross-entropy (baseline)", DASH]
    if reeval:
        row.append(num(base["reevaluated_mean"]))
    rows.append(tuple(Entry(t) for t in (*row, num(base["fitness"]), DASH, DASH)))
    return Table(tuple(columns), tuple(rows))


def headline_legend(facts: dict, analysis: dict) -> str:
    text = (
        "Median [interquartile range] over search seeds. AUC: mean best-so-far fitness over "
        "the budget's evaluations (0 before the first success). Evaluations to cross-entropy: "
        "the first evaluation whose best so far reaches cross-entropy's in-search fitness, over "
        "the seeds that reached it. The baseline row gives cross-entropy's fitness with the "
        "evaluation seed"
    )
    if facts.get("reevaluate"):
        text += (
            f" and its mean over the {analysis['baseline']['reevaluated_n']} re-evaluation seeds"
        )
    return text + "."


def pairwise_table(analysis: dict) -> Table:
    rows = []
    for metric in analysis["tested_metrics"]:
        for r in analysis["pairwise"][metric]:
            ci = DASH if r["ci_low"] is None else f"[{num(r['ci_low'])}, {num(r['ci_high'])}]"
            rows.append(
                tuple(
                    Entry(t)
                    for t in (
                        METRIC_LABELS[metric],
                        r["a"],
                        r["b"],
                        f"{r['n_a']}/{r['n_b']}",
                        num(r["mean_difference"]),
                        ci,
                        num(r["cliffs_delta"], 2),
                        num(r["u"], 1),
                        pval(r["p"]),
                        pval(r["p_holm"]),
                    )
                )
            )
    return Table(("Metric", "A", "B", "n", "Δ", "95% CI", "δ", "U", "p", "Holm p"), tuple(rows))


def friedman_blocks(analysis: dict, cd_figure: Figure | None) -> list[Block]:
    blocks: list[Block] = [Heading("Ranks over seeds (Friedman, Nemenyi)")]
    for metric in analysis["tested_metrics"]:
        result, note = analysis["friedman"][metric], analysis["friedman_note"][metric]
        label = METRIC_LABELS[metric]
        if result is None:
            blocks.append(Paragraph(f"{label.capitalize()}: not computed. {note}"))
            continue
        blocks.append(
            Paragraph(
                f"{label.capitalize()}: Friedman χ² = {num(result['statistic'], 3)} "
                f"(k = {len(result['names'])} arms, N = {result['blocks']} blocks), p = "
                f"{pval(result['p'])}; {iman_davenport(result)}. Nemenyi critical difference "
                f"at alpha {analysis['alpha']:g}: CD = {num(result['critical_difference'], 3)} "
                f"(q = {num(result['nemenyi_q'], 3)}). {note}"
            )
        )
        order = sorted(range(len(result["names"])), key=lambda i: result["average_ranks"][i])
        blocks.append(
            Table(
                ("Arm", "Average rank"),
                tuple(
                    (Entry(result["names"][i]), Entry(num(result["average_ranks"][i], 3)))
                    for i in order
                ),
                f"Average ranks on the {label} (1 = best)",
            )
        )
        if metric == analysis["headline_metric"] and cd_figure is not None:
            blocks.append(cd_figure)
    return blocks


def iman_davenport(result: dict) -> str:
    # The analysis stores an infinite F as None (strict JSON); it is infinite exactly when
    # every block ranks the arms alike, and its p-value is then 0.
    if result["iman_davenport"] is None:
        return "Iman-Davenport F is infinite (every seed ranks the arms alike), p = 0"
    return (
        f"Iman-Davenport F = {num(result['iman_davenport'], 3)}, "
        f"p = {pval(result['iman_davenport_p'])}"
    )


def rates_table(analysis: dict) -> Table:
    rows = []
    for arm in analysis["arms"]:
        t = arm["totals"]
        rows.append(
            tuple(
                Entry(x)
                for x in (
                    arm["name"],
                    str(t["evaluations"]),
                    str(t["rejected"]),
                    str(t["duplicates"]),
                    str(t["failed"]),
                    str(t.get("pruned", 0)),
                    num(arm["rejection_rate"], 3),
                    num(arm["duplicate_rate"], 3),
                    num(arm["failure_rate"], 3),
                    spread(arm["distinct_keys"], 1),
                    spread(arm["diversity"], 3),
                )
            )
        )
    return Table(
        (
            "Arm",
            "Trained",
            "Rejected",
            "Duplicates",
            "Failed",
            "Pruned",
            "Rejection rate",
            "Duplicate rate",
            "Failure rate",
            "Distinct keys",
            "Diversity",
        ),
        tuple(rows),
    )


def best_losses_table(analysis: dict, *, latex: bool) -> Table:
    rows = []
    for e in analysis["best_losses"]:
        expression = e["expression"]
        if not latex and not any(c in expression for c in "`*|"):
            expression = f"`{expression}`"  # code span in Markdown; the renderer escapes * and |
        cells = [e["arm"], f"{e['study']}:{e['trial']}", expression]
        if latex:
            cells.append(f"\\( {e['latex']} \\)" if e["latex"] else DASH)
        cells += [num(e["fitness"]), num(e["reevaluated_mean"])]
        rows.append(tuple(Entry(c) for c in cells))
    columns = ["Arm", "Study:trial", "Expression"]
    if latex:
        columns.append("LaTeX")
    columns += ["Fitness", "Re-evaluated mean"]
    return Table(tuple(columns), tuple(rows))


__all__ = ["COMPARISON_FORMATS", "analyse", "layout", "write_comparison_report"]
