"""Rich tables for the terminal: the report (Δ stacked under each value) and `yoloab profile` (Δ columns)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .metrics import PROFILE_COMMAND
from .table import Cell, Report, ReportTable, cells


def _text(cell: Cell) -> str:
    return cell.text + (f" ± {cell.std}" if cell.std else "") + cell.marks


def _stacked(table: ReportTable) -> Table:
    """Each Δ is a dim second line under its value (half the columns of the Markdown table); best values bold green."""
    header, body = cells(table)
    rt = Table(title=table.title, title_justify="left", caption_justify="left")
    fixed = len(header) - sum(1 + m.delta for m in table.metrics)  # variant (and seeds) before the metric columns
    for i, h in enumerate(header[:fixed]):
        rt.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for m in table.metrics:
        rt.add_column(m.title.replace(" (", "\n("), justify="right")
    for line in body:
        out = [Text(c.text) for c in line[:fixed]]
        for cell in line[fixed:]:
            if cell.delta:
                if cell.text:
                    out[-1].append("\n" + cell.text, style="dim")
                continue
            text = Text(_text(cell))
            text.stylize("bold green" if cell.best else "")  # the value only, not the Δ appended below it
            out.append(text)
        rt.add_row(*out)
    rt.caption = Text("\n".join(table.notes + [f"failed: {f}" for f in table.failures]))
    return rt


def _flat(table: ReportTable) -> Table:
    """One column per value and per Δ, as in the Markdown table; footnotes in the caption."""
    header, body = cells(table)
    rt = Table(title=table.title, title_justify="left", caption_justify="left")
    for i, h in enumerate(header):
        rt.add_column(h, justify="left" if i == 0 else "right", overflow="fold")
    for line in body:
        rt.add_row(*(Text(_text(c), style="bold green" if c.best else "") for c in line))
    if table.notes:
        rt.caption = "\n".join(table.notes)
    return rt


def rich_table(table: ReportTable) -> Table:
    """The terminal form of one table: flat for `yoloab profile`, Δs stacked under values for report tables."""
    return _flat(table) if table.kind == PROFILE_COMMAND else _stacked(table)


def rich_report(report: Report) -> list[Table]:
    """One Rich table per report table; notes and failed runs go in the caption."""
    return [rich_table(t) for t in report.tables]
