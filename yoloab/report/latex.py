r"""LaTeX: booktabs tables that fit one column of a two-column paper, best values in bold, notes for a reader.

By default each table has four value columns (`COMPACT`: params, GFLOPs, latency, mAP50-95) with the change against
the baseline in small type on a second line of each cell, so that it fits `\linewidth` of IEEEtran or
`\documentclass[twocolumn]{article}` (about 241-252 pt) without `\resizebox`; `columns` picks others. Settings and
versions go into LaTeX comments for the author rather than under the table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import ReportInputError, did_you_mean
from .metrics import METRICS, PROFILE_COMMAND, Metric
from .table import (
    FAILED_MARK,
    MISMATCH_MARK,
    UNSTABLE_MARK,
    Cell,
    Delta,
    Report,
    ReportTable,
    Row,
    cells,
    leading_columns,
    mismatches,
    slug,
)

COMPACT = ("params", "gflops", "latency_ms", "map50_95")
"""Columns of the default LaTeX table (metric keys)."""

_SHORT_TITLES = {
    "params": "Params (M)",
    "gflops": "GFLOPs",
    "gflops_aten": "GFLOPs$^\\ast$",
    "latency_ms": "Lat.\\ (ms)",
    "map50": "mAP$_{50}$",
    "map50_95": "mAP$_{50:95}$",
}
_READER = {
    "params": "Params: parameters in millions.",
    "gflops": "GFLOPs: one forward pass at {flops} px, as counted by Ultralytics.",
    "gflops_aten": "GFLOPs$^\\ast$: PyTorch's FLOP counter at {flops} px (it includes functional convolutions).",
    "latency_ms": "Lat.: median latency of one image (batch 1){latency}; below it, $\\pm$ the interquartile range.",
    "map50": "mAP$_{{50}}$: COCO mAP at IoU 0.5 on the validation set, best checkpoint.",
    "map50_95": "mAP$_{{50:95}}$: COCO mAP averaged over IoU 0.5:0.95 on the validation set, best checkpoint.",
}

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
    "‡": r"$^\ddagger$",
    "§": r"$^\S$",
    "¶": r"$^\P$",
}


def _marks(marks: str) -> str:
    r"""Footnote marks as one superscript: `$^\dagger$$^\S$` would open display math at the `$$`."""
    return "$^{" + "".join(_LATEX_SPECIAL[m][2:-1] for m in marks) + "}$" if marks else ""


def latex_escape(text: str) -> str:
    r"""Escape LaTeX's special characters (`_ % & # $ { } ~ ^ \`) and spell ±, Δ and † in math mode."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def split_columns(text: str | None) -> list[str] | None:
    """`--columns a,b` as a list of names, blanks left out; None when the option was not given.

    An empty result (`--columns ''`) is kept, for `check_columns` to refuse rather than fall back to the default.
    """
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def check_columns(report: Report, columns: Sequence[str]) -> None:
    """Refuse columns that no table of the report could show, naming the valid ones (the nearest first).

    Raises:
        ReportInputError: no name at all, a name given twice, or an unknown name.
    """
    valid = [
        *(k for k in METRICS if "{" not in k),
        *(m.key for t in report.tables for m in t.metrics),
        *report.optional,
    ]
    check_names(columns, valid)


def check_profile_columns(columns: Sequence[str], runtimes: Sequence[str]) -> None:
    """Refuse `yoloab profile --columns` names its table could not show, before anything is profiled.

    Args:
        columns: The names asked for.
        runtimes: The runtimes to be profiled: each gives its own latency columns (`latency_ms_onnxruntime`, ...).

    Raises:
        ReportInputError: no name at all, a name given twice, or an unknown name (with the nearest valid ones).
    """
    valid = []
    for key, metric in METRICS.items():
        if PROFILE_COMMAND not in metric.tables:
            continue
        if metric.dynamic:
            valid += [key.replace("{runtime}", rt) for rt in runtimes if rt != "torch" and "{runtime}" in key]
        else:
            valid.append(key)
    check_names(columns, valid)


def check_names(columns: Sequence[str], valid: Sequence[str]) -> None:
    """Refuse an empty `--columns`, a name given twice, or one not in `valid` (naming the nearest valid ones).

    Raises:
        ReportInputError: one line: what was wrong and the names expected.
    """
    valid = list(dict.fromkeys(valid))
    expected = "expected comma-separated names from " + ", ".join(valid)
    if not columns:
        raise ReportInputError(f"--columns names no column; {expected}")
    twice = next((name for n, name in enumerate(columns) if name in columns[:n]), None)
    if twice is not None:
        raise ReportInputError(f"--columns names '{twice}' twice; {expected}, each at most once")
    for name in columns:
        if name not in valid:
            raise ReportInputError(f"unknown column '{name}'{did_you_mean(name, valid)}; {expected}")


def _value(metric: Metric, row: Row, cell: Cell) -> str:
    text = latex_escape(cell.text)
    if cell.std and not metric.timed:  # a timing's IQR goes on the line below (`_below`): the column stays narrow
        text += rf"{{\tiny$\pm${cell.std}}}"
    if cell.best and cell.text not in ("", "-"):
        text = rf"\textbf{{{text}}}"
    return text + _marks(cell.marks)


def _delta(metric: Metric, row: Row) -> list[str]:
    """The change in small type: relative for a cost, absolute for an mAP, `*` where significant.

    Its 95% interval follows on a line of its own where one is known.
    """
    if row.is_baseline:
        return ["base"]
    delta: Delta | None = row.deltas.get(metric.key)
    if delta is None:
        return []
    if metric.higher_is_better or delta.pct is None:
        text = format(delta.abs * metric.scale, f"+.{metric.digits}f")
    else:
        text = f"{delta.pct:+.1f}%"
    lines = [latex_escape(text) + ("*" if delta.significant else "") + _marks(UNSTABLE_MARK if delta.unstable else "")]
    if delta.low is not None and delta.high is not None:
        spec = f"+.{metric.digits}f"
        lines.append(f"[{format(delta.low * metric.scale, spec)},{format(delta.high * metric.scale, spec)}]")
        if delta.seed_low is not None and delta.seed_high is not None:  # over images, then over seeds; the wider named
            lines[-1] = "img " + lines[-1] + (" (wider)" if delta.limited_by == "images" else "")
            seeds = f"[{format(delta.seed_low * metric.scale, spec)},{format(delta.seed_high * metric.scale, spec)}]"
            lines.append("seeds " + seeds + (" (wider)" if delta.limited_by == "seeds" else ""))
    return lines


def _below(metric: Metric, row: Row, cell: Cell) -> list[str]:
    """The small lines under a value: a timing's IQR, then the change against the baseline."""
    spread = [rf"$\pm${cell.std}"] if metric.timed and cell.std else []
    return spread + (_delta(metric, row) if metric.delta else [])


def _stacked(top: str, below: list[str]) -> str:
    if not below:
        return top
    small = "".join(rf"\\{{\tiny {line}}}" for line in below)
    return rf"\begin{{tabular}}[t]{{@{{}}r@{{}}}}{top}{small}\end{{tabular}}"


def _label(row: Row, width: int = 12) -> str:
    # a long variant name is the widest cell of the table: it wraps after its hyphens, lines of at most `width`
    # characters where the pieces allow
    lines: list[str] = []
    for piece in re.split(r"(?<=-)", row.shown_label):
        if lines and len(lines[-1]) + len(piece) <= width:
            lines[-1] += piece
        else:
            lines.append(piece)
    if len(lines) == 1:
        return latex_escape(row.shown_label)
    stacked = r"\\".join(map(latex_escape, lines))
    return rf"\begin{{tabular}}[t]{{@{{}}l@{{}}}}{stacked}\end{{tabular}}"


def _reader_notes(table: ReportTable, metrics: list[Metric]) -> list[str]:
    flops = {r.get("flops_imgsz") or r.get("imgsz") for row in table.shown for r in row.runs} - {None}
    sources = {(s.get("imgsz"), s.get("device_name")) for row in table.shown if (s := row.latency_source)}
    latency = f" at {next(iter(sources))[0]} px on {next(iter(sources))[1]}" if len(sources) == 1 else ""
    fill = {"flops": "/".join(map(str, sorted(flops))) or "the input size", "latency": latency}
    notes = [_READER[m.key].format(**fill) for m in metrics if m.key in _READER]
    if any(m.spread for m in metrics) and any(len(r.runs) > 1 for r in table.shown):
        notes.append("Values with $\\pm$: mean and sample standard deviation over training seeds.")
    if any(m.delta for m in metrics):
        notes.append(
            "Small type: change against the unmodified model of the same size (base); relative for costs, "
            "absolute for mAP, with its 95\\% confidence interval in brackets where known; * marks a significant "
            "change. Bold: best in its column"
            + (
                "; a latency only if no model timed with it is faster by more than both interquartile ranges."
                if any(m.timed and r.values[m.key].mean is not None for m in metrics for r in table.shown)
                else "."
            )
        )
    shown = {m.key for m in metrics}
    for row in table.shown:
        if row.flops_flag and "gflops" in shown:  # the † is drawn on that column only
            aten = abs(row.values["gflops_aten"].mean or 0.0) if "gflops_aten" in row.values else 0.0
            more = f" ({aten:.2f} GFLOPs)" if aten else ""
            notes.append(
                rf"$^\dagger$ {latex_escape(row.label)}: Ultralytics' count misses operations that PyTorch's FLOP "
                f"counter sees{more}; not eligible for bold."
            )
    timed = [m for m in metrics if m.timed]
    unstable = [row for row in table.shown if any(m.key in row.unstable for m in timed)]
    if unstable:
        limit = max(m.unstable_above or 0.0 for m in timed)
        notes.append(
            rf"$^\ddagger$ Unstable timing: its interquartile range exceeds {100 * limit:.0f}\% of the median "
            f"({latex_escape(', '.join(row.label for row in unstable))}); not eligible for bold, and a change "
            r"against it is marked $^\ddagger$ too."
        )
    for differs, rows in mismatches(table.shown).items() if timed else ():
        notes.append(
            rf"$^\S$ Latency measured at {latex_escape(differs)}, unlike the training runs "
            f"({latex_escape(', '.join(row.label for row in rows))}); compared only with latencies measured the same "
            "way."
        )
    for base, labels in table.apart.items() if timed else ():
        notes.append(
            f"No latency change for {latex_escape(', '.join(labels))}: timed in another session than "
            f"{latex_escape(base)}, under another load of the machine."
        )
    for note in table.footnotes:
        if note[:1] in ("†", UNSTABLE_MARK, MISMATCH_MARK, "Δ") or note.startswith("Runtime columns:"):
            continue  # said above for a reader, or about the terminal's ✓/✗ marks, which the LaTeX cells do not carry
        notes.append(latex_escape(re.sub(rf"^{FAILED_MARK}\d+ ", "", note)))
    if table.failures:
        notes.append(latex_escape("Failed runs, left out of the table: " + "; ".join(table.failures) + "."))
    return notes


def report_latex(report: Report, columns: Sequence[str] | None = None) -> str:
    r"""LaTeX tables for papers (needs `\usepackage{booktabs}`), one per dataset and one of profile records.

    Args:
        report: The report.
        columns: Metric keys to show, in order (default: `COMPACT`); each table shows those it has.

    Raises:
        ReportInputError: a column name no table could show.
    """
    columns = list(columns) if columns else list(COMPACT)
    check_columns(report, columns)
    out = [r"% yoloab report; needs \usepackage{booktabs}", ""]
    for table in report.tables:
        metrics = [m for key in columns for m in table.metrics if m.key == key]
        if not metrics:
            continue
        _, grid = cells(table)
        by_row = []
        for row, line in zip(table.shown, grid, strict=True):
            values = iter(c for c in line[leading_columns(table) :] if not c.delta)  # after variant, loss, seeds
            by_key = {m.key: c for m, c in zip(table.metrics, values, strict=True)}
            by_row.append(
                [
                    _label(row),
                    *(_stacked(_value(m, row, by_key[m.key]), _below(m, row, by_key[m.key])) for m in metrics),
                ]
            )
        titles = ["Model", *(_SHORT_TITLES.get(m.key, m.latex) for m in metrics)]
        out += [f"% {line}" for line in table.settings]
        out += [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(table.title)}}}",
            rf"\label{{tab:yoloab-{slug(table.name).replace('.', '-').replace('_', '-')}}}",
            r"\scriptsize\setlength{\tabcolsep}{2pt}",
            rf"\begin{{tabular}}{{l{'r' * len(metrics)}}}",
            r"\toprule",
            " & ".join(titles) + r" \\",
            r"\midrule",
        ]
        out += [" & ".join(line) + r" \\[2pt]" for line in by_row]
        out += [r"\bottomrule", r"\end{tabular}", "", r"\smallskip", r"\begin{minipage}{\linewidth}\scriptsize"]
        out += [n + r"\par" for n in _reader_notes(table, metrics)]
        out += [r"\end{minipage}", r"\end{table}", ""]
    return "\n".join(out)
