"""PNG figures of a strategy comparison or space ablation: anytime curves, final best per seed and
the critical-difference diagram.

Built on :class:`matplotlib.figure.Figure` directly (as :mod:`nlfs.report.plots` is), so no
pyplot state or interactive backend is touched.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure as MplFigure

from nlfs.report.document import Figure
from nlfs.report.plots import DPI, FIGURE_DIR, cd_diagram
from nlfs.stats import FriedmanResult, NemenyiResult

AXIS_LABELS = {"curve_evaluations": "trained evaluations", "curve_seconds": "training wall seconds"}


def write_comparison_figures(facts: dict, analysis: dict, out_dir: Path) -> list[Figure]:
    """Write the comparison's figures under ``out_dir/figures`` and describe them."""
    folder = Path(out_dir) / FIGURE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    unit = "variant" if facts.get("axis") == "variant" else "strategy"

    def save(fig: MplFigure, name: str, caption: str) -> None:
        fig.savefig(folder / name, dpi=DPI, bbox_inches="tight")
        figures.append(Figure(f"{FIGURE_DIR}/{name}", caption))

    baseline = analysis["baseline"]["fitness"]
    for key, name in (
        ("curve_evaluations", "anytime_evaluations.png"),
        ("curve_seconds", "anytime_seconds.png"),
    ):
        save(
            anytime_plot(analysis["arms"], key, baseline),
            name,
            f"Best fitness so far against {AXIS_LABELS[key]}: median over seeds with the "
            f"interquartile band, one line per {unit}; dashed: cross-entropy's fitness.",
        )
    save(
        final_best_plot(facts, analysis),
        "final_best.png",
        f"Final best fitness per seed and {unit}: in-search"
        + (
            " and re-evaluated (mean over fresh training seeds)."
            if facts.get("reevaluate")
            else "."
        ),
    )
    result = analysis["friedman"].get(analysis["headline_metric"])
    if result is not None:
        friedman = FriedmanResult(
            tuple(result["names"]),
            tuple(result["average_ranks"]),
            result["blocks"],
            result["statistic"],
            result["p"],
            result["iman_davenport"],
            result["iman_davenport_p"],
        )
        nemenyi = NemenyiResult(
            analysis["alpha"],
            result["nemenyi_q"],
            result["critical_difference"],
            tuple(
                (p["a"], p["b"], p["rank_difference"], p["p"], p["significant"])
                for p in result["nemenyi_pairs"]
            ),
        )
        save(
            cd_diagram(friedman, nemenyi),
            "critical_difference.png",
            f"Critical-difference diagram of the average ranks over seeds (1 = best); arms "
            f"joined by a bar do not differ significantly (Nemenyi, alpha {analysis['alpha']:g}).",
        )
    return figures


def anytime_plot(arms: list[dict], key: str, baseline: float | None) -> MplFigure:
    """Median best-so-far with its interquartile band per arm, drawn as steps."""
    fig = MplFigure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    for index, arm in enumerate(arms):
        curve = arm[key]
        color = f"C{index % 10}"
        # Gaps (no seed has a value yet) stay gaps: matplotlib skips NaN.
        median = [_nan(v) for v in curve["median"]]
        ax.step(curve["x"], median, where="post", color=color, label=arm["name"])
        ax.fill_between(
            curve["x"],
            [_nan(v) for v in curve["q25"]],
            [_nan(v) for v in curve["q75"]],
            step="post",
            color=color,
            alpha=0.2,
            linewidth=0,
        )
    if baseline is not None:
        ax.axhline(baseline, color="black", linestyle="--", linewidth=1, label="cross-entropy")
    ax.set_xlabel(AXIS_LABELS[key])
    ax.set_ylabel("best fitness so far")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def final_best_plot(facts: dict, analysis: dict) -> MplFigure:
    """Box plots of the final best per seed, the seeds drawn over them; in-search and re-evaluated
    side by side when there was a re-evaluation."""
    panels = [("best_fitness", "in-search best")]
    if facts.get("reevaluate"):
        panels.append(("reevaluated_best", "re-evaluated best"))
    names = [arm["name"] for arm in facts["arms"]]
    fig = MplFigure(figsize=(max(4.0, 1.1 * len(names) + 1.5) * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (metric, title) in zip(axes, panels, strict=True):
        data = [
            [v for s in arm["studies"] if (v := s.get(metric)) is not None] for arm in facts["arms"]
        ]
        ax.boxplot(data, tick_labels=names, showmeans=True)
        for pos, values in enumerate(data, start=1):
            ax.scatter([pos] * len(values), values, s=14, color="tab:blue", alpha=0.7, zorder=3)
        baseline = analysis["baseline"][
            "fitness" if metric == "best_fitness" else "reevaluated_mean"
        ]
        if baseline is not None:
            ax.axhline(baseline, color="black", linestyle="--", linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("fitness")
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    return fig


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value
