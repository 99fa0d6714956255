"""The verdict that opens the report of ``nlfs run``: what a researcher came to learn, in plain
sentences backed by the numbers of the tables below them.

:func:`build_verdict` gathers the numbers once, as JSON-ready data (the ``"verdict"`` of
report.json): did each found loss beat the baseline (cross-entropy) and the best other baseline
on the held-out transfer settings, with the corrected test and the effect sizes; how far the
surrogate's ranking carried (the fidelity report's Kendall tau, its interval and the target's
ceiling); what the search and the other steps spent. :func:`sentences` renders the sentences from
that data alone, so a sentence never shows a number the JSON lacks. :func:`verdict_blocks` lays
them out with each found loss's formula and the learning curves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlfs.report.build import Report, build_report
from nlfs.report.document import (
    TEST_NAMES,
    Block,
    Bullets,
    Entry,
    Formula,
    Heading,
    Table,
    num,
    pval,
)
from nlfs.stats import Analysis, Comparison, analyse

OUTCOMES = {
    "beat": "beat",
    "worse": "did worse than",
    "mixed": "was mixed against",
    "no_difference": "did not differ significantly from",
}
"""How a found loss fared against a baseline, as the sentence says it."""
TESTS = {
    ("t", True): "paired t-test",
    ("t", False): "Welch's t-test",
    ("rank", True): "Wilcoxon signed-rank test",
    ("rank", False): "Mann-Whitney U test",
}
"""The test behind "significantly", by the report's choice and whether the runs were paired."""
CARRY = {
    "carries": "the surrogate's ranking carried to the target",
    "weak": "the surrogate's ranking carried only in part to the target",
    "does_not_predict": "the surrogate's ranking was not shown to carry to the target (the "
    "interval of tau reaches 0)",
    "undefined": "how far the surrogate's ranking carried is undefined",
}


def _f(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _setting_entry(c: Comparison, test: str, alpha: float) -> dict[str, Any]:
    p = c.corrected_p(test)
    return {
        "setting": c.setting.label,
        "mean_difference": _f(c.mean_difference),
        "ci_low": _f(c.ci.low),
        "ci_high": _f(c.ci.high),
        "cohens_d": _f(c.cohens_d),
        "cliffs_delta": _f(c.cliffs_delta),
        "p_holm": _f(p),
        "significant": p is not None and p < alpha,
        "better": c.better,
        "paired": c.paired,
        "n": [c.n_loss, c.n_baseline],
    }


def _outcome(significant_wins: int, significant_losses: int) -> str:
    if significant_wins and significant_losses:
        return "mixed"
    if significant_wins:
        return "beat"
    if significant_losses:
        return "worse"
    return "no_difference"


def _strongest(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The setting with the smallest corrected p (defined first), then the largest |Δ|."""
    if not rows:
        return None
    return min(
        rows,
        key=lambda r: (
            r["p_holm"] is None,
            r["p_holm"] if r["p_holm"] is not None else 0.0,
            -abs(r["mean_difference"] or 0.0),
        ),
    )


def _against(a: Analysis, loss: str) -> dict[str, Any]:
    """How ``loss`` fared against ``a.baseline`` over the settings of ``a``."""
    rows = [
        _setting_entry(c, a.significance_test, a.alpha) for c in a.comparisons if c.loss == loss
    ]
    wins = next(w for w in a.wins if w.loss == loss)
    across = next((w for w in a.across if w.loss == loss), None)
    diffs = [r["mean_difference"] for r in rows if r["mean_difference"] is not None]
    return {
        "loss": loss,
        "against": a.baseline,
        "settings": len(rows),
        "wins": wins.wins,
        "ties": wins.ties,
        "losses": wins.losses,
        "significant_wins": wins.significant_wins,
        "significant_losses": wins.significant_losses,
        "mean_difference": float(np.mean(diffs)) if diffs else None,
        "outcome": _outcome(wins.significant_wins, wins.significant_losses),
        "strongest": _strongest(rows),
        "per_setting": rows,
        "across": None
        if across is None or across.p_holm is None
        else {
            "n_settings": across.n_settings,
            "p_value": _f(across.wilcoxon.p_value),
            "p_holm": _f(across.p_holm),
        },
    }


def best_baseline(report: Report, found: Sequence[str]) -> str | None:
    """The baseline other than the report's with the best mean over the settings (None when the
    report's baseline is best, or there is no other)."""
    a = report.analysis
    means: dict[str, list[float]] = {}
    for s in report.summaries:
        means.setdefault(s.loss, []).append(s.mean)
    others = [loss for loss in a.losses if loss not in found]
    if len(others) < 2:
        return None
    sign = 1.0 if a.higher_is_better else -1.0
    best = max(others, key=lambda loss: (sign * float(np.mean(means[loss])), loss == a.baseline))
    return None if best == a.baseline else best


def build_verdict(report: Report, facts: Any) -> dict[str, Any]:
    """The verdict's numbers, as JSON-ready data with the rendered ``sentences``.

    Args:
        report: the transfer report (baseline: cross-entropy).
        facts: the pipeline's facts (:class:`nlfs.experiments.pipeline_facts.PipelineFacts`).
    """
    from nlfs.losses.export import latex_formula

    a = report.analysis
    found = [f.label for f in facts.finalists if f.label in a.losses]
    transfer = [_against(a, loss) for loss in found]
    best = best_baseline(report, found)
    if best is not None and found:
        s = facts.report
        versus = analyse(
            [r for r in facts.records if r.loss in {*found, best}],
            baseline=best,
            metric=a.metric,
            alpha=a.alpha,
            significance_test=a.significance_test,
            higher_is_better=a.higher_is_better,
            seed=s.seed,
            resamples=s.resamples,
        )
        transfer += [_against(versus, loss) for loss in found]
    verdict: dict[str, Any] = {
        "metric": a.metric,
        "alpha": a.alpha,
        "test": _test_name(a),
        "correction": "holm",
        "baseline": a.baseline,
        "best_baseline": best,
        "settings": [s.label for s in a.settings],
        "found": [
            {
                "label": f.label,
                "expression": f.expression,
                "sign": f.sign,
                "latex": latex_formula(f.expression, f.sign),
                "search_fitness": f.search_fitness,
                "in_transfer": f.label in a.losses,
            }
            for f in facts.finalists
        ],
        "transfer": transfer,
        "fidelity": _fidelity(facts.fidelity),
        "spend": {step: dict(v) for step, v in facts.spend.items()},
        "trained_this_run": dict(facts.trained),
        "curves": [dict(c) for c in facts.curves],
    }
    verdict["sentences"] = sentences(verdict)
    return verdict


def _test_name(a: Analysis) -> str:
    pairing = {c.paired for c in a.comparisons}
    if len(pairing) == 1:
        return TESTS[(a.significance_test, pairing.pop())]
    return TEST_NAMES[a.significance_test]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _fidelity(facts: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if facts is None:
        return None
    from nlfs.report.fidelity import analyse as analyse_fidelity

    whole = analyse_fidelity(dict(facts))["all"]
    kendall = whole["agreement"]["kendall"]
    ceiling = whole["target_ceiling"]
    return {
        "study": facts.get("name"),
        "target": facts.get("target"),
        "candidates": whole["candidates"],
        "tau": _f(kendall["estimate"]),
        "tau_low": _f(kendall["low"]),
        "tau_high": _f(kendall["high"]),
        "ceiling": None if ceiling is None else _f(ceiling["kendall"]["estimate"]),
        "closeness": _f(whole["closeness"]),
        "kind": whole["verdict"]["kind"],
    }


# ---------------------------------------------------------------- sentences


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def _transfer_sentence(t: Mapping[str, Any], v: Mapping[str, Any]) -> str:
    loss, against = t["loss"], t["against"]
    more = "higher" if v["metric"].endswith("acc") else "better"
    text = (
        f"{loss} {OUTCOMES[t['outcome']]} {against} on the held-out settings: {more} mean "
        f"{v['metric']} in {t['wins']} of {_plural(t['settings'], 'setting')}, significantly "
        f"better in {t['significant_wins']} and significantly worse in {t['significant_losses']} "
        f"({v['test']}, Holm-corrected, alpha {v['alpha']:g}); mean Δ "
        f"{_signed(t['mean_difference'])}."
    )
    s = t["strongest"]
    if s is not None and s["p_holm"] is not None:
        text += (
            f" Clearest setting {s['setting']}: Δ {_signed(s['mean_difference'])} "
            f"[95% CI {num(s['ci_low'])}, {num(s['ci_high'])}], Cohen's d {num(s['cohens_d'], 2)}, "
            f"Cliff's δ {num(s['cliffs_delta'], 2)}, p (Holm) {pval(s['p_holm'])}."
        )
    elif s is not None:
        text += " The per-setting tests are undefined (fewer than two runs per setting)."
    if t["across"] is not None:
        x = t["across"]
        text += (
            f" Across the {x['n_settings']} settings: Wilcoxon signed-rank p (Holm) "
            f"{pval(x['p_holm'])}."
        )
    return text


def _fidelity_sentence(f: Mapping[str, Any]) -> str:
    text = f"Surrogate fidelity: {CARRY[f['kind']]}"
    if f["tau"] is None:
        return text + f" (target: {f['target']})."
    ceiling = (
        "no target ceiling (one target seed, or seeds that disagree)"
        if f["ceiling"] is None
        else f"the target's own seed-to-seed ceiling is {num(f['ceiling'], 2)}"
    )
    interval = (
        "" if f["tau_low"] is None else f" [95% CI {num(f['tau_low'], 2)}, {num(f['tau_high'], 2)}]"
    )
    return (
        f"{text}: Kendall's tau {num(f['tau'], 2)}{interval} between the search fitness and "
        f"the target accuracy of {_plural(f['candidates'], 'candidate')}; {ceiling} "
        f"(target: {f['target']})."
    )


def _seconds(seconds: Mapping[str, float]) -> str:
    parts = [f"{seconds[k]:.0f} s on {k.upper()}" for k in ("cpu", "gpu") if k in seconds]
    if "unknown" in seconds:
        parts.append(f"{seconds['unknown']:.0f} s on an unrecorded device")
    return " and ".join(parts) or "0 s"


def _spend_sentence(spend: Mapping[str, Mapping[str, Any]]) -> str:
    s = spend["search"]
    budget = "" if s["budget"] is None else f" of its budget of {s['budget']}"
    text = (
        f"The search ({s['study']}) spent {_plural(s['evaluations'], 'evaluation')}{budget}: "
        f"{s['ok']} trained to a fitness, "
        + (f"{s['pruned']} stopped early by the pruning rule, " if s.get("pruned") else "")
        + f"{s['failed']} failed in training; the screen rejected "
        f"{_plural(s['rejected'], 'candidate')} before any training"
    )
    if s["interrupted"]:
        text += f", and {_plural(s['interrupted'], 'interrupted trial')} had to be redone"
    text += f". Training time (summed over trials): {_seconds(s['seconds'])}"
    rest = [f"{step} {_seconds(v['seconds'])}" for step, v in spend.items() if step != "search"]
    if rest:
        text += "; then " + ", ".join(rest)
    return text + "."


def sentences(verdict: Mapping[str, Any]) -> list[str]:
    """The verdict's sentences, rendered from its data (and nothing else)."""
    out = [_transfer_sentence(t, verdict) for t in verdict["transfer"]]
    if not verdict["transfer"]:
        out.append("No found loss finished a transfer job, so nothing can be said of it.")
    if verdict["fidelity"] is not None:
        out.append(_fidelity_sentence(verdict["fidelity"]))
    out.append(_spend_sentence(verdict["spend"]))
    return out


# ---------------------------------------------------------------- layout and writing


def verdict_blocks(verdict: Mapping[str, Any], out_dir: Path) -> tuple[list[Block], list[Path]]:
    """The verdict section (sentences, formulas, the best-baseline table, learning curves) and
    the figure files it wrote."""
    from nlfs.report.verdict_plots import write_curves

    blocks: list[Block] = [Heading("Verdict"), Bullets(tuple(verdict["sentences"]))]
    for f in verdict["found"]:
        note = f"search fitness {num(f['search_fitness'])}"
        if not f["in_transfer"]:
            note += "; no finished transfer job"
        blocks.append(
            Formula(f"Found loss {f['label']} ({note})", f["expression"], f["sign"], f["latex"])
        )
    best = verdict["best_baseline"]
    rows = [t for t in verdict["transfer"] if t["against"] == best]
    if best is not None and rows:
        blocks.append(_versus_table(rows, verdict))
    figures = write_curves(verdict["curves"], Path(out_dir))
    blocks += figures
    return blocks, [Path(out_dir) / f.path for f in figures]


def _versus_table(rows: Sequence[Mapping[str, Any]], verdict: Mapping[str, Any]) -> Table:
    body = tuple(
        tuple(
            Entry(text)
            for text in (
                r["setting"],
                t["loss"],
                _signed(r["mean_difference"]),
                f"[{num(r['ci_low'])}, {num(r['ci_high'])}]",
                num(r["cohens_d"], 2),
                num(r["cliffs_delta"], 2),
                pval(r["p_holm"]),
            )
        )
        for t in rows
        for r in t["per_setting"]
    )
    return Table(
        ("Setting", "Loss", "Δ", "95% CI", "d", "δ", "p (Holm)"),
        body,
        f"Found losses against the best other baseline, {verdict['best_baseline']} "
        f"({verdict['test']}, Holm's correction over these comparisons)",
    )


def write_pipeline_report(facts: Any, out_dir: str | Path) -> tuple[list[Path], dict[str, Any]]:
    """Build the transfer report of a pipeline run with its verdict first and write it.

    Returns:
        The files written and the verdict (as in report.json).
    """
    from nlfs.report import write_report

    s = facts.report
    report = build_report(
        facts.records,
        source=f"study {facts.studies['transfer']} in {facts.storage}",
        baseline=s.baseline,
        alpha=s.alpha,
        significance_test=s.significance_test,
        seed=s.seed,
        resamples=s.resamples,
        funnel=facts.funnel,
        notes=facts.notes,
    )
    verdict = build_verdict(report, facts)
    files = write_report(report, out_dir, s.formats, fidelity=facts.fidelity, verdict=verdict)
    return files, verdict
