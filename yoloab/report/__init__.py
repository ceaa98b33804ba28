"""Tables and plots of `yoloab profile` and `yoloab report`: one table model, one renderer per format.

- `metrics`: the metric table, one entry per column (adding a column is one entry: see its docstring).
- `table`: the model: rows of values per metric, deltas against a baseline, best marks, notes; the cell grid. A
  timing is compared (Δ, best mark, Pareto front) only with timings of the same timing session, and a best mark holds
  against every row of its group, unstable ones included (docs/reports.md).
- `build`: records -> tables (`build_report`/`load_report` for the results store, `profile_table` for fresh
  profile records).
- `markdown`, `csv_format`, `latex`, `html`, `json_format`, `terminal` (Rich, fitted to the console's width): one
  renderer per format.
- `plots`: mAP against cost (Pareto front) and training curves as PNG, PDF and SVG (matplotlib, imported when drawn).
- `files`: `render_report` by format name and atomic `write_report`.
"""

from __future__ import annotations

from .build import build_report, load_report, profile_table
from .csv_format import profile_csv, report_csv
from .files import FORMATS, render_report, write_report
from .html import report_html
from .json_format import profile_json
from .latex import latex_escape, report_latex
from .markdown import profile_markdown, report_markdown
from .metrics import METRICS, Metric, Stat, mean_std, metrics_for, register_metric, unregister_metric
from .plots import Plot, Scatter, pareto_front, report_plots, scatter
from .table import Cell, Delta, Report, ReportTable, Row, cells, finish, stability_hint
from .terminal import rich_report, rich_table

__all__ = [
    "FORMATS",
    "METRICS",
    "Cell",
    "Delta",
    "Metric",
    "Plot",
    "Report",
    "ReportTable",
    "Row",
    "Scatter",
    "Stat",
    "build_report",
    "cells",
    "finish",
    "latex_escape",
    "load_report",
    "mean_std",
    "metrics_for",
    "pareto_front",
    "profile_csv",
    "profile_json",
    "profile_markdown",
    "profile_table",
    "register_metric",
    "render_report",
    "stability_hint",
    "report_csv",
    "report_html",
    "report_latex",
    "report_markdown",
    "report_plots",
    "rich_report",
    "rich_table",
    "scatter",
    "unregister_metric",
    "write_report",
]
