"""Markdown: the report with headings, notes and plot links; `yoloab profile --format md` as one table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .table import Cell, Report, ReportTable, cells

if TYPE_CHECKING:
    from .plots import Plot


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _cell(cell: Cell) -> str:
    if cell.status and cell.text in ("failed", "skipped"):  # a runtime that was not measured: ✗n, the note says why
        return cell.status
    text = _escape(cell.text) + (f" ± {cell.std}" if cell.std else "")
    if cell.best and text:
        text = f"**{text}**"
    return (f"{cell.status} " if cell.status else "") + text + cell.marks


def table_lines(table: ReportTable) -> list[str]:
    """The pipe table: header, alignment row (variant left, numbers right), one line per shown row."""
    header, body = cells(table)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in line) + " |" for line in body]
    return out


def profile_markdown(table: ReportTable) -> str:
    """`yoloab profile --format md`: the table, then its footnotes."""
    lines = table_lines(table)
    if table.notes:
        lines += ["", *(_escape(n) for n in table.notes)]
    return "\n".join(lines) + "\n"


def report_markdown(report: Report, plots: Sequence[Plot] = ()) -> str:
    """The report as Markdown: a heading, the table and its notes per table, then links to the plots.

    Args:
        report: The report.
        plots: Plot files written next to the Markdown file: each PNG shown under its table, its PDF and SVG linked.
    """
    out = ["# yoloab report", ""]
    for table in report.tables:
        out += [f"## {table.title}", "", *table_lines(table), ""]
        for note in table.notes:  # one paragraph each: no trailing-space line breaks for editors to strip
            out += [_escape(note), ""]
        out.pop()
        if table.failures:
            out += ["", "Failed runs (not in the table, means or best marks):", ""]
            out += [f"- {_escape(f)}" for f in table.failures]
        images = [p for p in plots if p.table == table.name and p.format == "png"]
        if images:
            out.append("")
            for p in images:  # the PNG shown, its vector copies linked
                stem = p.filename[: -len(".png")]
                vectors = [q.filename for q in plots if q.format != "png" and q.filename.rsplit(".", 1)[0] == stem]
                links = ", ".join(f"[{v.rsplit('.', 1)[1].upper()}]({v})" for v in vectors)
                links = f" ({links})" if links else ""
                out.append(f"![{p.title}]({p.filename}){links}")
        out.append("")
    return "\n".join(out)
