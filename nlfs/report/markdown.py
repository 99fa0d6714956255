"""Markdown rendering of a laid-out report (GitHub-flavoured tables, figures as links)."""

from __future__ import annotations

from collections.abc import Sequence

from nlfs.report.document import Block, Bullets, Figure, Formula, Heading, Paragraph, Table


def _entry(text: str, bold: bool) -> str:
    text = text.replace("|", "\\|").replace("*", "\\*")
    return f"**{text}**" if bold else text


def render(blocks: Sequence[Block]) -> str:
    """The report as Markdown; figure paths stay relative to the output folder."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text.replace("*", "\\*"))
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            lines = []
            if block.caption:
                lines.append(f"*{block.caption}*\n")
            lines.append("| " + " | ".join(block.columns) + " |")
            lines.append("|" + "|".join("---" for _ in block.columns) + "|")
            lines += [
                "| " + " | ".join(_entry(c.text, c.bold) for c in row) + " |" for row in block.rows
            ]
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            out.append(f"![{block.caption}]({block.path})\n\n*{block.caption}*")
        elif isinstance(block, Formula):
            out.append(f"{block.caption}: `{block.text}`")
    return "\n\n".join(out) + "\n"
