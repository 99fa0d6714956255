"""The report of ``nlfs fidelity``: does the surrogate's ranking of a search's candidates carry to
a target setting?

:func:`analyse` derives every number from the facts that :func:`nlfs.experiments.fidelity.collect`
gathers (the picked candidates and anchors, their surrogate fitness under two evaluation seeds and
their target accuracy under S training seeds); :func:`write_fidelity_report` writes
``summary.json`` (the facts plus that analysis), ``report.md``, a self-contained ``report.html``
and the figures. The analysis is pure: its bootstrap draws from generators seeded by the
constants below, never the global RNG, and undefined numbers are None, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from nlfs.report.document import Block, Entry, Figure, Heading, Paragraph, Table, num
from nlfs.report.summary import SUMMARY_FORMATS, write_summary_report
from nlfs.stats import rank_agreement, regret, top_k_overlap

FIDELITY_FORMATS = SUMMARY_FORMATS
TITLE = "Does the surrogate's ranking carry?"
DASH = "–"
ALPHA = 0.05
"""The bootstrap intervals cover 1 - ALPHA."""
RESAMPLES = 2000
"""Bootstrap resamples of the candidates per interval."""
BOOTSTRAP_SEED = 20240314
"""Root of the bootstrap generators, so a report rebuilt from the same studies is identical."""
OVERLAP_KS = (1, 3, 5)
"""Sizes of the top sets compared."""
CARRY_FRACTION = 0.5
""""Carries" needs Kendall's tau at least this fraction of the target's own seed-to-seed tau."""
CARRY_TAU_WITHOUT_CEILING = 0.4
"""Without a positive target ceiling (one target seed, or seeds that disagree), "carries" needs
at least this tau."""
CORRELATION_COLUMNS = ("Candidates", "Pair", "n", "τ", "τ 95% CI", "ρ", "ρ 95% CI", "τ / ceiling τ")
CANDIDATE_COLUMNS = ("#", "Label", "Expression", "Surrogate", "Re-run", "Target", "Seeds", "Role")


def _finite(value: Any) -> float | None:
    """A finite float, or None for None, NaN and infinities."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _at(values: Sequence[float | None], index: int) -> float | None:
    return values[index] if index < len(values) else None


def _scores(entry: dict, *, in_top: bool = False) -> dict:
    """A candidate's or anchor's scores: surrogate = the in-search fitness (first surrogate
    seed), target = the mean over the target seeds that finished."""
    surrogate = [_finite(v) for v in entry.get("surrogate", [])]
    target = [_finite(v) for v in entry.get("target", [])]
    finished = [v for v in target if v is not None]
    return {
        "label": entry["label"],
        "expression": entry.get("expression"),
        "anchor": bool(entry.get("anchor", False)),
        "in_top": in_top,
        "surrogate": _at(surrogate, 0),
        "surrogate_repeat": _at(surrogate, 1),
        "target_seeds": target,
        "target_mean": float(np.mean(finished)) if finished else None,
        "target_n": len(finished),
    }


def top_candidates(candidates: Sequence[dict], top: int) -> list[int]:
    """Positions of the surrogate's ``top`` best candidates (missing fitness last, equals in the
    order given)."""
    order = sorted(
        range(len(candidates)),
        key=lambda i: (candidates[i]["surrogate"] is None, -(candidates[i]["surrogate"] or 0.0)),
    )
    return order[: max(0, top)]


def _agreement(x: Sequence, y: Sequence, seed: np.random.SeedSequence) -> dict:
    return asdict(rank_agreement(x, y, resamples=RESAMPLES, seed=seed, alpha=ALPHA))


def _correlations(rows: Sequence[dict], target_seeds: int, seed: np.random.SeedSequence) -> dict:
    """Surrogate-vs-target agreement over ``rows`` with both noise ceilings and the verdict."""
    main_seed, target_seed, surrogate_seed = seed.spawn(3)
    surrogate = [r["surrogate"] for r in rows]
    main = _agreement(surrogate, [r["target_mean"] for r in rows], main_seed)
    target_ceiling = None
    if target_seeds >= 2:
        first, second = ([_at(r["target_seeds"], i) for r in rows] for i in (0, 1))
        target_ceiling = _agreement(first, second, target_seed)
    surrogate_ceiling = _agreement(surrogate, [r["surrogate_repeat"] for r in rows], surrogate_seed)
    tau = main["kendall"]["estimate"]
    ceiling = target_ceiling["kendall"]["estimate"] if target_ceiling else None
    closeness = tau / ceiling if tau is not None and ceiling is not None and ceiling > 0 else None
    return {
        "candidates": len(rows),
        "agreement": main,
        "target_ceiling": target_ceiling,
        "surrogate_ceiling": surrogate_ceiling,
        "closeness": closeness,
        "verdict": verdict(main, target_ceiling),
    }


def verdict(agreement: dict, target_ceiling: dict | None) -> dict:
    """The verdict on one agreement: ``kind`` (carries, weak, does_not_predict, undefined) and
    the line a user reads.

    Rules: tau's interval reaching 0 or below: the surrogate does not predict the target; above
    0 and tau >= CARRY_FRACTION x the target ceiling's tau (>= CARRY_TAU_WITHOUT_CEILING when
    that ceiling is missing or not positive): the ranking carries; otherwise weak agreement.
    """
    k = agreement["kendall"]
    tau, low, high = k["estimate"], k["low"], k["high"]
    ceiling = target_ceiling["kendall"]["estimate"] if target_ceiling else None
    if tau is None or low is None or high is None:
        why = agreement["note"] or "no bootstrap resample defines the interval"
        return {"kind": "undefined", "text": f"undefined ({why})"}
    shown = f"tau {tau:.2f} [{low:.2f}, {high:.2f}], " + (
        "no target ceiling" if ceiling is None else f"target ceiling {ceiling:.2f}"
    )
    if low <= 0:
        reverse = ", it tends to rank it in reverse" if high < 0 else ""
        text = f"the surrogate does not predict this target{reverse}: use a closer profile"
        return {"kind": "does_not_predict", "text": f"{text} ({shown})"}
    if ceiling is not None and ceiling > 0:
        carries = tau >= CARRY_FRACTION * ceiling
    else:
        carries = tau >= CARRY_TAU_WITHOUT_CEILING
    if carries:
        return {"kind": "carries", "text": f"ranking carries ({shown})"}
    return {
        "kind": "weak",
        "text": f"weak agreement: the ranking carries only in part ({shown})",
    }


def analyse(facts: dict) -> dict:
    """Derive every number of the fidelity report from ``facts``.

    Args:
        facts: the dict of :func:`nlfs.experiments.fidelity.collect` (see its summary schema).

    Returns:
        A JSON-able dict: ``candidates`` and ``anchors`` (their scores), ``all`` and ``top``
        (correlations, ceilings, closeness and verdict over every candidate and over the
        surrogate's top ones), ``overlap`` (k = 1, 3, 5), ``regret``, ``verdict`` (the line
        over every candidate, as the report and the command print it) and the constants used.
    """
    scored = [_scores(c) for c in facts["candidates"]]
    top = top_candidates(scored, int(facts.get("top", 10)))
    for i in top:
        scored[i]["in_top"] = True
    target_seeds = len(facts.get("target_seeds", []))
    whole_seed, best_seed = np.random.SeedSequence(BOOTSTRAP_SEED).spawn(2)
    whole = _correlations(scored, target_seeds, whole_seed)
    surrogate = [r["surrogate"] for r in scored]
    target = [r["target_mean"] for r in scored]
    reference = _finite(facts.get("cross_entropy", {}).get("target"))
    loss = asdict(regret(surrogate, target, reference))
    loss["pick_label"] = None if loss["pick"] is None else scored[loss["pick"]]["label"]
    loss["best_label"] = None if loss["best"] is None else scored[loss["best"]]["label"]
    return {
        "alpha": ALPHA,
        "resamples": RESAMPLES,
        "thresholds": {
            "carry_fraction": CARRY_FRACTION,
            "carry_tau_without_ceiling": CARRY_TAU_WITHOUT_CEILING,
        },
        "candidates": scored,
        "anchors": [_scores(a) for a in facts.get("anchors", [])],
        "all": whole,
        "top": _correlations([scored[i] for i in top], target_seeds, best_seed),
        "overlap": [asdict(top_k_overlap(surrogate, target, k)) for k in OVERLAP_KS],
        "regret": loss,
        "verdict": whole["verdict"]["text"],
    }


def write_fidelity_report(
    facts: dict, out_dir: Path, formats: Iterable[str] = FIDELITY_FORMATS
) -> dict:
    """Analyse the facts of one fidelity run and write the report (see
    :func:`nlfs.report.summary.write_summary_report` for the formats, the return value and the
    errors)."""
    from nlfs.report.fidelity_plots import write_fidelity_figures

    analysis = analyse(facts)
    return write_summary_report(
        facts,
        analysis,
        out_dir,
        formats,
        figures=lambda out: write_fidelity_figures(facts, analysis, out),
        layout=lambda figures, html: layout(facts, analysis, figures, code_spans=not html),
    )


def layout(
    facts: dict, analysis: dict, figures: Sequence[Figure], *, code_spans: bool = True
) -> list[Block]:
    """The report as blocks: verdict first, then the setup, the correlations, the decision
    quality and the candidates; ``code_spans`` sets expressions in backticks (Markdown)."""
    size = analysis["top"]["candidates"]
    return [
        Heading(TITLE, 1),
        Paragraph(f"Verdict: {analysis['all']['verdict']['text']}."),
        Paragraph(f"Among the surrogate's top {size}: {analysis['top']['verdict']['text']}."),
        Paragraph(setup_text(facts, analysis)),
        Heading("Rank agreement"),
        correlation_table(facts, analysis),
        Paragraph(correlation_legend(facts)),
        *figures,
        Heading("Decision quality"),
        decision_table(analysis),
        Paragraph(
            "Top-k overlap: how many of the surrogate's k best candidates are among the "
            "target's k best (chance: k / n, the expected fraction for an unrelated ranking). "
            "Regret: the target accuracy given up by keeping the surrogate's pick instead of "
            "the target's best among these candidates, or instead of cross-entropy. Only "
            "candidates with both scores count."
        ),
        Heading("Candidates"),
        candidates_table(analysis, code_spans=code_spans),
        Paragraph(
            "Best surrogate fitness first. Surrogate: the in-search fitness; re-run: the "
            "fitness under the second surrogate seed; target: the mean accuracy over the target "
            "seeds; seeds: target runs that finished of those asked. Role top: among the "
            f"surrogate's top {size}, used for the restricted correlations; anchors "
            "(cross-entropy and the baselines) are shown for reference and excluded from every "
            "correlation."
        ),
    ]


def setup_text(facts: dict, analysis: dict) -> str:
    seeds = facts.get("target_seeds", [])
    first, second = (list(facts.get("surrogate_seeds", [])) + [None, None])[:2]
    anchors = ", ".join(a["label"] for a in analysis["anchors"]) or "none"
    settings = ", ".join(facts.get("target_settings", []))
    return (
        f"{facts['name']}: the candidates of search study {facts['search_study']} (surrogate "
        f"profile {facts['surrogate_profile']}) trained on the target {facts['target']}"
        + (f" ({settings})" if settings else "")
        + f", on {facts['machine']}. {len(analysis['candidates'])} candidates were picked with "
        f"seed {facts['seed']}, stratified by quantile of surrogate fitness over the study, the "
        f"top ones always included. Surrogate score: the in-search fitness (evaluation seed "
        f"{first}); every candidate was evaluated once more on the surrogate with seed "
        f"{second} for the surrogate's noise ceiling. Target score: the mean accuracy over "
        f"{len(seeds)} training seed(s) ({', '.join(str(s) for s in seeds)}). Anchors, shown "
        f"but excluded from the correlations: {anchors}."
    )


def _ci(correlation: dict) -> str:
    if correlation["low"] is None:
        return DASH
    return f"[{num(correlation['low'], 2)}, {num(correlation['high'], 2)}]"


def _row(subset: str, pair: str, agreement: dict | None, closeness: str) -> tuple[Entry, ...]:
    if agreement is None:
        cells = [DASH] * 5
    else:
        tau, rho = agreement["kendall"], agreement["spearman"]
        cells = [str(agreement["n"]), num(tau["estimate"], 2), _ci(tau)]
        cells += [num(rho["estimate"], 2), _ci(rho)]
    return tuple(Entry(t) for t in (subset, pair, *cells, closeness))


def correlation_table(facts: dict, analysis: dict) -> Table:
    seeds = facts.get("target_seeds", [])
    target_pair = (
        f"target seed {seeds[0]} vs seed {seeds[1]} (ceiling)"
        if len(seeds) >= 2
        else "target seed vs seed (ceiling)"
    )
    first, second = (list(facts.get("surrogate_seeds", [])) + [None, None])[:2]
    rows = []
    for key, subset in (
        ("all", f"all {analysis['all']['candidates']}"),
        ("top", f"surrogate's top {analysis['top']['candidates']}"),
    ):
        block = analysis[key]
        rows += [
            _row(
                subset, "surrogate vs target mean", block["agreement"], num(block["closeness"], 2)
            ),
            _row(subset, target_pair, block["target_ceiling"], ""),
            _row(
                subset,
                f"surrogate seed {first} vs seed {second} (ceiling)",
                block["surrogate_ceiling"],
                "",
            ),
        ]
    return Table(CORRELATION_COLUMNS, tuple(rows))


def correlation_legend(facts: dict) -> str:
    return (
        f"Kendall's tau-b and Spearman's rho over the candidates with both scores (n), with "
        f"percentile bootstrap {1 - ALPHA:.0%} intervals from {RESAMPLES} resamples of the "
        "candidates. Ceilings: the same correlation between two target seeds, and between the "
        "surrogate's two evaluation seeds; a score cannot be predicted better than its own "
        "seeds agree. The surrogate is compared with the target's mean over seeds, which is "
        "less noisy than one seed, so it can exceed the one-seed ceiling; τ / ceiling τ says "
        "how close the surrogate comes to the target's own agreement. Verdict thresholds: "
        f"the ranking carries when tau's interval lies above 0 and tau is at least "
        f"{CARRY_FRACTION:g} times the target ceiling's tau (at least "
        f"{CARRY_TAU_WITHOUT_CEILING:g} when there is no positive ceiling"
        + (", as here with one target seed" if len(facts.get("target_seeds", [])) < 2 else "")
        + "); the surrogate does not predict the target when the interval reaches 0; weak "
        f"agreement otherwise. {DASH}: undefined (fewer than 3 candidates with both scores, a "
        "constant score, or a single target seed)."
    )


def decision_table(analysis: dict) -> Table:
    rows = []
    for o in analysis["overlap"]:
        shown = DASH if o["shared"] is None else f"{o['shared']}/{o['k']} ({num(o['fraction'], 2)})"
        note = DASH if o["chance"] is None else f"chance {num(o['chance'], 2)}"
        rows.append((f"Top-{o['k']} overlap", shown, note))
    r = analysis["regret"]
    if r["reference_regret"] is None:
        side = "no cross-entropy target accuracy"
    elif r["reference_regret"] > 0:
        side = "positive: the pick falls short of cross-entropy"
    else:
        side = "zero or negative: the pick matches or beats cross-entropy"
    rows += [
        ("Target accuracy of the surrogate's pick", num(r["pick_target"]), r["pick_label"] or DASH),
        ("Best target accuracy among them", num(r["best_target"]), r["best_label"] or DASH),
        ("Regret against the best", num(r["regret"]), "0: the pick is the target's best"),
        ("Cross-entropy's target accuracy", num(r["reference"]), "anchor"),
        ("Regret against cross-entropy", num(r["reference_regret"]), side),
    ]
    return Table(
        ("Measure", "Value", "Reference"), tuple(tuple(Entry(t) for t in row) for row in rows)
    )


def _expression(expression: str | None, code_spans: bool) -> str:
    if expression is None:
        return DASH
    if not code_spans or any(c in expression for c in "`*|"):
        return expression  # the renderer escapes * and |; a code span would show the escapes
    return f"`{expression}`"


def candidates_table(analysis: dict, *, code_spans: bool) -> Table:
    order = top_candidates(analysis["candidates"], len(analysis["candidates"]))
    rows = [(str(rank), analysis["candidates"][i]) for rank, i in enumerate(order, start=1)]
    rows += [(DASH, a) for a in analysis["anchors"]]
    return Table(
        CANDIDATE_COLUMNS,
        tuple(
            tuple(
                Entry(t)
                for t in (
                    rank,
                    c["label"],
                    _expression(c["expression"], code_spans),
                    num(c["surrogate"]),
                    num(c["surrogate_repeat"]),
                    num(c["target_mean"]),
                    f"{c['target_n']}/{len(c['target_seeds'])}",
                    "anchor" if c["anchor"] else ("top" if c["in_top"] else ""),
                )
            )
            for rank, c in rows
        ),
    )


__all__ = ["FIDELITY_FORMATS", "analyse", "layout", "verdict", "write_fidelity_report"]
