"""Rich tables for the terminal: every value with its spread and its Δ stacked below it, narrow enough for 100 columns.

The terminal is the narrowest output, so its tables differ from Markdown in three ways (docs/reports.md):

- a cell is a stack of short lines: the value with its marks, then `± spread`, then the Δ as a relative change only
  (`-71.0%`); the full Δ (absolute, relative, interval) stays in Markdown, CSV and LaTeX;
- numeric columns never wrap (`no_wrap`): a number or its unit is never split across lines; variant names are folded
  at their hyphens instead, and headers at their spaces;
- `yoloab profile` leaves out its img/s column where every row was timed at batch 1 (it is 1000 / latency then);
- a table too wide for the console even so is printed in parts, each repeating the variant column (`FittedTable`).
"""

from __future__ import annotations

import re

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .metrics import PROFILE_COMMAND
from .table import Cell, Report, ReportTable, cells

NAME_WIDTH = 16
"""Variant names are folded after a hyphen into lines of at most this many characters, where the pieces allow."""


def fold_name(name: str, width: int = NAME_WIDTH) -> str:
    """A variant name broken after its hyphens into lines of at most `width` characters (longer pieces stay whole)."""
    lines: list[str] = []
    for piece in re.split(r"(?<=-)", name):
        if lines and len(lines[-1]) + len(piece) <= width:
            lines[-1] += piece
        else:
            lines.append(piece)
    return "\n".join(lines)


def _stack(cell: Cell, delta: Cell | None) -> Text:
    """Value (with status and marks), then '± spread', then the short Δ in dim, one line each."""
    value = Cell(cell.text, None, cell.best, cell.marks, status=cell.status).shown
    text = Text(value, style="bold green" if cell.best else "")
    if cell.std:
        text.append(f"\n± {cell.std}")
    # a '-' Δ (not comparable) says nothing the notes do not: the cell stays short
    if delta is not None and (delta.short or delta.text not in ("", "-")):
        text.append("\n" + (delta.short or delta.text), style="dim")
    return text


def _redundant(table: ReportTable) -> set[str]:
    """Columns the terminal leaves out: img/s where every row was timed at batch 1 (then it is 1000 / latency)."""
    if table.kind != PROFILE_COMMAND:
        return set()
    batch_one = all(r.get("batch") in (None, 1) for row in table.shown for r in row.runs)
    return {m.key for m in table.metrics if m.key.startswith("throughput_ips")} if batch_one else set()


def _grid(
    table: ReportTable, titles: list[str], body: list[list[Cell]], fixed: int, part: list[tuple[int, bool]]
) -> Table:
    """A Rich table of the leading columns and the metric columns in `part` (value index, has a Δ)."""
    rt = Table(title=table.title, title_justify="left", caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    rt.add_column(titles[0], justify="left", overflow="fold")
    for title in titles[1:fixed]:  # seeds (run tables), and any other column before the metrics
        rt.add_column(title, justify="right", no_wrap=True)
    for at, _ in part:
        # one word per header line: the header is never what makes a column wide
        rt.add_column(titles[at].replace(" ", "\n"), justify="right", no_wrap=True)
    for row, line in zip(table.shown, body, strict=True):
        out = [Text(fold_name(row.shown_label)), *(Text(c.text) for c in line[1:fixed])]
        out += [_stack(line[i], line[i + 1] if has_delta else None) for i, has_delta in part]
        rt.add_row(*out)
    return rt


class FittedTable:
    """A table as wide as the console allows: where its columns do not fit, it is printed in parts.

    Each part repeats the variant column and holds as many value columns as fit; the notes follow the last part.
    A number is never cut or wrapped to make a column fit (`no_wrap`).
    """

    def __init__(self, table: ReportTable) -> None:
        self.table = table
        self.titles, self.body = cells(table)
        # variant (and loss, seeds) before the metric columns
        self.fixed = len(self.titles) - sum(1 + m.delta for m in table.metrics)
        self.left_out = _redundant(table)
        self.columns: list[tuple[int, bool]] = []
        at = self.fixed
        for m in table.metrics:
            if m.key not in self.left_out:
                self.columns.append((at, m.delta))
            at += 1 + m.delta
        notes = [*table.notes, *(f"failed: {f}" for f in table.failures)]
        if self.left_out:
            notes.append(
                "img/s left out: every row was timed at batch 1, where it is 1000 / latency (--format md has it)."
            )
        self.notes = "\n".join(notes)

    def grid(self, part: list[tuple[int, bool]]) -> Table:
        """The table of the given metric columns, without notes."""
        return _grid(self.table, self.titles, self.body, self.fixed, part)

    def parts(self, console: Console, width: int) -> list[Table]:
        """The tables to print at this width: one where everything fits, else as few as fit, notes under the last."""
        parts: list[list[tuple[int, bool]]] = [[]]
        for column in self.columns:
            trial = [*parts[-1], column]
            if (
                parts[-1]
                and Measurement.get(console, console.options.update_width(10_000), self.grid(trial)).minimum > width
            ):
                parts.append([column])
            else:
                parts[-1] = trial
        tables = [self.grid(part) for part in parts]
        for i, t in enumerate(tables[1:], 2):
            t.title = f"{self.table.title} (continued, {i}/{len(tables)})"
        if self.notes and len(tables) == 1:
            tables[0].caption = Text(self.notes)
        return tables

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        tables = self.parts(console, options.max_width)
        yield from tables
        if self.notes and len(tables) > 1:  # under the last part, at the full width rather than that part's
            yield Text(self.notes)


def rich_table(table: ReportTable) -> FittedTable:
    """The terminal form of one table: each value with its spread and Δ (as %) stacked in one cell, fitted to width."""
    return FittedTable(table)


def rich_report(report: Report) -> list[FittedTable]:
    """One fitted Rich table per report table; notes and failed runs go in the caption."""
    return [rich_table(t) for t in report.tables]
