"""Reports of transfer results: compute a :class:`Report` once, render it in several formats.

``build_report`` turns tidy records into a frozen report; :func:`write_report` writes the
requested formats (Markdown, self-contained HTML, LaTeX, JSON) and the PNG figures they show.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from nlfs.errors import ConfigError
from nlfs.experiments.funnel import Funnel, FunnelStage, Survivor, funnel_from_study
from nlfs.report.build import GroupSummary, Report, build_report, stars

FORMATS = ("md", "html", "tex", "json")
FILE_NAMES = {"md": "report.md", "html": "report.html", "tex": "report.tex", "json": "report.json"}


def parse_formats(text: str) -> tuple[str, ...]:
    """``"md,html"`` -> ``("md", "html")``, refusing unknown formats with the known ones listed."""
    formats = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConfigError(
            f"unknown report format {unknown[0] if unknown else text!r}; "
            f"choose from {', '.join(FORMATS)}"
        )
    return formats


def write_report(
    report: Report,
    out_dir: str | Path,
    formats: Iterable[str] = FORMATS,
    *,
    fidelity: dict | None = None,
    verdict: dict | None = None,
) -> list[Path]:
    """Write ``report`` in ``formats`` under ``out_dir`` (created); return the files written.

    Figures go to ``out_dir/figures`` when a format shows them (md, html, tex); the HTML file
    embeds them and stands alone. ``fidelity``: the facts of a fidelity run
    (:func:`nlfs.experiments.fidelity.collect`), added as a section and as ``"fidelity"`` in the
    JSON (facts and analysis). ``verdict``: the verdict of a pipeline run
    (:func:`nlfs.report.verdict.build_verdict`), shown first and kept as ``"verdict"``.
    """
    from nlfs.report import html, jsonout, latex, markdown  # renderers load on demand
    from nlfs.report.document import layout

    out = Path(out_dir)
    formats = tuple(formats)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create output folder {out}: {err.strerror}") from None
    written: list[Path] = []
    blocks = []
    if any(f in formats for f in ("md", "html", "tex")):
        from nlfs.report.plots import write_figures

        figures = write_figures(report, out)
        written += [out / f.path for f in figures]
        blocks = layout(report, figures)
        if verdict is not None:
            from nlfs.report.verdict import verdict_blocks

            opening, pictures = verdict_blocks(verdict, out)
            blocks[1:1] = opening  # right under the title, above every table
            written += pictures
    extra = _fidelity_section(fidelity, out, formats) if fidelity is not None else None
    if extra is not None:
        blocks += extra[0]
    for fmt in formats:
        path = out / FILE_NAMES[fmt]
        if fmt == "md":
            path.write_text(markdown.render(blocks), encoding="utf-8")
        elif fmt == "html":
            path.write_text(html.render(blocks, out), encoding="utf-8")
        elif fmt == "tex":
            path.write_text(latex.render(blocks), encoding="utf-8")
        elif fmt == "json":
            data = jsonout.to_json(report)
            if extra is not None:
                data["fidelity"] = extra[1]
            if verdict is not None:
                data["verdict"] = verdict
            path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _fidelity_section(facts: dict, out: Path, formats: tuple[str, ...]) -> tuple[list, dict]:
    """The fidelity report's blocks, one heading level down, and its summary."""
    import dataclasses

    from nlfs.report import fidelity as fidelity_report
    from nlfs.report.document import Heading

    analysis = fidelity_report.analyse(facts)
    blocks = []
    if any(f in formats for f in ("md", "html", "tex")):
        from nlfs.report.fidelity_plots import write_fidelity_figures

        figures = write_fidelity_figures(facts, analysis, out)
        blocks = [
            dataclasses.replace(b, level=b.level + 1) if isinstance(b, Heading) else b
            for b in fidelity_report.layout(facts, analysis, figures, code_spans=True)
        ]
    return blocks, {**facts, "analysis": analysis}


__all__ = [
    "FORMATS",
    "Funnel",
    "FunnelStage",
    "GroupSummary",
    "Report",
    "Survivor",
    "build_report",
    "funnel_from_study",
    "parse_formats",
    "stars",
    "write_report",
]
