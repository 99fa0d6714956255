"""LaTeX rendering: a standalone article (booktabs tables, graphicx figures beside the file)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from nlfs.report.document import Block, Bullets, Figure, Formula, Heading, Paragraph, Table

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "δ": r"$\delta$",
    "χ": r"$\chi$",
    "²": r"$^2$",
    "−": "-",
    "–": "--",
}
_PATTERN = re.compile("|".join(re.escape(k) for k in _SPECIAL))
_SECTIONS = {1: "section*", 2: "subsection*", 3: "subsubsection*"}


def tex(text: str) -> str:
    """Escape ``text`` for LaTeX (special characters and the few Unicode symbols we print)."""
    return _PATTERN.sub(lambda m: _SPECIAL[m.group(0)], text)


def render(blocks: Sequence[Block]) -> str:
    """The report as a compilable LaTeX document."""
    out = [
        r"\documentclass{article}",
        r"\usepackage[margin=2cm,landscape]{geometry}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\usepackage{caption}",
        r"\usepackage[T1]{fontenc}",
        r"\begin{document}",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"\\{_SECTIONS.get(block.level, 'paragraph*')}{{{tex(block.text)}}}")
        elif isinstance(block, Paragraph):
            out.append(tex(block.text) + "\n")
        elif isinstance(block, Bullets):
            out.append(
                "\\begin{itemize}\n"
                + "\n".join(f"\\item {tex(i)}" for i in block.items)
                + "\n\\end{itemize}"
            )
        elif isinstance(block, Table):
            rows = [
                " & ".join(f"\\textbf{{{tex(c.text)}}}" if c.bold else tex(c.text) for c in row)
                + r" \\"
                for row in block.rows
            ]
            caption = f"\\caption*{{{tex(block.caption)}}}\n" if block.caption else ""
            out.append(
                "\\begin{table}[h]\n\\centering\\scriptsize\n"
                + caption
                + f"\\begin{{tabular}}{{{'l' * len(block.columns)}}}\n\\toprule\n"
                + " & ".join(tex(c) for c in block.columns)
                + " \\\\\n\\midrule\n"
                + "\n".join(rows)
                + "\n\\bottomrule\n\\end{tabular}\n\\end{table}"
            )
        elif isinstance(block, Figure):
            out.append(
                "\\begin{figure}[h]\n\\centering\n"
                f"\\includegraphics[width=0.7\\linewidth]{{{block.path}}}\n"
                f"\\caption*{{{tex(block.caption)}}}\n\\end{{figure}}"
            )
        elif isinstance(block, Formula):
            out.append(f"{tex(block.caption)}:\n\\[ {block.latex} \\]\n")
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"
