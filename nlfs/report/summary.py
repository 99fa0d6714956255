"""Writing an experiment report: ``summary.json`` (facts + analysis), Markdown and HTML.

Shared by the comparison and fidelity reports, whose facts come from stored studies and whose
analysis holds every number they show, so ``summary.json`` lets any number be recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from nlfs.errors import ConfigError
from nlfs.report.document import Block, Figure

SUMMARY_FORMATS = ("md", "html", "json")


def write_summary_report(
    facts: dict,
    analysis: dict,
    out_dir: Path,
    formats: Iterable[str],
    *,
    figures: Callable[[Path], list[Figure]],
    layout: Callable[[list[Figure], bool], list[Block]],
) -> dict:
    """Write the requested formats under ``out_dir`` (created) and return the summary.

    Args:
        facts, analysis: what the summary holds (strict JSON: no NaN).
        out_dir: the output folder; figures go to ``out_dir/figures`` when md or html is asked.
        formats: any of :data:`SUMMARY_FORMATS`.
        figures: draws the figures into the folder and returns them.
        layout: the document as blocks, given the figures and whether it is for HTML.

    Raises:
        ConfigError: an unknown format, or an output folder that cannot be created.
    """
    formats = tuple(formats)
    unknown = [f for f in formats if f not in SUMMARY_FORMATS]
    if unknown:
        raise ConfigError(
            f"unknown report format {unknown[0]!r}; choose from {', '.join(SUMMARY_FORMATS)}"
        )
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create output folder {out}: {err.strerror}") from None
    summary = {**facts, "analysis": analysis}
    if "json" in formats:
        (out / "summary.json").write_text(
            json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
    if "md" in formats or "html" in formats:
        from nlfs.report import html, markdown  # renderers and matplotlib load on demand

        drawn = figures(out)
        if "md" in formats:
            (out / "report.md").write_text(markdown.render(layout(drawn, False)), "utf-8")
        if "html" in formats:
            (out / "report.html").write_text(html.render(layout(drawn, True), out), "utf-8")
    return summary
