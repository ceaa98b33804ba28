"""The cost axis of the mAP-vs-cost plots: tick labels that never run together, and plain axis labels."""

from __future__ import annotations

from itertools import combinations

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib import rc_context  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from yoloab.report import load_report  # noqa: E402
from yoloab.report.plots import _RC, DPI, SCATTER_SIZE, cost_axis, map_vs_cost_png  # noqa: E402


def _visible_labels(ax, renderer) -> list[tuple[str, object]]:
    lo, hi = ax.get_xlim()
    ticks = ax.xaxis.get_major_ticks() + ax.xaxis.get_minor_ticks()
    return [
        (t.label1.get_text(), t.label1.get_window_extent(renderer))
        for t in ticks
        if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi
    ]


@pytest.mark.parametrize(
    ("lo", "hi", "log"),
    [(600, 1000, False), (150, 1000, True), (100, 1200, True), (30, 1500, True), (3, 5000, True), (0.4, 9000, True)],
    ids=["600-1000", "150-1000", "100-1200", "30-1500", "3-5000", "0.4-9000"],
)
def test_cost_axis_tick_labels_do_not_overlap(lo, hi, log):
    with rc_context(_RC):
        fig = Figure(figsize=SCATTER_SIZE, dpi=DPI)
        FigureCanvasAgg(fig)
        fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.2)  # as map_vs_cost_png lays it out
        ax = fig.add_subplot()
        xs = [lo, (lo * hi) ** 0.5, hi]
        ax.scatter(xs, [0.1, 0.2, 0.3])
        assert cost_axis(ax, xs) is log
        renderer = fig.canvas.get_renderer()
        fig.draw(renderer)
        labels = _visible_labels(ax, renderer)
    texts = [t for t, _ in labels]
    assert len(labels) >= 2, texts
    for (ta, a), (tb, b) in combinations(labels, 2):
        assert not a.overlaps(b), f"tick labels {ta!r} and {tb!r} overlap ({texts})"
    # labels are plain numbers (no 10^x mathtext, no scientific offsets)
    assert all(t.replace(".", "", 1).replace("\N{MINUS SIGN}", "").isdigit() for t in texts), texts


def test_axis_labels_are_plain(tmp_path):
    from test_report import make_store

    shapes = load_report(make_store(tmp_path), dataset="shapes").tables[0]
    from matplotlib import pyplot as plt

    n = len(plt.get_fignums())
    assert all(map_vs_cost_png(shapes, cost) is not None for cost in ("gflops_aten", "latency_ms"))
    assert len(plt.get_fignums()) == n  # figures are not left open
    from yoloab.report.plots import _cost_label

    for cost, start in (("gflops_aten", "GFLOPs"), ("latency_ms", "Latency in ms")):
        text = _cost_label(shapes, list(shapes.shown), cost)
        assert text.startswith(start) and "honest" not in text and "aten count" not in text, text


# ---- vector files and labelled axes (issue 22) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from test_report import make_store

    return load_report(make_store(tmp_path_factory.mktemp("plots") / "results"), dataset="shapes").tables[0]


@pytest.mark.parametrize(
    "kind", ["gflops_aten", "latency_ms", "curves"], ids=["map-vs-gflops", "map-vs-latency", "curves"]
)
def test_every_axis_is_labelled(shapes, kind):
    from yoloab.report.plots import curves_figure, map_vs_cost_figure

    drawn = curves_figure(shapes) if kind == "curves" else map_vs_cost_figure(shapes, kind)
    axes = [ax for ax in drawn.figure.axes if ax.get_visible()]
    assert axes
    for ax in axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), (ax.get_title(), ax.get_xlabel(), ax.get_ylabel())


def test_plots_are_also_vector_pdf_and_svg(shapes):
    from yoloab.report.plots import map_vs_cost_figure

    drawn = map_vs_cost_figure(shapes, "latency_ms", ("png", "pdf", "svg"))
    pdf, svg = drawn.files["pdf"], drawn.files["svg"]
    assert pdf.startswith(b"%PDF") and b"DejaVu" in pdf  # the font that ships with matplotlib, embedded
    assert b"/Subtype /Type3" not in pdf  # TrueType (Type 42), which paper submission checks accept
    assert b"<svg" in svg[:1000] and b"</svg>" in svg[-100:]
    assert map_vs_cost_figure(shapes, "latency_ms", ("svg",)).files["svg"] == svg  # the same bytes every time


def test_report_plots_names_every_format(shapes):
    from yoloab.report import Report
    from yoloab.report.plots import report_plots

    names = [p.filename for p in report_plots(Report([shapes]), formats=("png", "svg"))]
    assert names == [
        f"shapes-{kind}.{ext}" for kind in ("map-vs-gflops", "map-vs-latency", "curves") for ext in ("png", "svg")
    ]
