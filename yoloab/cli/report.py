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
            help="Value columns, comma-separated metric keys in order, e.g. params,gflops_aten,latency_p95_ms,map50_95 "
            "(default: every column except P95/P99 latency; LaTeX: params,gflops,latency_ms,map50_95, which fits "
            "one column of a two-column paper).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write report.<ext> and the plots (PNG, PDF, SVG) into this folder instead of printing."
        ),
    ] = None,
    require_seeds: Annotated[
        int | None,
        typer.Option(
            "--require-seeds",
            min=1,
            help="Refuse (exit 1, nothing written) unless every compared variant, baselines included, has at least "
            "N finished seeds; names each missing run and the `yoloab sweep` command that trains it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Comparison tables per dataset (and of profile-only records) with deltas, mean ± std over seeds, best marks.

    Without --out the table is printed (md: a Rich table on a terminal, Markdown otherwise; html embeds the plots);
    with --out, report.md/.csv/.tex/.html and the plots (PNG, vector PDF and SVG) are written there.
    """
    from ..report import FORMATS, load_report, render_report, rich_report, stability_hint, write_report
    from ..report.latex import check_columns, split_columns
    from ..results import check_out_dir

    if out is not None:
        check_out_dir(out)  # a file in the way is said before the store is read and the plots drawn
    # the columns are picked before the tables are compared: P95/P99 latency exist only where asked
    rep = load_report(results, dataset=dataset, baseline=baseline, columns=split_columns(columns))
    if require_seeds is not None:
        from ..seeds import require_seeds as check_seeds

        check_seeds(rep, require_seeds, results)  # before any plot is drawn or file written
    chosen = split_columns(columns)
    if chosen is not None:
        check_columns(rep, chosen)  # before any plot is drawn or file written; `--columns ''` too
    plots = []
    if out is not None or fmt is Format.html:
        from ..report.plots import report_plots

        plots = report_plots(rep, formats=None if out is not None else ("png",))  # a printed page embeds PNGs only
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
