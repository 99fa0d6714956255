"""PNG figures of a fidelity run: surrogate fitness against target accuracy, and each score's two
seeds against each other (the noise the ceilings measure).

Built on :class:`matplotlib.figure.Figure` directly (as :mod:`nlfs.report.plots` is), so no
pyplot state or interactive backend is touched.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure

from nlfs.report.document import Figure
from nlfs.report.plots import DPI, FIGURE_DIR


def write_fidelity_figures(facts: dict, analysis: dict, out_dir: Path) -> list[Figure]:
    """Write the fidelity run's figures under ``out_dir/figures`` and describe them."""
    folder = Path(out_dir) / FIGURE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []

    def save(fig: MplFigure, name: str, caption: str) -> None:
        fig.savefig(folder / name, dpi=DPI, bbox_inches="tight")
        figures.append(Figure(f"{FIGURE_DIR}/{name}", caption))

    first = _at(facts.get("surrogate_seeds", []), 0)
    size = analysis["top"]["candidates"]
    save(
        scatter_plot(facts, analysis),
        "surrogate_vs_target.png",
        f"Target accuracy (mean over seeds; bars: lowest to highest seed) against surrogate "
        f"fitness (evaluation seed {first}). Filled: the surrogate's top {size}; hollow: the "
        "other candidates; diamonds: anchors (not in the correlations); dashed: cross-entropy.",
    )
    panels = noise_panels(facts, analysis)
    if panels:
        save(
            noise_plot(panels),
            "seed_noise.png",
            "Each score under two seeds, one point per candidate (the noise the ceilings "
            "measure); dotted: equal scores.",
        )
    return figures


def _at(values: list, index: int):
    return values[index] if index < len(values) else None


def scatter_plot(facts: dict, analysis: dict) -> MplFigure:
    """Surrogate fitness against target accuracy: candidates, the top ones filled, anchors
    labelled, cross-entropy as dashed lines."""
    fig = MplFigure(figsize=(6.4, 4.6))
    ax = fig.add_subplot()
    for in_top, style in (
        (False, {"facecolors": "none", "edgecolors": "tab:blue", "label": "candidate"}),
        (True, {"color": "tab:blue", "label": f"top {analysis['top']['candidates']}"}),
    ):
        points = [
            c
            for c in analysis["candidates"]
            if c["in_top"] is in_top and c["surrogate"] is not None and c["target_mean"] is not None
        ]
        _draw(ax, points, marker="o", **style)
    anchors = [
        a
        for a in analysis["anchors"]
        if a["surrogate"] is not None and a["target_mean"] is not None
    ]
    _draw(ax, anchors, marker="D", color="tab:red", label="anchor")
    for a in anchors:
        ax.annotate(
            a["label"],
            (a["surrogate"], a["target_mean"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
            color="tab:red",
        )
    ce = facts.get("cross_entropy", {})
    if ce.get("surrogate") is not None:
        ax.axvline(
            ce["surrogate"], color="black", linestyle="--", linewidth=0.8, label="cross-entropy"
        )
    if ce.get("target") is not None:
        ax.axhline(ce["target"], color="black", linestyle="--", linewidth=0.8)
    tau = analysis["all"]["agreement"]["kendall"]["estimate"]
    title = "surrogate vs target" + ("" if tau is None else f" (Kendall tau {tau:.2f})")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("surrogate fitness")
    ax.set_ylabel("target accuracy")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing to plot before the first target run
        ax.legend(fontsize=8)
    return fig


def _draw(ax: Axes, points: list[dict], *, marker: str, **style) -> None:
    """Scatter ``points`` at (surrogate, target mean) with a bar over their target seeds."""
    if not points:
        return
    x = [p["surrogate"] for p in points]
    ax.scatter(x, [p["target_mean"] for p in points], marker=marker, s=28, zorder=3, **style)
    spread = [
        (p["surrogate"], min(seeds), max(seeds))
        for p in points
        if len(seeds := [v for v in p["target_seeds"] if v is not None]) >= 2
    ]
    if spread:
        xs, lows, highs = zip(*spread, strict=True)
        ax.vlines(xs, lows, highs, color="grey", alpha=0.5, linewidth=1, zorder=2)


def noise_panels(facts: dict, analysis: dict) -> list[tuple[str, str, list, list]]:
    """(x label, y label, x values, y values) for each score with two seeds and defined pairs."""
    seeds, target_seeds = facts.get("surrogate_seeds", []), facts.get("target_seeds", [])
    rows = analysis["candidates"]
    options = [
        (
            f"surrogate fitness, seed {_at(seeds, 0)}",
            f"surrogate fitness, seed {_at(seeds, 1)}",
            [r["surrogate"] for r in rows],
            [r["surrogate_repeat"] for r in rows],
        )
    ]
    if len(target_seeds) >= 2:
        options.append(
            (
                f"target accuracy, seed {target_seeds[0]}",
                f"target accuracy, seed {target_seeds[1]}",
                [_at(r["target_seeds"], 0) for r in rows],
                [_at(r["target_seeds"], 1) for r in rows],
            )
        )
    panels = []
    for x_label, y_label, xs, ys in options:
        pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None]
        if pairs:
            panels.append((x_label, y_label, *map(list, zip(*pairs, strict=True))))
    return panels


def noise_plot(panels: list[tuple[str, str, list, list]]) -> MplFigure:
    """One panel per score: its first seed against its second, with the diagonal."""
    fig = MplFigure(figsize=(4.4 * len(panels), 4.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (x_label, y_label, xs, ys) in zip(axes, panels, strict=True):
        ax.scatter(xs, ys, s=20, color="tab:blue", zorder=3)
        low, high = min(*xs, *ys), max(*xs, *ys)
        ax.plot([low, high], [low, high], color="black", linestyle=":", linewidth=0.8)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.grid(alpha=0.3)
    return fig
