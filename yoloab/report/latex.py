"""LaTeX: booktabs tables for papers, best values in bold, notes under each table."""

from __future__ import annotations

from .metrics import DATASET
from .table import Cell, Report, cells, slug

_LATEX_SPECIAL = {
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
    "†": r"$^\dagger$",
}


def latex_escape(text: str) -> str:
    r"""Escape LaTeX's special characters (`_ % & # $ { } ~ ^ \`) and spell ±, Δ and † in math mode."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_cell(cell: Cell) -> str:
    text = latex_escape(cell.text) + (rf" $\pm$ {cell.std}" if cell.std else "")
    if cell.best and text:
        text = rf"\textbf{{{text}}}"
    return text + (r"$^\dagger$" if cell.dagger else "")


def report_latex(report: Report) -> str:
    r"""LaTeX tables for papers (needs `\usepackage{booktabs}`), best values in bold, notes under each table."""
    out = [r"% yoloab report; needs \usepackage{booktabs}", ""]
    for table in report.tables:
        header, body = cells(table)
        titles = [r"Model", *(["Seeds"] if table.kind == DATASET else [])]
        for m in table.metrics:
            titles += [m.latex, *([r"$\Delta$"] if m.delta else [])]
        out += [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(table.title)}}}",
            rf"\label{{tab:yoloab-{slug(table.name).replace('.', '-').replace('_', '-')}}}",
            r"\scriptsize",
            rf"\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}",
            r"\toprule",
            " & ".join(titles) + r" \\",
            r"\midrule",
        ]
        out += [" & ".join(_latex_cell(c) for c in line) + r" \\" for line in body]
        out += [r"\bottomrule", r"\end{tabular}", "", r"\smallskip", r"\begin{minipage}{\linewidth}\scriptsize"]
        notes = table.notes
        if table.failures:
            notes = [*notes, "Failed runs (not in the table, means or best marks): " + "; ".join(table.failures) + "."]
        out += [latex_escape(n) + r"\par" for n in notes]
        out += [r"\end{minipage}", r"\end{table}", ""]
    return "\n".join(out)
