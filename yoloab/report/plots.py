"""Plots of a report: mAP against cost with the Pareto front, and training curves of every variant overlaid.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, so no global backend switch and no window), with
the DejaVu Sans font that ships with matplotlib (nothing is downloaded), at a fixed size and dpi so that every PNG of
a kind has the same pixel size: `SCATTER_SIZE` x `DPI` and `CURVES_SIZE` x `DPI`. Each figure is also written as
vector PDF (fonts embedded) and SVG, for papers and slides; every axis is labelled.

The Pareto front of a latency plot is computed over every point timed in the same session as the baseline, unstable
timings included at their median (drawn hollow, never dropped); `scatter` exposes what a plot marks.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..results import read_epochs
from .metrics import METRICS, UNSTABLE_IQR
from .table import MISMATCH_MARK, UNSTABLE_MARK, Report, ReportTable, Row, slug

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
SCATTER_SIZE = (8.0, 6.0)  # inches: 800 x 600 px
CURVES_SIZE = (10.0, 7.5)  # inches: 1000 x 750 px
MAP_COLUMN = "metrics/mAP50-95(B)"
_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "figure.titlesize": 11,
    "pdf.fonttype": 42,  # DejaVu embedded as TrueType: text a paper's PDF viewer can select and search
    "svg.hashsalt": "yoloab",  # the same SVG ids on every run: files that differ only when the plot does
}
FORMATS = ("png", "pdf", "svg")
"""Files written per plot: the PNG for pages and Markdown, the vector PDF and SVG for papers and slides."""
_METADATA: dict[str, dict[str, None]] = {
    # no dates or version strings: the same report gives the same bytes
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
    "svg": {"Creator": None, "Date": None},
}


@dataclass(frozen=True)
class Plot:
    """A rendered plot file (PNG, PDF or SVG) that belongs to a table.

    Attributes:
        table: Name of the table it illustrates.
        filename: File name in the output folder; its extension is the format.
        title: Alternative text.
        data: The file's bytes.
    """

    table: str
    filename: str
    title: str
    data: bytes

    @property
    def format(self) -> str:
        """'png', 'pdf' or 'svg'."""
        return self.filename.rsplit(".", 1)[-1]


@dataclass
class Drawn:
    """A drawn figure and its files.

    Attributes:
        figure: The matplotlib figure (Agg canvas): tests read its axes.
        files: Format ('png', 'pdf', 'svg') -> bytes.
        scatter: For an mAP-vs-cost plot, what it marks.
    """

    figure: Figure
    files: dict[str, bytes]
    scatter: Scatter | None = None


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points: no other point has lower-or-equal cost and higher-or-equal score.

    A point that another one beats in one coordinate and ties in the other is dominated; identical points are all
    on the front.

    Args:
        costs: Lower is better (GFLOPs, latency).
        scores: Higher is better (mAP).

    Returns:
        The indices on the front, ordered by cost (then by score, best first).
    """
    front = [
        i
        for i, (c, s) in enumerate(zip(costs, scores, strict=True))
        if not any(c2 <= c and s2 >= s and (c2 < c or s2 > s) for c2, s2 in zip(costs, scores, strict=True))
    ]
    return sorted(front, key=lambda i: (costs[i], -scores[i]))


def pixel_size(figsize: tuple[float, float]) -> tuple[int, int]:
    """Width and height in pixels of a figure of this size saved at `DPI`."""
    return round(figsize[0] * DPI), round(figsize[1] * DPI)


def _new_figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    # no bbox_inches='tight': it would change the pixel size from figure to figure
    fig.savefig(buf, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    return buf.getvalue()


def _files(fig: Figure, formats: Sequence[str]) -> dict[str, bytes]:
    """The figure in each format; called inside the plot's `rc_context`, whose fonts the tick labels take."""
    return {fmt: _save(fig, fmt) for fmt in formats}


def _colors(table: ReportTable) -> dict[str, Any]:
    """One colour per row label, the same in every plot of the table."""
    from matplotlib import colormaps

    labels = [row.label for row in table.shown]
    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _darker(color: Any) -> tuple[float, float, float]:
    """The colour at 75% brightness: light palette entries (olive, cyan) stay readable as text."""
    from matplotlib.colors import to_rgb

    return tuple(0.75 * c for c in to_rgb(color))  # type: ignore[return-value]


# ---- mAP against cost -------------------------------------------------------------------------------------------


def _boxes_overlap(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _place_labels(
    ax: Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    errs: Sequence[float],
    texts: Sequence[str],
    colors: Sequence[Any],
    front: Sequence[int] = (),
) -> None:
    """Label every point where the label overlaps no other label, point, error bar or the Pareto line.

    Tries positions around each point, greedily in the order given; a label that fits nowhere takes the position with
    the least overlap and a leader line. `front` are the indices the Pareto line joins. Needs the axes position and
    limits to be final.
    """
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    points = ax.transData.transform(list(zip(xs, ys, strict=True)))
    point_boxes = [Bbox.from_bounds(px - 5, py - 5, 10, 10) for px, py in points]
    for x, y, e in zip(xs, ys, errs, strict=True):
        if e:
            (x0, y0), (x1, y1) = ax.transData.transform([(x, y - e), (x, y + e)])
            point_boxes.append(Bbox.from_extents(x0 - 4, y0, x1 + 4, y1))
    line = [points[i] for i in front]
    for (x0, y0), (x1, y1) in itertools.pairwise(line):  # the front's segments, as a chain of small boxes
        steps = max(1, int(math.hypot(x1 - x0, y1 - y0) / 6))
        point_boxes += [
            Bbox.from_bounds(x0 + (x1 - x0) * t / steps - 2, y0 + (y1 - y0) * t / steps - 2, 4, 4)
            for t in range(steps + 1)
        ]
    ring = [(6, 6), (6, -6), (-6, 6), (-6, -6), (0, 10), (0, -10), (10, 0), (-10, 0)]
    candidates = [(dx * k, dy * k) for k in (1, 2.2, 3.5) for dx, dy in ring]
    placed: list[Any] = []
    for i, (x, y, text, color) in enumerate(zip(xs, ys, texts, colors, strict=True)):
        best = None
        for j, (dx, dy) in enumerate(candidates):
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
            leader = {"arrowstyle": "-", "color": "0.5", "lw": 0.6} if j >= len(ring) else None
            ann = ax.annotate(
                text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=7,
                color=color, arrowprops=leader,
            )  # fmt: skip
            box = ann.get_window_extent(renderer)
            overlap = sum(_boxes_overlap(box, b) for b in placed)
            overlap += sum(_boxes_overlap(box, b) for k, b in enumerate(point_boxes) if k != i)
            outside = box.width * box.height - _boxes_overlap(box, inside)
            cost = overlap + 2 * outside
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost == 0:
                break
        assert best is not None
        placed.append(best[2])


def _limits(values: Sequence[float], pad: float, log: bool = False) -> tuple[float, float]:
    """Data range plus `pad` of its span on each side (in log space on a log axis): room for the labels."""
    if log:
        lo, hi = _limits([math.log10(v) for v in values], pad)
        return 10**lo, 10**hi
    lo, hi = min(values), max(values)
    span = hi - lo or abs(hi) * 0.2 or 1.0
    return lo - pad * span, hi + pad * span


@dataclass(frozen=True)
class Scatter:
    """What an mAP-vs-cost plot draws and marks, point by point (tests read this, not the pixels).

    Attributes:
        labels: Row labels, in table order.
        xs: Cost of each point (the median for a timing).
        ys: mAP50-95 (mean over seeds).
        errs: Standard deviation of the mAP over seeds (0 for one seed).
        hollow: Indices drawn hollow: unstable timings (IQR above `UNSTABLE_IQR` of the median), on the front or not.
        apart: Indices timed in another session or under other conditions than the group's baseline: drawn as
            squares and left out of the front (their cost is not comparable).
        front: Indices on the Pareto front, computed over every point that is compared, unstable ones included;
            ordered by cost.
        marks: Footnote marks after each label ('‡' unstable, '§' profiled with other settings than the runs).
    """

    labels: list[str]
    xs: list[float]
    ys: list[float]
    errs: list[float]
    hollow: list[int]
    apart: list[int]
    front: list[int]
    marks: list[str]

    @property
    def front_labels(self) -> list[str]:
        """Labels of the points on the front, by cost."""
        return [self.labels[i] for i in self.front]


def scatter(table: ReportTable, cost: str) -> Scatter | None:
    """The points of mAP50-95 against a cost and which of them are on the Pareto front, hollow or apart.

    For a timing, the front compares only points timed in the same session and under the same conditions as the
    group's baseline (`yoloab.report.table.reference_session`); unstable points count at their median and are drawn
    hollow, never dropped.

    Returns:
        None when no row has both values.
    """
    rows = [r for r in table.shown if r.values[cost].mean is not None and r.values["map50_95"].mean is not None]
    if not rows:
        return None
    timed = METRICS[cost].session_bound
    xs = [r.values[cost].mean for r in rows]
    ys = [r.values["map50_95"].mean for r in rows]
    errs = [r.values["map50_95"].std or 0.0 for r in rows]
    hollow = [i for i, r in enumerate(rows) if cost in r.unstable]
    other = [METRICS[cost].timed and r.latency_mismatch is not None for r in rows]
    marks = [UNSTABLE_MARK * (i in hollow) + MISMATCH_MARK * o for i, o in enumerate(other)]
    apart: list[int] = []
    if timed:
        pairs = [(r.timing_group, r.timing_session) for r in rows]
        pool = [pair for pair, r in zip(pairs, rows, strict=True) if r.is_baseline] or pairs
        main = max(dict.fromkeys(pool), key=pool.count)
        apart = [i for i, pair in enumerate(pairs) if pair != main]
    compared = [i for i in range(len(rows)) if i not in apart]
    front = [compared[i] for i in pareto_front([xs[i] for i in compared], [ys[i] for i in compared])]
    return Scatter([r.label for r in rows], xs, ys, errs, hollow, apart, front, marks)  # type: ignore[arg-type]


def map_vs_cost_figure(table: ReportTable, cost: str, formats: Sequence[str] = ("png",)) -> Drawn | None:
    """The figure of mAP50-95 against a cost (`gflops_aten` or `latency_ms`), its files and the points it marks.

    Args:
        table: A dataset table.
        cost: Metric key on the x axis; lower is better.
        formats: Files to render (`FORMATS`).

    Returns:
        The drawn figure with its `Scatter`, or None when no row has both values.
    """
    from matplotlib import rc_context

    data = scatter(table, cost)
    if data is None:
        return None
    xs, ys, errs, front = data.xs, data.ys, data.errs, data.front
    colors = _colors(table)
    with rc_context(_RC):
        fig = _new_figure(SCATTER_SIZE)
        fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.2)
        ax = fig.add_subplot()
        if front:
            ax.plot(
                [xs[i] for i in front], [ys[i] for i in front], color="0.35", ls="--", lw=1, zorder=1,
                label="Pareto front over every compared point (none has lower cost and higher mAP)",
            )  # fmt: skip
            ax.scatter(
                [xs[i] for i in front], [ys[i] for i in front], s=150, facecolors="none", edgecolors="black",
                lw=1.2, zorder=3, label="on the front",
            )  # fmt: skip
        for i, (label, x, y, e) in enumerate(zip(data.labels, xs, ys, errs, strict=True)):
            ax.errorbar(
                x, y, yerr=e or None, fmt="s" if i in data.apart else "o", ms=6, color=colors[label], capsize=3,
                zorder=4, mfc="white" if i in data.hollow else colors[label], gid=f"point-{i}",
            )  # fmt: skip
        if any(errs):
            ax.plot([], [], "o", color="0.4", label="mean ± std over seeds (error bar)")
        if data.hollow:
            what = f"{UNSTABLE_MARK} hollow: unstable timing (IQR > {100 * UNSTABLE_IQR:.0f}% of median), at its median"
            ax.plot([], [], "o", color="0.4", mfc="white", label=what)
        if data.apart:
            ax.plot([], [], "s", color="0.4", label="square: timed in another session, not compared (off the front)")
        if any(MISMATCH_MARK in m for m in data.marks):
            ax.plot([], [], " ", label=f"{MISMATCH_MARK} profiled with other settings than the runs")
        log = cost_axis(ax, xs)
        ax.set_ylim(
            *_limits(
                [y - e for y, e in zip(ys, errs, strict=True)] + [y + e for y, e in zip(ys, errs, strict=True)], 0.2
            )
        )
        ax.grid(True, which="both" if log else "major", alpha=0.3)
        ax.set_ylabel("mAP50-95 (validation, best checkpoint)")
        rows = [r for r in table.shown if r.label in data.labels]
        ax.set_xlabel(_cost_label(table, rows, cost) + (", log scale" if log else ""))
        ax.set_title(f"{table.name}: mAP50-95 vs {'GFLOPs' if cost == 'gflops_aten' else 'latency'}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2, fontsize=8, frameon=False)
        labels = [label + m for label, m in zip(data.labels, data.marks, strict=True)]
        _place_labels(ax, xs, ys, errs, labels, [_darker(colors[label]) for label in data.labels], front)
        return Drawn(fig, _files(fig, formats), data)


def map_vs_cost_png(table: ReportTable, cost: str) -> bytes | None:
    """mAP50-95 against a cost (`gflops_aten` or `latency_ms`) as PNG (see `map_vs_cost_figure`); None without data."""
    made = map_vs_cost_figure(table, cost)
    return made.files["png"] if made else None


def cost_axis(ax: Any, xs: Sequence[float]) -> bool:
    """Scale, limits and ticks of the cost (x) axis; returns whether it is logarithmic.

    A log axis labels only as many of 1, 2, 3, 5 ... per decade as the decades it spans leave room for, and no minor
    tick, so that labels such as 600, 700, 800, 900 never run together.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    # one large model (RevCol) would squeeze every conv swap into a sliver of a linear axis
    log = min(xs) > 0 and max(xs) / min(xs) > 5
    if log:
        ax.set_xscale("log")
    lo, hi = _limits(xs, 0.2, log)
    ax.set_xlim(lo, hi)
    if log:
        decades = math.log10(hi / lo)
        subs = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0) if decades < 1.5 else (1.0, 2.0, 5.0) if decades < 3 else (1.0,)
        ax.xaxis.set_major_locator(LogLocator(subs=subs, numticks=100))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(LogLocator(subs="auto", numticks=100))
        ax.xaxis.set_minor_formatter(NullFormatter())
    return log


def _cost_label(table: ReportTable, rows: list[Row], cost: str) -> str:
    if cost == "gflops_aten":
        sizes = {r.get("flops_imgsz") for row in rows for r in row.runs} - {None}
        at = f" at {sizes.pop()} px" if len(sizes) == 1 else ""
        return f"GFLOPs{at} (PyTorch operator count)"
    sources = {(s.get("imgsz"), s.get("device_name")) for row in rows if (s := row.latency_source)}
    where = f", {next(iter(sources))[0]} px, {next(iter(sources))[1]}" if len(sources) == 1 else ""
    return f"Latency in ms (batch 1{where})"


# ---- training curves --------------------------------------------------------------------------------------------


def read_results_csv(path: str | Path) -> pd.DataFrame | None:
    """An Ultralytics `results.csv`, one row per epoch (the last row where a resumed run repeated an epoch).

    Returns:
        The frame with stripped column names, sorted by epoch; None when the file is missing, empty or unreadable.
    """
    import pandas as pd

    rows = read_epochs(path)
    return pd.DataFrame(rows) if rows else None


def _curves(table: ReportTable) -> list[tuple[Row, str, pd.DataFrame]]:
    """(row, seed, results.csv) of every finished run whose file is there; failed runs stay out, as in the table."""
    out = []
    for row in table.shown:
        for run in row.runs:
            frame = read_results_csv(Path(run["run_dir"]) / "results.csv") if run.get("run_dir") else None
            if frame is not None:
                out.append((row, str(run.get("seed")), frame))
    return out


def curves_png(table: ReportTable) -> bytes | None:
    """The training curves as PNG (see `curves_figure`); None when no run has a readable `results.csv`."""
    made = curves_figure(table)
    return made.files["png"] if made else None


def _curve_ylabel(column: str) -> str:
    if column == MAP_COLUMN:
        return "mAP50-95 (validation)"
    return column.split("/", 1)[-1].replace("_", " ") + " (train)"


def curves_figure(table: ReportTable, formats: Sequence[str] = ("png",)) -> Drawn | None:
    """mAP50-95 and every train loss per epoch, one line per run, seeds of a variant in the same colour.

    Args:
        table: A dataset table.
        formats: Files to render (`FORMATS`).

    Returns:
        The drawn figure, or None when no run of the table has a readable `results.csv`.
    """
    from matplotlib import rc_context
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    curves = _curves(table)
    if not curves:
        return None
    panels = [MAP_COLUMN] if any(MAP_COLUMN in f.columns for _, _, f in curves) else []
    for _, _, frame in curves:
        panels += [c for c in frame.columns if c.startswith("train/") and c not in panels]
    colors = _colors(table)
    seeds = sorted({seed for _, seed, _ in curves}, key=lambda s: (len(s), s))
    styles = dict(zip(seeds, itertools.cycle(["-", "--", ":", "-."]), strict=False))  # a seed looks the same everywhere
    with rc_context(_RC):
        shown = list(dict.fromkeys(row.label for row, _, _ in curves))
        legend_rows = math.ceil((len(shown) + (len(seeds) if len(seeds) > 1 else 0)) / 3)
        fig = _new_figure(CURVES_SIZE)
        # fixed margins, the bottom one sized for the legend's rows: as readable as constrained layout, 3x faster
        fig.subplots_adjust(left=0.07, right=0.98, top=0.92, bottom=0.1 + 0.025 * legend_rows, hspace=0.4, wspace=0.2)
        ncols = 2 if len(panels) > 1 else 1
        axes = fig.subplots(math.ceil(len(panels) / ncols), ncols, squeeze=False).ravel()
        for ax, column in zip(axes, panels, strict=False):
            for row, seed, frame in curves:
                if column in frame.columns:
                    ax.plot(frame["epoch"], frame[column], color=colors[row.label], ls=styles[seed], lw=1.3)
            ax.set_title(column.replace("metrics/", "").replace("(B)", "") + (" (val)" if column == MAP_COLUMN else ""))
            ax.set_xlabel("epoch")
            ax.set_ylabel(_curve_ylabel(column))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        handles = [Line2D([], [], color=colors[label], lw=2) for label in shown]
        names = list(shown)
        if len(seeds) > 1:
            handles += [Line2D([], [], color="0.3", ls=styles[seed], lw=1.3) for seed in seeds]
            names += [f"seed {seed}" for seed in seeds]
        fig.legend(handles, names, loc="lower center", ncol=min(3, len(names)), fontsize=8, frameon=False)
        fig.suptitle(f"{table.name}: training curves (one line per run: colour = variant, line style = seed)")
        return Drawn(fig, _files(fig, formats))


# ---- every plot of a report -------------------------------------------------------------------------------------


def report_plots(report: Report, formats: Sequence[str] | None = None) -> list[Plot]:
    """Every plot of every dataset table, each as PNG, PDF and SVG (`FORMATS`, unless `formats` names others).

    Named `<dataset>-map-vs-gflops.<ext>`, `-map-vs-latency.<ext>` and `-curves.<ext>`. The latency plot exists only
    where a latency is known, the curves only where a `results.csv` is.
    """
    formats = FORMATS if formats is None else tuple(formats)
    plots = []
    for table in report.tables:
        if table.kind != "dataset":
            continue
        name = slug(table.name)
        made = [
            (f"{name}-map-vs-gflops", f"{table.name}: mAP50-95 vs GFLOPs (aten)", map_vs_cost_figure, "gflops_aten"),
            (f"{name}-map-vs-latency", f"{table.name}: mAP50-95 vs latency", map_vs_cost_figure, "latency_ms"),
            (f"{name}-curves", f"{table.name}: training curves", None, None),
        ]
        for stem, title, draw, cost in made:
            drawn = draw(table, cost, formats) if draw else curves_figure(table, formats)  # type: ignore[misc]
            if drawn is not None:
                plots += [Plot(table.name, f"{stem}.{fmt}", title, drawn.files[fmt]) for fmt in formats]
    return plots
