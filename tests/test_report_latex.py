"""The default LaTeX table fits one column of a two-column paper: compiled with pdflatex and measured."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import make_store
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.errors import ReportInputError
from yoloab.report import Delta, load_report, render_report

runner = CliRunner()
needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex (TeX) on this machine")


def _widths(tex: str, documentclass: str, tmp_path: Path) -> tuple[float, list[float]]:
    """The document's \\linewidth and the natural width of each table's tabular, in pt, as TeX typesets them."""
    blocks = re.findall(r"(\\scriptsize\\setlength.*?\n\\end\{tabular\})", tex, flags=re.S)
    assert blocks, "no tabular found"
    measure = "\n".join(rf"\sbox0{{{b}}}\typeout{{TABLEWIDTH=\the\wd0}}" for b in blocks)
    (tmp_path / "report.tex").write_text(tex)
    (tmp_path / "doc.tex").write_text(
        rf"""\documentclass{documentclass}{{article}}
\usepackage{{booktabs}}
\begin{{document}}
\typeout{{LINEWIDTH=\the\linewidth}}
{measure}
\input{{report.tex}}
\end{{document}}
"""
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert done.returncode == 0, log[-2000:]
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull.*", log)
    line = float(re.search(r"LINEWIDTH=([\d.]+)pt", log).group(1))
    return line, [float(w) for w in re.findall(r"TABLEWIDTH=([\d.]+)pt", log)]


def _with_intervals(report):
    """The report with a significant 95% interval on every mAP50-95 change (the widest cell the table can have)."""
    for table in report.tables:
        for row in table.rows:
            d = row.deltas.get("map50_95")
            if d is not None:
                row.deltas["map50_95"] = Delta(d.abs, d.pct, d.abs - 0.0123, d.abs + 0.0123, True)
    return report


@needs_tex
@pytest.mark.parametrize("intervals", [False, True], ids=["plain", "intervals"])
@pytest.mark.parametrize(
    ("documentclass", "linewidth"), [("[twocolumn]", 229.5), ("", 345.0)], ids=["two-column", "one-column"]
)
def test_default_latex_fits_the_column(tmp_path, documentclass, linewidth, intervals):
    report = load_report(make_store(tmp_path / "store"))
    tex = render_report(_with_intervals(report) if intervals else report, "latex")
    assert (r"{\tiny [" in tex) is intervals
    assert r"\resizebox" not in tex
    line, widths = _widths(tex, documentclass, tmp_path)
    assert line == linewidth  # article's own \linewidth: 229.5 pt per column of two, 345 pt for one
    assert len(widths) == 3 and all(w > 100 for w in widths), widths  # three tables, each measured
    assert max(widths) <= line, f"table {max(widths)} pt wide, column {line} pt"


@needs_tex
def test_the_old_wide_table_would_not_fit(tmp_path):
    # the measurement can fail: every column of the report is 2-3 times the two-column width
    columns = ["params", "gflops", "gflops_aten", "latency_ms", "map50", "map50_95"]
    tex = render_report(load_report(make_store(tmp_path / "store")), "latex", columns=columns)
    widths = re.findall(r"\\scriptsize\\setlength.*?\n\\end\{tabular\}", tex, flags=re.S)
    assert widths
    (tmp_path / "m").mkdir()
    with pytest.raises(AssertionError, match="Overfull"):
        _widths(tex, "[twocolumn]", tmp_path / "m")


def test_columns_choose_and_order_the_latex_columns(tmp_path):
    rep = load_report(make_store(tmp_path))
    tex = render_report(rep, "latex", columns=["map50_95", "map50"])
    header = next(line for line in tex.splitlines() if line.startswith("Model &"))
    assert header == r"Model & mAP$_{50:95}$ & mAP$_{50}$ \\"
    assert "Params" not in tex.split(r"\begin{table}")[1]
    # the profile table has neither mAP column: it is left out rather than printed empty
    assert "Profile (no training)" not in tex
    with pytest.raises(ReportInputError, match=r"unknown column 'mAP'.*nearest: map50"):
        render_report(rep, "latex", columns=["params", "mAP"])


def test_unknown_column_on_the_command_line_is_one_line(tmp_path):
    store = make_store(tmp_path / "store")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["report", "--results", str(store), "--format", "latex", "--columns", "params,gflop", "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "unknown column 'gflop'" in result.stderr
    assert "nearest: gflops" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_notes_are_written_for_a_reader(tmp_path):
    tex = render_report(load_report(make_store(tmp_path)), "latex")
    notes = "\n".join(line for line in tex.splitlines() if line.endswith(r"\par"))
    for jargon in ("yoloab", "record", "Runs share", "train args", "imgsz", "thop", "aten"):
        assert not re.search(rf"\b{jargon}\b", notes), jargon
    assert "median latency of one image (batch 1) at 128 px" in notes
