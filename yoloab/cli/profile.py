"""`yoloab profile`: params, two GFLOPs counts, latency and memory of baselines and variants."""

from __future__ import annotations

import sys
from contextlib import nullcontext, redirect_stdout
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .options import (
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
    batch: Annotated[int, typer.Option("--batch", help="Batch size of the throughput measurement.")] = 8,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N.")] = "auto",
    half: Annotated[bool, typer.Option("--half", help="fp16 latency (CUDA).")] = False,
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="Measure latency and memory.")] = True,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads (default: all cores).")] = None,
    runtime: Annotated[
        list[str] | None,
        typer.Option(
            "--runtime",
            help="torch (default) | onnxruntime | openvino | tensorrt; repeatable. Others are exported and checked.",
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    results: Results = Path("results"),
    pretrained: PretrainedOpt = None,
    plugin: Plugins = None,
) -> None:
    """Profile baselines (no --module) or each baseline plus one variant per module and placement.

    `--module all` profiles the whole catalog; YAML files are profiled as given.
    """
    # imported here, not at the top: `yoloab --help` must not wait for torch and Ultralytics
    from .._ultralytics import logs_to_stderr
    from ..profiling import ProfileSettings, profile_variants
    from ..report import profile_csv, profile_json, profile_markdown, profile_table, rich_table
    from ..results import check_writable, store_profile
    from ..transfer import check_pretrained, summary_line
    from ..variants import select_request

    load_plugins(plugin)
    machine = fmt is not Format.table
    # a machine format's stdout is its data alone: Ultralytics' log lines and any print go to stderr meanwhile
    with logs_to_stderr() if machine else nullcontext(), redirect_stdout(sys.stderr) if machine else nullcontext():
        variants = select_request(model, module, placement, [str(y) for y in yamls or []])
        seed = check_pretrained(pretrained, variants) if pretrained else None
        settings = ProfileSettings(
            imgsz=imgsz,
            batch=batch,
            device=device,
            half=half,
            latency=latency,
            nc=nc,
            threads=threads,
            runtimes=tuple(runtime or ["torch"]),
            exports=Path(results) / "exports",
            pretrained=seed,
        )
        check_writable(results)
        records = profile_variants(variants, settings)
        for note in dict.fromkeys(f"{k[7:]} {v}" for k, v in records[0].items() if str(v).startswith("skipped:")):
            Console(stderr=True).print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        stored = store_profile(records, results)
    table = profile_table(records, f"yoloab profile (imgsz {imgsz}, {records[0]['device_name']})")
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
        console.print(f"[dim]stored {stored}[/]")


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command("profile")(profile)
