"""Report files: `render_report` picks the renderer of a format; `write_report` writes the files, all or none."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..results import write_files
from .csv_format import report_csv
from .html import report_html
from .latex import report_latex
from .markdown import report_markdown
from .table import Report

if TYPE_CHECKING:
    from .plots import Plot

FORMATS = {"md": "md", "csv": "csv", "latex": "tex", "html": "html"}
"""Report formats and the extension of their file."""


def render_report(report: Report, fmt: str, plots: Sequence[Plot] = (), columns: Sequence[str] | None = None) -> str:
    """The report as text in one of `FORMATS` (md, csv, latex, html); plots are linked (md) or embedded (html).

    `columns` picks the LaTeX table's columns (default: its compact set); other formats show every column.
    """
    if fmt == "md":
        return report_markdown(report, plots)
    if fmt == "csv":
        return report_csv(report)
    if fmt == "latex":
        return report_latex(report, columns)
    if fmt == "html":
        return report_html(report, plots)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


def write_report(out_dir: str | Path, files: dict[str, str | bytes]) -> list[Path]:
    """Write every rendered file (text or PNG bytes) into `out_dir`, all or none; returns the paths.

    Raises:
        OutputPathError: `out_dir`, or a folder above it, is a file.
        StorageError: the files cannot be written (read-only, full disk); no new file is left behind.
    """
    return write_files(out_dir, files, "the report")
