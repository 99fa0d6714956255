"""The verdict's pictures: the learning curves of the found losses and the baseline, and a found
loss's formula rendered by matplotlib's mathtext (no TeX installation, no network), so the HTML
report stays one self-contained file.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot global state), as in
:mod:`nlfs.report.plots`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure as MplFigure

from nlfs.report.document import Figure
from nlfs.report.plots import DPI, FIGURE_DIR

CURVES_FILE = "learning_curves.png"
MAX_PANELS_PER_ROW = 3
FORMULA_POINTS = 13
"""Font size of a rendered formula (points)."""


def mean_curves(curves: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, tuple]]:
    """Per setting and loss: the steps every seed of it reached, and the mean, lowest and
    highest accuracy over its seeds at those steps."""
    grouped: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for curve in curves:
        grouped.setdefault(curve["setting"], {}).setdefault(curve["loss"], []).append(curve)
    out: dict[str, dict[str, tuple]] = {}
    for setting, by_loss in grouped.items():
        for loss, seeds in by_loss.items():
            steps = sorted(set.intersection(*(set(c["steps"]) for c in seeds)))
            if not steps:
                continue
            table = np.array(
                [[dict(zip(c["steps"], c["values"], strict=True))[s] for s in steps] for c in seeds]
            )
            out.setdefault(setting, {})[loss] = (
                steps,
                table.mean(axis=0),
                table.min(axis=0),
                table.max(axis=0),
                len(seeds),
            )
    return out


def write_curves(curves: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Figure]:
    """Write the learning-curve figure (one panel per setting) when curves are stored; the
    figure it wrote, or none."""
    means = mean_curves(curves)
    if not means:
        return []
    settings = sorted(means)
    columns = min(len(settings), MAX_PANELS_PER_ROW)
    rows = -(-len(settings) // columns)
    fig = MplFigure(figsize=(4.2 * columns, 3.2 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    losses = sorted({loss for by_loss in means.values() for loss in by_loss})
    colors = {loss: f"C{i % 10}" for i, loss in enumerate(losses)}  # one colour per loss
    for ax, setting in zip(axes.flat, settings, strict=False):
        for loss, (steps, mean, low, high, n) in sorted(means[setting].items()):
            ax.plot(
                steps, mean, marker="o", markersize=3, color=colors[loss], label=f"{loss} (n={n})"
            )
            if n > 1:
                ax.fill_between(steps, low, high, color=colors[loss], alpha=0.15)
        ax.set_title(setting, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(settings) :]:
        ax.set_visible(False)
    fig.tight_layout()
    folder = Path(out_dir) / FIGURE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / CURVES_FILE, dpi=DPI, bbox_inches="tight")
    return [
        Figure(
            f"{FIGURE_DIR}/{CURVES_FILE}",
            "Learning curves on the transfer settings: test accuracy against training step, "
            "mean over seeds (band: lowest to highest seed), from the intermediate values "
            "stored on the transfer jobs.",
        )
    ]


def formula_svg(latex: str) -> bytes | None:
    """``latex`` typeset by mathtext as SVG; None when mathtext cannot parse it (the report then
    shows the expression alone)."""
    fig = MplFigure(figsize=(0.01, 0.01))
    fig.text(0, 0, f"$L = {latex}$", fontsize=FORMULA_POINTS)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.05)
    except ValueError:  # mathtext's parse errors
        return None
    return buffer.getvalue()
