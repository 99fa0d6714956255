"""The report laid out as format-neutral blocks, so Markdown, HTML and LaTeX share one layout.

Each renderer only knows how to write a heading, a paragraph, a list, a table and a figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nlfs.report.build import STAR_LEVELS, Report


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Entry:
    text: str
    bold: bool = False


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[Entry, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG written next to the report; ``path`` is relative to the output folder."""

    path: str
    caption: str


@dataclass(frozen=True)
class Formula:
    """A found loss: a caption naming it, its expression and sign, and its LaTeX formula
    (:func:`nlfs.losses.export.latex_formula`). Markdown shows the expression; HTML renders the
    formula as an image (matplotlib's mathtext, so the file stays self-contained); LaTeX typesets
    it."""

    caption: str
    expression: str
    sign: float
    latex: str

    @property
    def text(self) -> str:
        """The loss as plain text: ``-1 * sum_c EXPRESSION``."""
        return f"{self.sign:+.0f} * sum_c {self.expression}"


Block = Heading | Paragraph | Bullets | Table | Figure | Formula

TEST_NAMES = {
    "t": "paired t-test (Welch's t where unpaired)",
    "rank": "Wilcoxon signed-rank test (Mann-Whitney U where unpaired)",
}


def num(value: float | None, digits: int = 4) -> str:
    """A number for a table; NaN and None print as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def pval(p: float | None) -> str:
    """A p-value: three significant digits, small ones in scientific notation; an undefined test
    (None or NaN) prints as an en dash."""
    if p is None or math.isnan(p):
        return "–"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def legend(report: Report) -> str:
    a = report.analysis
    levels = ", ".join(f"{'*' * (3 - i)} p < {a.alpha / d:g}" for i, d in enumerate(STAR_LEVELS))
    return (
        f"Mean ± standard deviation of {a.metric} over seeds; bold: best mean in the setting. "
        f"Stars mark a difference from {a.baseline} by the {TEST_NAMES[a.significance_test]} "
        f"after Holm's correction over all comparisons ({levels})."
    )


def layout(report: Report, figures: Sequence[Figure]) -> list[Block]:
    """Lay out ``report`` with the already written ``figures`` (see :mod:`nlfs.report.plots`)."""
    a = report.analysis
    blocks: list[Block] = [
        Heading(f"NLFS report: {a.metric}", 1),
        Paragraph(
            f"Source: {report.source}. Baseline: {a.baseline}. Losses: {len(a.losses)}; "
            f"settings (architecture / dataset / augmentation): {len(a.settings)}; "
            f"alpha = {a.alpha:g}; "
            f"{'higher' if a.higher_is_better else 'lower'} is better."
        ),
        Heading("Results per setting"),
        _means_table(report),
        Paragraph(legend(report)),
        Heading(f"Comparisons with {a.baseline}"),
        _comparisons_table(report),
        Paragraph(
            "Δ = mean difference (loss − baseline) with its percentile bootstrap 95% "
            "interval; d: Cohen's d (d_z of the per-seed differences when paired, pooled "
            "standard deviation when unpaired); δ: Cliff's delta. p-values are raw, "
            "Holm-corrected and Benjamini-Hochberg-corrected, over all comparisons; – marks a "
            "test the data leave undefined (fewer than two runs per loss and setting, or no "
            "spread in the differences)."
        ),
        Heading("Wins, ties and losses"),
        _wins_table(report),
        Paragraph(
            "Counted by mean per setting; significant: with the corrected p-value below "
            "alpha. Sign test: two-sided binomial test of wins against losses, ties "
            "dropped."
        ),
    ]
    blocks += _across_blocks(report)
    blocks += _friedman_blocks(report, figures)
    boxes = [f for f in figures if f.path.startswith("figures/box_")]
    if boxes:
        blocks += [Heading("Distributions per setting"), *boxes]
    if report.funnel is not None:
        blocks += _funnel_blocks(report, figures)
    if report.notes:
        blocks += [Heading("Notes"), Bullets(tuple(report.notes))]
    return blocks


def _means_table(report: Report) -> Table:
    a = report.analysis
    rows = []
    for setting in a.settings:
        row = [Entry(setting.label)]
        for loss in a.losses:
            s = report.summary(setting, loss)
            if s is None:
                row.append(Entry("–"))
                continue
            # One run has no spread: show the value alone rather than a made-up ± 0.
            spread = f" ± {num(s.std)}" if s.n > 1 else ""
            text = f"{num(s.mean)}{spread} (n={s.n})"
            row.append(Entry(f"{text} {s.stars}".rstrip(), bold=s.best))
        rows.append(tuple(row))
    return Table(("Setting", *a.losses), tuple(rows))


def _comparisons_table(report: Report) -> Table:
    rows = []
    for c in report.analysis.comparisons:
        rows.append(
            tuple(
                Entry(t)
                for t in (
                    c.setting.label,
                    c.loss,
                    "paired" if c.paired else "unpaired",
                    f"{c.n_loss}/{c.n_baseline}",
                    num(c.mean_difference),
                    f"[{num(c.ci.low)}, {num(c.ci.high)}]",
                    num(c.cohens_d, 2),
                    num(c.cliffs_delta, 2),
                    f"{pval(c.rank_test.p_value)} / {pval(c.rank_p_holm)} / {pval(c.rank_p_bh)}",
                    f"{pval(c.t_test.p_value)} / {pval(c.t_p_holm)} / {pval(c.t_p_bh)}",
                )
            )
        )
    return Table(
        (
            "Setting",
            "Loss",
            "Pairing",
            "n",
            "Δ",
            "95% CI",
            "d",
            "δ",
            "rank test p (raw / Holm / BH)",
            "t-test p (raw / Holm / BH)",
        ),
        tuple(rows),
    )


def _wins_table(report: Report) -> Table:
    rows = tuple(
        tuple(
            Entry(t)
            for t in (
                w.loss,
                str(w.wins),
                str(w.ties),
                str(w.losses),
                str(w.significant_wins),
                str(w.significant_losses),
                pval(w.sign_test_p),
            )
        )
        for w in report.analysis.wins
    )
    return Table(
        ("Loss", "Wins", "Ties", "Losses", "Significant wins", "Significant losses", "Sign test p"),
        rows,
    )


def _undefined_sentence(report: Report) -> str:
    a = report.analysis
    undefined = a.undefined_comparisons
    once = all(min(c.n_loss, c.n_baseline) < 2 for c in a.comparisons)
    if a.comparisons and undefined == len(a.comparisons) and once:
        return (
            "Every per-setting test above is undefined (–): each loss ran once per setting, so "
            "there is no spread over seeds to test. The tests across settings below, one value "
            "per setting as Demsar (2006) recommends, are the ones to read."
        )
    counted = f" ({undefined} of {len(a.comparisons)} here)" if undefined else ""
    return (
        "Per-setting tests are undefined (–) where a loss ran fewer than twice in a setting, "
        f"or its differences from the baseline have no spread{counted}; the tests across "
        "settings below, one value per setting as Demsar (2006) recommends, are then the ones "
        "to read."
    )


def _across_blocks(report: Report) -> list[Block]:
    a = report.analysis
    blocks: list[Block] = [Heading("Across settings"), Paragraph(_undefined_sentence(report))]
    if not a.across and a.vs_control is None:
        return [*blocks, Paragraph("Not computed: see the notes.")]
    control = {c.name: c for c in a.vs_control.comparisons} if a.vs_control else {}
    wilcoxon = {w.loss: w for w in a.across}
    rows = []
    for loss in a.losses[1:]:
        w, c = wilcoxon.get(loss), control.get(loss)
        rows.append(
            tuple(
                Entry(t)
                for t in (
                    loss,
                    str(w.n_settings) if w else "–",
                    num(w.mean_difference) if w else "–",
                    num(w.wilcoxon.statistic, 1) if w else "–",
                    f"{pval(w.wilcoxon.p_value)} / {pval(w.p_holm)}" if w else "–",
                    num(c.rank_difference, 3) if c else "–",
                    num(c.z, 3) if c else "–",
                    f"{pval(c.p_value)} / {pval(c.p_holm)}" if c else "–",
                )
            )
        )
    blocks.append(
        Table(
            (
                "Loss",
                "Settings",
                "Mean Δ",
                "Wilcoxon W",
                "Wilcoxon p (raw / Holm)",
                f"Rank − rank of {a.baseline}",
                "z",
                "z p (raw / Holm)",
            ),
            tuple(rows),
        )
    )
    blocks.append(
        Paragraph(
            f"Each setting contributes one value per loss, its mean over seeds. Wilcoxon: "
            f"signed-rank test of the per-setting differences (loss − {a.baseline}) over the "
            "settings where both ran; Mean Δ is their mean; p-values Holm-corrected over the "
            "losses. z: the loss's average Friedman rank minus the baseline's (rank 1 is best, "
            "so a negative difference is better), divided by sqrt(k (k + 1) / (6 N)); two-sided "
            "normal p-values, Holm's step-down over the k − 1 comparisons with the baseline "
            "(Demsar 2006, section 3.2.2), over the settings where every loss ran. Nemenyi's "
            "all-pairs critical difference follows."
        )
    )
    return blocks


def _friedman_blocks(report: Report, figures: Sequence[Figure]) -> list[Block]:
    a = report.analysis
    blocks: list[Block] = [Heading("Ranks across settings (Friedman, Nemenyi)")]
    if a.friedman is None or a.nemenyi is None:
        return [*blocks, Paragraph("Not computed: see the notes.")]
    f, n = a.friedman, a.nemenyi
    blocks.append(
        Paragraph(
            f"Friedman χ² = {num(f.statistic, 3)} (k = {len(f.names)} losses, N = {f.n_blocks} "
            f"settings), p = {pval(f.p_value)}; Iman-Davenport F = {num(f.iman_davenport, 3)}, "
            f"p = {pval(f.iman_davenport_p)}. Nemenyi critical difference at alpha {n.alpha:g}: "
            f"CD = {num(n.critical_difference, 3)} (q = {num(n.q_alpha, 3)}); average ranks that "
            "differ by more than CD differ significantly (rank 1 is best)."
        )
    )
    order = sorted(range(len(f.names)), key=lambda i: f.average_ranks[i])
    blocks.append(
        Table(
            ("Loss", "Average rank"),
            tuple((Entry(f.names[i]), Entry(num(f.average_ranks[i], 3))) for i in order),
        )
    )
    blocks.append(
        Table(
            ("Loss A", "Loss B", "Rank difference", "Nemenyi p", "Significant"),
            tuple(
                tuple(Entry(t) for t in (x, y, num(d, 3), pval(p), "yes" if sig else "no"))
                for x, y, d, p, sig in n.pairs
            ),
        )
    )
    blocks += [fig for fig in figures if fig.path == "figures/critical_difference.png"]
    return blocks


def _funnel_blocks(report: Report, figures: Sequence[Figure]) -> list[Block]:
    from nlfs.experiments.cuts import CUT_RULE, verdict
    from nlfs.experiments.funnel import tau_text

    funnel = report.funnel
    assert funnel is not None  # checked by the caller
    blocks: list[Block] = [
        Heading(f"Elimination funnel ({funnel.study})"),
        Table(
            ("Stage", "Name", "Ran", "Failed", "Kept", "Seeds", "Noise", "Margin", "Cut", "τ"),
            tuple(
                tuple(
                    Entry(t)
                    for t in (
                        str(s.stage + 1),
                        s.name,
                        str(s.ran),
                        str(s.failed),
                        "undecided" if s.kept is None else str(s.kept),
                        str(s.seeds),
                        num(s.noise),
                        num(s.margin),
                        verdict(s.clear),
                        tau_text(s) if s.stage else "–",
                    )
                )
                for s in funnel.stages
            ),
        ),
        Paragraph(
            "Each stage trains every candidate with the same seeds and keeps the best by the "
            f"mean fitness over them; a candidate with a failed run drops out. {CUT_RULE} – where "
            "a stage has one seed, or dropped no candidate that scored. "
            "τ: Kendall's tau-b between the previous stage's means and this stage's over the "
            "candidates both scored, with a percentile bootstrap 95% interval over candidates "
            "(– with fewer than 3)."
        ),
    ]
    blocks += [fig for fig in figures if fig.path == "figures/funnel.png"]
    if funnel.survivors:
        blocks.append(
            Table(
                ("Survivor", "Mean fitness"),
                tuple((Entry(s.candidate), Entry(num(s.fitness))) for s in funnel.survivors),
                "Kept by the last decided stage",
            )
        )
    return blocks
