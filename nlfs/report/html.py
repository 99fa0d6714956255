"""Self-contained HTML rendering: one file, the PNG figures embedded as base64 data URIs."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from pathlib import Path

from nlfs.report.document import Block, Bullets, Figure, Formula, Heading, Paragraph, Table

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f3f3f3; }
td.best { font-weight: bold; background: #eef7ee; }
figure { margin: 1em 0; }
figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; }
"""
BEST = ' class="best"'


def render(blocks: Sequence[Block], out_dir: Path) -> str:
    """The report as one HTML document; figures are read from ``out_dir`` and embedded."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "NLFS report")
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{escape(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{escape(c)}</th>" for c in block.columns)
            rows = "".join(
                "<tr>"
                + "".join(f"<td{BEST if c.bold else ''}>{escape(c.text)}</td>" for c in row)
                + "</tr>"
                for row in block.rows
            )
            caption = f"<caption>{escape(block.caption)}</caption>" if block.caption else ""
            body.append(
                f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            )
        elif isinstance(block, Figure):
            data = base64.b64encode((Path(out_dir) / block.path).read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{escape(block.caption)}" '
                f'src="data:image/png;base64,{data}"><figcaption>'
                f"{escape(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Formula):
            body.append(_formula(block))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _formula(block: Formula) -> str:
    """The formula as an embedded SVG image (its expression as the alt text and below it)."""
    from nlfs.report.verdict_plots import formula_svg

    expression = block.text
    svg = formula_svg(block.latex)
    image = (
        ""
        if svg is None
        else f'<img class="formula" alt="{escape(expression)}" '
        f'src="data:image/svg+xml;base64,{base64.b64encode(svg).decode("ascii")}"><br>'
    )
    return (
        f"<figure>{image}<figcaption>{escape(block.caption)}: <code>{escape(expression)}</code>"
        "</figcaption></figure>"
    )
