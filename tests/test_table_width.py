"""Terminal tables fit 100 columns with no number split across lines (issue 22).

Each test renders a table as the terminal shows it (Rich, 100 columns, recorded) and checks the text: every number of
the table model (value, spread, relative Δ) appears whole on a line at least as often as the table holds it, no line
is wider than the console, and nothing is cut short with '…'.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from rich.console import Console
from test_report import _profile, make_store

from yoloab.report import load_report, profile_table, rich_table
from yoloab.report.table import cells
from yoloab.report.terminal import FittedTable, fold_name

WIDTH = 100
NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?%?")
LONG_NAMES = (
    "yolov8n",
    "yolov8n-SCDown-article",
    "yolov8n-DynamicConv-article",
    "yolov8n-AKConv-article",
    "yolov8n-GhostConv-backbone",
    "yolov8n-ContextGuidedBlock-article",
)


def _render(table) -> list[str]:
    console = Console(width=WIDTH, record=True, color_system=None)
    console.print(rich_table(table))
    return console.export_text().splitlines()


def _numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


def _expected(table) -> Counter:
    """Every number the table's cells hold, as the terminal prints it (value, spread, relative Δ), marks stripped.

    Only the columns the terminal keeps (img/s is left out at batch 1, with a note).
    """
    _, body = cells(table)
    fitted = FittedTable(table)
    out: Counter = Counter()
    for line in body:
        out.update(n for cell in line[1 : fitted.fixed] for n in _numbers(cell.text))  # seeds
        for at, has_delta in fitted.columns:
            out.update(_numbers(line[at].text) + _numbers(line[at].std or ""))
            if has_delta:
                out.update(_numbers(line[at + 1].short))
    return out


def _check(table) -> list[str]:
    lines = _render(table)
    assert max(len(line) for line in lines) <= WIDTH, "\n".join(lines)
    assert not any("…" in line for line in lines), "\n".join(lines)
    shown = Counter(n for line in lines for n in _numbers(line))
    expected = _expected(table)
    assert expected, "the table holds no number"
    missing = {n: c for n, c in expected.items() if shown[n] < c}
    assert not missing, f"numbers split or lost: {missing}\n" + "\n".join(lines)
    return lines


def _profile_records(runtimes: tuple[str, ...], cuda: bool) -> list[dict]:
    out = []
    for i, name in enumerate(LONG_NAMES):
        record = {
            **_profile("yolov8n", 138.16 - 17.3 * i),
            "variant": name,
            "module": None if i == 0 else name.split("-")[1],
            "params": 3_157_200 + 123_457 * i,
            "gflops": 8.86 + 0.37 * i,
            "gflops_aten": 8.9 + 0.41 * i,
            "latency_iqr_ms": 24.92 if i % 2 else 1.03,
            "batch": 8 if cuda else 1,
            "throughput_ips": 1234.5 - 10 * i,
            "mem_infer_mb": 812.0 + i if cuda else None,
            "mem_train_mb": 2345.0 + i if cuda else None,
        }
        for k, rt in enumerate(runtimes):
            failed = i == 3 and rt == "openvino"
            record.update(
                {
                    f"latency_ms_{rt}": None if failed else 40.08 + i + k,
                    f"latency_iqr_ms_{rt}": 23.17 if i % 2 else 0.5,
                    f"export_{rt}": "failed: unsupported operator aten::cummax" if failed else "ok",
                    f"parity_{rt}": 3e-2 if i == 2 else 1e-6,
                    f"parity_flag_{rt}": i == 2,
                }
            )
        out.append(record)
    return out


@pytest.mark.parametrize(
    ("runtimes", "cuda"),
    [((), False), (("onnxruntime", "openvino"), False), (("onnxruntime",), True), (("onnxruntime", "openvino"), True)],
    ids=["cpu-torch", "cpu-two-runtimes", "cuda-one-runtime", "cuda-two-runtimes-split"],
)
def test_profile_table_fits_100_columns(runtimes, cuda):
    table = profile_table(_profile_records(runtimes, cuda), "yoloab profile (imgsz 640)")
    lines = _check(table)
    text = " ".join(" ".join(lines).split())  # the notes wrap at spaces
    if runtimes:  # the export status, compact: ✓, or ✗ and a numbered footnote with the reason
        assert "✓" in text and "✗1" in text
        assert "parity 3.0e-02 above the tolerance" in text
    if "openvino" in runtimes:
        assert "export failed: unsupported operator aten::cummax" in text
    if not cuda:  # batch 1 everywhere: img/s is 1000 / latency, left out with a note
        assert "img/s left out" in text and "1,234.5" not in text


def test_report_tables_fit_100_columns(tmp_path):
    report = load_report(make_store(tmp_path / "results"))
    for table in report.tables:
        lines = _check(table)
        assert any("@640" in line for line in lines) or table.kind != "dataset"  # the GFLOPs columns' image size


def test_terminal_deltas_are_relative_only_and_full_elsewhere(tmp_path):
    table = profile_table(_profile_records((), False))
    text = "\n".join(_render(table))
    d = 123_457
    assert f"+{100 * d / 3_157_200:.1f}%" in text  # the terminal: the relative change only
    assert f"+{d:,} ({100 * d / 3_157_200:+.1f}%)" not in text
    from yoloab.report import profile_markdown

    assert f"+{d:,} ({100 * d / 3_157_200:+.1f}%)" in profile_markdown(table)  # Markdown keeps the full Δ


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("yolov8n", "yolov8n"),
        ("yolov8n-SCDown-article", "yolov8n-SCDown-\narticle"),
        ("yolov8n-ContextGuidedBlock-article", "yolov8n-\nContextGuidedBlock-\narticle"),
    ],
    ids=["short", "two-lines", "long-piece-whole"],
)
def test_names_fold_at_hyphens(name, folded):
    assert fold_name(name) == folded


def test_profile_with_many_columns_is_printed_in_parts_that_each_fit():
    table = profile_table(_profile_records(("onnxruntime", "openvino"), True), "t")
    text = "\n".join(_render(table))
    assert "(continued, 2/2)" in text
    assert text.count("variant") == 2  # each part repeats the variant column
    assert text.index("(continued, 2/2)") < text.index("Runtime columns:")  # the notes after the last part
