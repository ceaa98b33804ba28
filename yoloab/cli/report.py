"""`yoloab report`: article-style comparison tables (Markdown, CSV, LaTeX, HTML) and plots from the results store."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .options import Results


class Format(str, Enum):
    """Output formats of report."""

    md = "md"
    csv = "csv"
    latex = "latex"
    html = "html"


def report(
    results: Results = Path("results"),
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Only this dataset's table (default: every dataset + profile).")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Variant to compare against (default: each base model's baseline)."),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Table format.")] = Format.md,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="LaTeX columns, comma-separated metric keys, e.g. params,gflops_aten,map50,map50_95 "
            "(default: params,gflops,latency_ms,map50_95, which fits one column of a two-column paper).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write report.<ext> and the PNG plots into this folder instead of printing."),
    ] = None,
) -> None:
    """Comparison tables per dataset (and of profile-only records) with deltas, mean ± std over seeds, best marks.

    Without --out the table is printed (md: a Rich table on a terminal, Markdown otherwise; html embeds the plots);
    with --out, report.md/.csv/.tex/.html and the PNG plots are written there.
    """
    from ..report import FORMATS, load_report, render_report, rich_report, stability_hint, write_report
    from ..report.latex import check_columns, split_columns
    from ..results import check_out_dir

    if out is not None:
        check_out_dir(out)  # a file in the way is said before the store is read and the plots drawn
    rep = load_report(results, dataset=dataset, baseline=baseline)
    chosen = split_columns(columns)
    if chosen is not None:
        check_columns(rep, chosen)  # before any plot is drawn or file written; `--columns ''` too
    plots = []
    if out is not None or fmt is Format.html:
        from ..report.plots import report_plots

        plots = report_plots(rep)
    text = render_report(rep, fmt.value, plots, chosen)
    hint = stability_hint(rep.tables)
    if hint:  # on stderr: stdout may be the data a script reads
        Console(stderr=True).print(f"[yellow]hint:[/] {escape(hint)}", highlight=False)
    if out is None:
        console = Console()
        if fmt is Format.md and console.is_terminal:
            for table in rich_report(rep):
                console.print(table)
        else:
            sys.stdout.write(text)
        return
    files: dict[str, str | bytes] = {f"report.{FORMATS[fmt.value]}": text, **{p.filename: p.data for p in plots}}
    paths = write_report(out, files)
    Console(soft_wrap=True).print(
        f"wrote {len(paths)} files to {out}: {', '.join(p.name for p in paths)}", highlight=False
    )


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command("report")(report)
