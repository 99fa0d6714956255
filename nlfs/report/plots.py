"""PNG figures of a report: critical-difference diagram, box plots, elimination funnel.

Figures are built on :class:`matplotlib.figure.Figure` directly rather than through pyplot, so no
global figure state or interactive backend is touched (safe in workers and tests).
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.figure import Figure as MplFigure

from nlfs.experiments.cuts import verdict
from nlfs.experiments.funnel import Funnel
from nlfs.report.build import Report
from nlfs.report.document import Figure
from nlfs.stats import FriedmanResult, NemenyiResult

FIGURE_DIR = "figures"
DPI = 110


def write_figures(report: Report, out_dir: Path) -> list[Figure]:
    """Write every figure of ``report`` under ``out_dir/figures`` and describe them."""
    folder = Path(out_dir) / FIGURE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    a = report.analysis

    def save(fig: MplFigure, name: str, caption: str) -> None:
        fig.savefig(folder / name, dpi=DPI, bbox_inches="tight")
        figures.append(Figure(f"{FIGURE_DIR}/{name}", caption))

    if a.friedman is not None and a.nemenyi is not None:
        save(
            cd_diagram(a.friedman, a.nemenyi),
            "critical_difference.png",
            f"Critical-difference diagram: average ranks (1 = best); losses joined by a bar do "
            f"not differ significantly (Nemenyi, alpha {a.nemenyi.alpha:g}).",
        )
    for index, setting in enumerate(a.settings):
        groups = [
            (loss, s.values)
            for loss in a.losses
            if (s := report.summary(setting, loss)) is not None
        ]
        slug = re.sub(r"[^A-Za-z0-9]+", "_", setting.label).strip("_")[:60]
        save(
            box_plot(setting.label, groups, a.metric),
            f"box_{index:02d}_{slug}.png",
            f"{a.metric} per seed in {setting.label}.",
        )
    if report.funnel is not None:
        save(
            funnel_plot(report.funnel),
            "funnel.png",
            "Candidates run and kept per elimination stage.",
        )
    return figures


def _cliques(ranks: list[float], cd: float) -> list[tuple[int, int]]:
    """Maximal runs of rank-sorted losses whose extreme ranks differ by at most ``cd``."""
    spans = []
    for i in range(len(ranks)):
        j = i
        while j + 1 < len(ranks) and ranks[j + 1] - ranks[i] <= cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in spans):
            spans.append((i, j))
    return spans


def cd_diagram(friedman: FriedmanResult, nemenyi: NemenyiResult) -> MplFigure:
    """Demsar's critical-difference diagram: an axis of average ranks, rank 1 on the left."""
    k = len(friedman.names)
    order = sorted(range(k), key=lambda i: friedman.average_ranks[i])
    ranks = [friedman.average_ranks[i] for i in order]
    names = [friedman.names[i] for i in order]
    cd = nemenyi.critical_difference
    half = (k + 1) // 2
    height = 1.2 + 0.3 * max(half, k - half)
    fig = MplFigure(figsize=(7, height))
    ax = fig.add_axes((0.2, 0.05, 0.6, 0.85))
    ax.set_xlim(1, max(k, 2))
    ax.set_ylim(-(max(half, k - half) + 1.2), 1.6)
    ax.axis("off")
    ax.hlines(0, 1, max(k, 2), color="black", linewidth=1)
    for tick in range(1, max(k, 2) + 1):
        ax.vlines(tick, 0, 0.15, color="black", linewidth=1)
        ax.text(tick, 0.25, str(tick), ha="center", va="bottom", fontsize=9)
    ax.hlines(1.2, 1, 1 + cd, color="black", linewidth=1.5)
    ax.text(1 + cd / 2, 1.3, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    for pos, (rank, name) in enumerate(zip(ranks, names, strict=True)):
        left = pos < half
        row = pos if left else k - 1 - pos
        y = -(row + 1) * 0.8
        x_text = 1 - 0.05 * (k - 1) if left else max(k, 2) + 0.05 * (k - 1)
        ax.vlines(rank, y, 0, color="black", linewidth=0.8, clip_on=False)
        ax.hlines(
            y, min(rank, x_text), max(rank, x_text), color="black", linewidth=0.8, clip_on=False
        )
        ax.text(
            x_text,
            y,
            f"{name} ({rank:.2f})",
            ha="right" if left else "left",
            va="center",
            fontsize=9,
            clip_on=False,
        )
    for level, (i, j) in enumerate(_cliques(ranks, cd)):
        y = -0.25 - 0.18 * level
        ax.hlines(y, ranks[i] - 0.03, ranks[j] + 0.03, color="tab:red", linewidth=3, clip_on=False)
    return fig


def box_plot(title: str, groups: list[tuple[str, tuple[float, ...]]], metric: str) -> MplFigure:
    """Box plot of each loss's per-seed values in one setting, the points drawn over it."""
    fig = MplFigure(figsize=(max(4.0, 1.1 * len(groups) + 1.5), 3.6))
    ax = fig.add_subplot()
    labels = [name for name, _ in groups]
    data = [list(values) for _, values in groups]
    ax.boxplot(data, tick_labels=labels, showmeans=True)
    for pos, values in enumerate(data, start=1):
        ax.scatter([pos] * len(values), values, s=12, color="tab:blue", alpha=0.6, zorder=3)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(metric)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def funnel_plot(funnel: Funnel) -> MplFigure:
    """Bars of candidates run and kept per elimination stage; each decided cut is labelled
    clear or within noise (:mod:`nlfs.experiments.cuts`)."""
    fig = MplFigure(figsize=(max(4.0, 1.2 * len(funnel.stages) + 1.5), 3.2))
    ax = fig.add_subplot()
    xs = range(len(funnel.stages))
    ax.bar([x - 0.2 for x in xs], [s.ran for s in funnel.stages], width=0.4, label="ran")
    ax.bar([x + 0.2 for x in xs], [s.kept or 0 for s in funnel.stages], width=0.4, label="kept")
    for x, stage in zip(xs, funnel.stages, strict=True):
        if stage.clear is not None:
            ax.text(
                x + 0.2, stage.kept or 0, verdict(stage.clear), ha="center", va="bottom", fontsize=7
            )
    ax.set_xticks(list(xs), [s.name for s in funnel.stages], fontsize=8)
    ax.set_ylabel("candidates")
    ax.set_title(f"Elimination funnel: {funnel.study}", fontsize=10)
    ax.legend(fontsize=8)
    return fig
