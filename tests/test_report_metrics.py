"""The metric table: adding a column is one entry, and that entry reaches every format of profile and report.

Expected cells are computed here by hand from the records (mean over seeds, difference to the baseline), not read
back from the code under test.
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

import pytest
from rich.console import Console
from test_report import _profile, make_store

from yoloab.report import (
    Metric,
    load_report,
    metrics_for,
    profile_csv,
    profile_json,
    profile_markdown,
    profile_table,
    register_metric,
    render_report,
    rich_report,
    rich_table,
    unregister_metric,
)
from yoloab.report.metrics import ALL_TABLES, DATASET, METRICS
from yoloab.results import load_runs

ENERGY = {"yolov8n": (2.0, 3.0), "yolov8n-ADown-all": (1.5, None)}  # per variant: energy of seed 0, seed 1
ENERGY_PROFILE = {"yolov8n": 2.0, "yolov8n-ADown-all": 1.25}


def _terminal(tables) -> str:
    console = Console(file=io.StringIO(), width=400, color_system=None)
    for t in tables:
        console.print(t)
    return console.file.getvalue()


@pytest.fixture
def energy_metric():
    metric = register_metric(Metric("energy_j", "energy (J)", r"Energy (\si{J})", 2, tables=ALL_TABLES))
    yield metric
    unregister_metric("energy_j")


@pytest.fixture
def energy_store(tmp_path: Path) -> Path:
    """The report's test store, with an `energy_j` value on the shapes runs of yolov8n and yolov8n-ADown-all."""
    import json

    store = make_store(tmp_path / "results")
    for path in (store / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        values = ENERGY.get(record["variant"]) if record["dataset"] == "shapes" else None
        record["energy_j"] = values[record["seed"]] if values else None
        path.write_text(json.dumps(record))
    return store


def test_one_entry_reaches_every_report_format(energy_metric, energy_store):
    report = load_report(energy_store, dataset="shapes")
    assert [r["energy_j"] for r in load_runs(energy_store) if r["variant"] == "yolov8n"]  # the store kept the key
    base = statistics.mean(ENERGY["yolov8n"])  # 2.5: both seeds finished
    adown = 1.5  # seed 1 failed: only seed 0 counts
    d = adown - base
    value, delta = f"{adown:.2f}", f"{d:+.2f} ({100 * d / base:+.1f}%)"

    md = render_report(report, "md")
    header = next(line for line in md.splitlines() if line.startswith("| variant"))
    assert "| energy (J) | Δ |" in header
    adown_line = next(line for line in md.splitlines() if line.startswith("| yolov8n-ADown-all |"))
    assert f"| **{value}** | {delta} |" in adown_line  # lowest energy: best mark
    assert f"{base:.2f} ± {statistics.stdev(ENERGY['yolov8n']):.2f}" not in md  # no spread: spread=False

    rows = {r["label"]: r for r in csv.DictReader(io.StringIO(render_report(report, "csv")))}
    assert float(rows["yolov8n"]["energy_j"]) == pytest.approx(base)
    assert float(rows["yolov8n-ADown-all"]["d_energy_j"]) == pytest.approx(d)
    assert float(rows["yolov8n-ADown-all"]["d_energy_j_pct"]) == pytest.approx(100 * d / base)
    assert "energy_j" in rows["yolov8n-ADown-all"]["best"].split()

    assert "Energy" not in render_report(report, "latex")  # the compact LaTeX table shows COMPACT columns only
    latex = render_report(report, "latex", columns=["params", "energy_j"])
    assert r"Model & Params (M) & Energy (\si{J}) \\" in latex
    # the change goes under the value in small type, relative for a cost
    assert rf"\textbf{{{value}}}\\{{\tiny {100 * d / base:+.1f}\%}}" in latex

    page = render_report(report, "html")
    assert "<th>energy (J)</th>" in page and f"<td><strong>{value}</strong></td><td>{delta}</td>" in page

    term = _terminal(rich_report(report))  # the terminal stacks the Δ under the value, as a relative change only
    assert "energy" in term and value in term and f"{100 * d / base:+.1f}%" in term


def test_one_entry_reaches_every_profile_format(energy_metric):
    records = [_profile(v, 10.0) | {"energy_j": e} for v, e in ENERGY_PROFILE.items()]
    table = profile_table(records, "t")
    d = ENERGY_PROFILE["yolov8n-ADown-all"] - ENERGY_PROFILE["yolov8n"]
    value, delta = f"{ENERGY_PROFILE['yolov8n-ADown-all']:.2f}", f"{d:+.2f} ({100 * d / 2.0:+.1f}%)"

    md = profile_markdown(table)
    assert "| energy (J) | Δ energy (J) |" in md.splitlines()[0]
    assert f"| {value} | {delta} |" in md.splitlines()[3]
    assert f"{value}" in _terminal([rich_table(table)]) and f"{100 * d / 2.0:+.1f}%" in _terminal([rich_table(table)])
    assert [float(r["energy_j"]) for r in csv.DictReader(io.StringIO(profile_csv(table)))] == [2.0, 1.25]
    assert '"energy_j": 1.25' in profile_json(table)


def test_a_metric_limited_to_one_kind_of_table_stays_out_of_the_others(energy_store):
    register_metric(Metric("energy_j", "energy (J)", "Energy", 2, tables=frozenset({DATASET})), after="params")
    try:
        report = load_report(energy_store)
        by_kind = {t.kind: [m.key for m in t.metrics] for t in report.tables}
        assert by_kind["dataset"][:2] == ["params", "energy_j"]  # `after` puts it right after params
        assert "energy_j" not in by_kind["profile"]
    finally:
        unregister_metric("energy_j")
    assert "energy_j" not in METRICS


def test_a_dynamic_metric_gives_one_column_per_matching_record_key():
    # the built-in per-runtime latency column (`yoloab profile --runtime`)
    records = [
        _profile("yolov8n", 10.0) | {"latency_ms_onnxruntime": 4.0, "latency_ms_openvino": 3.0},
        _profile("yolov8n-ADown-all", 11.0) | {"latency_ms_onnxruntime": 5.0, "latency_ms_openvino": None},
    ]
    keys = [m.key for m in metrics_for("profile_command", records)]
    assert keys[-2:] == ["latency_ms_onnxruntime", "latency_ms_openvino"]
    md = profile_markdown(profile_table(records))
    assert "| latency onnxruntime (ms) | Δ latency onnxruntime (ms) | latency openvino (ms) |" in md
    assert "| 5.00 | +1.00 (+25.0%) | - |  |" in md  # openvino missing for the variant: '-', no delta


def test_a_delta_shows_its_confidence_interval_and_significance():
    register_metric(Metric("score", "score", "Score", 2, higher_is_better=True, delta_ci="score_delta"))
    try:
        ci = {"score_delta_ci_low": -0.5, "score_delta_ci_high": 1.5, "score_delta_significant": True}
        records = [
            _profile("yolov8n", 10.0) | {"score": 1.0},
            _profile("yolov8n-ADown-all", 10.0) | {"score": 2.0, **ci},
        ]
        md = profile_markdown(profile_table(records))
        assert "| +1.00 (+100.0%) [-0.50, +1.50]* |" in md
    finally:
        unregister_metric("score")
