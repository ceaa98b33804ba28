"""`yoloab profile`: params, two GFLOPs counts, latency and memory of baselines and variants."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, redirect_stdout
from enum import Enum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from .options import (
    BackboneWeightsOpt,
    Models,
    Modules,
    Nc,
    PlacementOpt,
    Plugins,
    PretrainedOpt,
    Results,
    Yamls,
    load_plugins,
    make_console,
)

if TYPE_CHECKING:  # torch behind them: `yoloab --help` must not import it
    from rich.progress import ProgressColumn

    from ..profiling import ProfilePlan, StepClock


class Format(str, Enum):
    """Output formats of profile."""

    table = "table"
    json = "json"
    csv = "csv"
    md = "md"


def profile(
    yamls: Yamls = None,
    model: Models = None,
    module: Modules = None,
    placement: PlacementOpt = "article",
    nc: Nc = None,
    imgsz: Annotated[int, typer.Option("--imgsz", help="Square input size, a multiple of the stride.")] = 640,
    batch: Annotated[
        int | None,
        typer.Option(
            "--batch",
            help="Throughput batch (default: 1 on CPU, where more images only queue up behind one core; 8 on CUDA).",
            show_default=False,
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N.")] = "auto",
    half: Annotated[bool, typer.Option("--half", help="fp16 latency (CUDA).")] = False,
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="Measure latency and memory.")] = True,
    train_step: Annotated[
        bool,
        typer.Option(
            "--train-step",
            help="Also time one training step per variant (forward, Ultralytics' detection loss, backward) at --batch, "
            "interleaved like latency, with its peak CUDA memory.",
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="CPU threads (default: 1 on CPU: one thread times the model, not a busy machine's scheduler).",
            show_default=False,
        ),
    ] = None,
    reprofile: Annotated[
        bool, typer.Option("--reprofile", help="Measure again variants whose stored record would be reused.")
    ] = False,
    runtime: Annotated[
        list[str] | None,
        typer.Option(
            "--runtime",
            help="torch (default) | onnxruntime | openvino | tensorrt; repeatable. Others are exported and checked.",
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="Table columns, comma-separated metric keys in order, e.g. latency_ms,latency_p95_ms,latency_p99_ms "
            "(default: every measured column except P95/P99 latency). JSON and CSV always hold every key.",
            show_default=False,
        ),
    ] = None,
    results: Results = Path("results"),
    pretrained: PretrainedOpt = None,
    backbone_weights: BackboneWeightsOpt = None,
    plugin: Plugins = None,
) -> None:
    """Profile baselines (no --module) or each baseline plus one variant per module and placement.

    `--module all` profiles the whole catalog; YAML files are profiled as given.
    """
    # imported here, not at the top: `yoloab --help` must not wait for torch and Ultralytics
    from .._ultralytics import logs_to_stderr
    from ..profiling import ProfileSettings, plan_profile, profile_variants, resolve_settings, reuse_note
    from ..report import profile_csv, profile_json, profile_markdown, profile_table, rich_table, stability_hint
    from ..report.latex import check_profile_columns, split_columns
    from ..results import check_writable, load_profile, store_profile
    from ..timing import torch_threads
    from ..transfer import check_pretrained, summary_line
    from ..variants import select_request

    load_plugins(plugin)
    machine = fmt is not Format.table
    # a machine format's stdout is its data alone: Ultralytics' log lines and any print go to stderr meanwhile. The
    # thread count is chosen here, not by import order (torch imported before Ultralytics would take every core):
    # `profile_variants` sets its own counts per phase; this one covers the torch work around it (variant rewrites)
    with (
        torch_threads(threads or 1),
        logs_to_stderr() if machine else nullcontext(),
        redirect_stdout(sys.stderr) if machine else nullcontext(),
    ):
        variants = select_request(model, module, placement, [str(y) for y in yamls or []])
        seeding = pretrained or backbone_weights
        seed = check_pretrained(pretrained, variants, backbone_weights) if seeding else None
        settings = resolve_settings(
            ProfileSettings(
                imgsz=imgsz,
                batch=batch,
                device=device,
                half=half,
                latency=latency,
                train_step=train_step,
                nc=nc,
                threads=threads,
                runtimes=tuple(runtime or ["torch"]),
                exports=Path(results) / "exports",
                pretrained=seed,
            )
        )
        check_writable(results)
        chosen = split_columns(columns)
        if chosen is not None:  # a wrong name is said before minutes of profiling, not after
            check_profile_columns(chosen, settings.runtimes)
        stored_record = None if reprofile else partial(load_profile, results)
        plan = plan_profile(variants, settings, stored_record)  # from the yaml files and the store: nothing built
        with _progress(len(variants), plan, fmt is Format.table) as (on_step, on_plan, on_build):
            records = profile_variants(variants, settings, on_step, stored_record, on_plan, plan, on_build)
        note = reuse_note(records)
        if note:
            typer.echo(note, err=True)
        for note in dict.fromkeys(f"{k[7:]} {v}" for k, v in records[0].items() if str(v).startswith("skipped:")):
            Console(stderr=True).print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        for note in dict.fromkeys(r["train_step_note"] for r in records if r.get("train_step_note")):  # --train-step
            Console(stderr=True).print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        stored = store_profile(records, results)
    from ..train_step import table_columns

    table = profile_table(records, _title(records[0]), table_columns(records, chosen))
    if fmt is Format.json:
        sys.stdout.write(profile_json(table))
    elif fmt is Format.csv:
        sys.stdout.write(profile_csv(table))
    elif fmt is Format.md:
        sys.stdout.write(profile_markdown(table))
    else:
        console = make_console()
        console.print(rich_table(table))
        for record in records:
            if record.get("pretrained"):
                console.print(summary_line(record), highlight=False)
            if record.get("fuse_note"):
                console.print(f"[dim]{record['variant']}: {record['fuse_note']}[/]")
        if stored:
            where = stored[0] if len(stored) == 1 else f"{len(stored)} records in {stored[0].parent}"
            console.print(f"[dim]stored {escape(str(where))}[/]")
    hint = stability_hint([table])
    if hint:  # stderr in every format: stdout may be the data a script reads
        Console(stderr=True).print(f"[yellow]hint:[/] {escape(hint)}", highlight=False)


def _title(record: dict[str, Any]) -> str:
    """The table's title: the settings every row shares (the key includes them), threads and batch as used."""
    parts = [f"imgsz {record['imgsz']}", str(record["device_name"])]
    if record.get("threads"):
        parts.append(f"{record['threads']} thread{'s' if record['threads'] > 1 else ''}")
    if record.get("batch"):
        parts.append(f"batch {record['batch']}")
    return f"yoloab profile ({', '.join(parts)})"


@contextmanager
def _progress(
    n_variants: int, plan: ProfilePlan, rows: bool
) -> Iterator[tuple[Callable[[str, dict[str, Any] | None], None], Callable[[int], None], Callable[[str], None]]]:
    """A progress bar with ETA on stderr (stdout stays the output), and each variant's counts as soon as they are in.

    The total (the builds plus `profile_variants`' steps) comes from the plan, before any model is built; the ETA from
    `StepClock`, from the first build on.

    Yields:
        The `on_step`, `on_plan` and `on_build` callbacks for `profile_variants`.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..profiling import StepClock

    clock = StepClock(plan)
    err = Console(stderr=True)
    columns = (
        TextColumn("[bold]profile"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        _eta_column(clock),
        TextColumn("{task.description}"),
    )
    # only on a terminal: piped or captured stderr gets the early rows and the errors, not bar frames
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task(f"{n_variants} variants", total=plan.builds + plan.steps)

        def on_build(name: str) -> None:
            clock.built()
            progress.update(task, advance=1, description=f"built {escape(name)}")

        def on_step(what: str, record: dict[str, Any] | None) -> None:
            clock.step()
            progress.update(task, advance=1, description=escape(what))
            if rows and record is not None:  # counts are final now; latency, interleaved, comes after all of them
                flops = [record.get(k) for k in ("gflops", "gflops_aten")]
                ultra, aten = (f"{x:.2f}" if x is not None else "-" for x in flops)
                flag = "  [yellow]flagged[/]" if record.get("flops_flag") else ""
                when = escape(str(record.get("counted") or record.get("profiled")))
                stored = (
                    f"  [dim](stored, measured {escape(str(record.get('profiled')))})[/]"
                    if record.get("reused")
                    else f"  [dim](counts stored {when}; timed again with its group)[/]"
                    if record["variant"] in plan.retimed
                    else ""
                )
                progress.console.print(
                    f"{escape(record['variant'])}: {record['params']:,} params, {ultra} GFLOPs (Ultralytics), "
                    f"{aten} (aten){flag}{stored}",
                    highlight=False,
                )

        def on_plan(total: int) -> None:
            clock.set_total(total)
            progress.update(task, total=plan.builds + total)

        yield on_step, on_plan, on_build


def _eta_column(clock: StepClock) -> ProgressColumn:
    """A column of the time left by `StepClock`: shown from the first measured step (Rich's own needs several)."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class EtaColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            left = clock.remaining()
            if left is None:
                return Text("-:--:--", style="progress.remaining")
            minutes, seconds = divmod(round(left), 60)
            hours, minutes = divmod(minutes, 60)
            return Text(f"{hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")

    return EtaColumn()


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command("profile")(profile)
