"""Report files: `render_report` picks the renderer of a format; `write_report` writes every file atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a binary file so that readers never see a partial file (temporary file in the same folder, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the plots from a web server or a colleague
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(out_dir: str | Path, files: dict[str, str | bytes]) -> list[Path]:
    """Write every rendered file (text or PNG bytes) into `out_dir`, each atomically; returns the paths."""
    paths = []
    for name, content in files.items():
        path = Path(out_dir) / name
        if isinstance(content, bytes):
            write_bytes_atomic(path, content)
        else:
            write_bytes_atomic(path, content.encode("utf-8"))
        paths.append(path)
    return paths
