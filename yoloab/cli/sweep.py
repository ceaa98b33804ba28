"""`yoloab sweep`: train every variant on a dataset with identical settings; resumable, failures isolated."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .options import (
    Models,
    Modules,
    PlacementOpt,
    Plugins,
    PretrainedOpt,
    Results,
    Yamls,
    load_plugins,
    make_console,
)

if TYPE_CHECKING:
    from ..sweep import SweepOutcome
    from ..training import RunSpec

console = make_console()


class _ProgressEvents:
    """Renders sweep events on one Rich progress bar over runs, with the current variant and epoch."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("sweep", total=total, run="")

    def _say(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def skipped(self, spec: RunSpec, record: dict[str, Any]) -> None:  # noqa: D102
        self.progress.advance(self.task)
        self._transfer(record)

    def _transfer(self, record: dict[str, Any]) -> None:
        if record.get("transferred_tensors") is not None:
            from ..transfer import summary_line

            self._say(escape(summary_line(record)))

    def started(self, spec: RunSpec) -> None:  # noqa: D102
        self.progress.update(self.task, run=f"{spec.label} · epoch 0/{spec.settings.epochs}")
        self._say(f"[bold]▶ {escape(spec.label)}[/] [dim]{spec.run_dir}[/]")

    def epoch(self, spec: RunSpec, epoch: int, epochs: int) -> None:  # noqa: D102
        self.progress.update(self.task, run=f"{spec.label} · epoch {epoch}/{epochs}")

    def finished(self, spec: RunSpec, record: dict[str, Any]) -> None:  # noqa: D102
        self.progress.advance(self.task)
        self._transfer(record)
        if record["status"] == "ok":
            self._say(f"[green]✓[/] {escape(spec.label)}: mAP50-95 {record['map50_95']:.4f}")
        else:
            self._say(f"[red]✗[/] {escape(spec.label)} failed: {escape(str(record['error']))}")

    def waiting(self, spec: RunSpec) -> None:  # noqa: D102
        self.progress.update(self.task, run=f"{spec.label} · waiting for another sweep")

    def stopping(self) -> None:  # noqa: D102
        self._say("[yellow]Stopping after the current epoch is saved (Ctrl-C again to stop now)...[/]")


def summary_table(outcome: SweepOutcome) -> Table:
    """Every run of the sweep, trained now or stored by an earlier sweep."""
    table = Table(title="yoloab sweep", title_justify="left")
    table.add_column("variant", no_wrap=True)
    for h in ("seed", "status", "mAP50", "mAP50-95", "epochs", "train s", "img/s"):
        table.add_column(h, justify="left" if h == "status" else "right", no_wrap=True)
    for r in outcome.skipped + outcome.records:
        ok = r["status"] == "ok"
        status = "[red]failed[/]" if not ok else ("ok (stored)" if r in outcome.skipped else "[green]ok[/]")
        table.add_row(
            r["variant"],
            str(r["seed"]),
            status,
            f"{r['map50']:.4f}" if ok else "-",
            f"{r['map50_95']:.4f}" if ok else "-",
            str(r.get("epochs_done") or "-"),
            f"{r['train_time_s']:.1f}" if ok and r.get("train_time_s") else "-",
            f"{r['images_per_s']:.1f}" if ok and r.get("images_per_s") else "-",
        )
    failed = [r for r in outcome.records if r["status"] != "ok"]
    if failed:
        table.caption = "\n".join(f"{r['variant']} seed {r['seed']}: {escape(str(r['error']))}" for r in failed)
        table.caption_justify = "left"
    return table


class Executor(str, Enum):
    """Where runs train."""

    local = "local"
    ray = "ray"


def sweep(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Ultralytics data yaml, or 'builtin'.")],
    yamls: Yamls = None,
    model: Models = None,
    module: Modules = None,
    placement: PlacementOpt = "article",
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs of every run.")] = 100,
    imgsz: Annotated[int, typer.Option("--imgsz", help="Train/val image size, a multiple of 32.")] = 640,
    batch: Annotated[int, typer.Option("--batch", help="Batch size (-1: Ultralytics' auto batch).")] = 16,
    seed: Annotated[
        list[int] | None, typer.Option("--seed", help="Seed (repeatable: one run per seed).", show_default="0")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda:N | N[,M...] (DDP).")] = "auto",
    workers: Annotated[
        int | None, typer.Option("--workers", help="Dataloader workers [default: Ultralytics'].")
    ] = None,
    results: Results = Path("results"),
    name: Annotated[str, typer.Option("--name", help="Sweep name, recorded with each run.")] = "sweep",
    train: Annotated[
        list[str] | None,
        typer.Option("--train", help="Other Ultralytics trainer argument, KEY=VALUE (repeatable).", show_default=False),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Hide Ultralytics' per-epoch output.")] = False,
    builtin_images: Annotated[
        int, typer.Option("--builtin-images", help="Training images of the built-in dataset (val: a quarter).")
    ] = 512,
    executor: Annotated[Executor, typer.Option("--executor", help="local (this machine) or ray (a Ray cluster).")] = (
        Executor.local
    ),
    devices: Annotated[
        str | None,
        typer.Option(
            "--devices", help="Local executor: one run at a time per device, e.g. 0,1 (or cpu,cpu).", show_default=False
        ),
    ] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="Ray: auto or HOST:PORT [default: start a local Ray instance].")
    ] = None,
    gpus_per_run: Annotated[
        float | None, typer.Option("--gpus-per-run", help="Ray: GPUs per run [default: 1 where the cluster has GPUs].")
    ] = None,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Ray: retries of a run whose worker dies.")] = 1,
    pretrained: PretrainedOpt = None,
    plugin: Plugins = None,
) -> None:
    """Train each baseline and one variant per module and placement (or YAML files) on a dataset.

    Every run trains through Ultralytics' own trainer with the same settings. Re-running the same command skips
    finished runs and resumes interrupted ones. A failing variant is recorded as failed and the sweep goes on.
    """
    # imported here, not at the top: `yoloab --help` must not wait for torch, Ultralytics and Ray
    from ..datasets import load_dataset
    from ..executors import make_executor
    from ..profiling import check_imgsz
    from ..results import check_writable
    from ..significance import warnings
    from ..sweep import run_sweep
    from ..training import TrainSettings, parse_train_args, plan_runs, ultralytics_device
    from ..transfer import check_pretrained
    from ..variants import check_buildable, select_request

    load_plugins(plugin)
    variants = select_request(model, module, placement, [str(y) for y in yamls or []])
    check_buildable(variants)  # every variant before any trains, exactly as profile builds them
    check_imgsz(imgsz, 32, "every model")
    seed_ckpt = check_pretrained(pretrained, variants) if pretrained else None  # before anything is written
    settings = TrainSettings(
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        workers=workers,
        device=ultralytics_device(device),
        train_args=parse_train_args(train),
        quiet=quiet,
    )
    runner = make_executor(executor.value, devices, address, gpus_per_run, max_retries, device)
    check_writable(results)
    data = load_dataset(dataset, builtin_images)
    plugins = tuple(str(p.expanduser().resolve()) for p in plugin or [])
    specs = plan_runs(variants, data, settings, seed or [0], results.resolve(), name, plugins, seed_ckpt)

    columns = (
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[run]}"),
    )
    try:
        with Progress(*columns, console=console, redirect_stdout=True, redirect_stderr=True) as progress:
            outcome = run_sweep(specs, _ProgressEvents(progress, len(specs)), runner)
    except KeyboardInterrupt:
        console.print("[yellow]Stopped at once; the run in flight resumes from its last saved epoch next time.[/]")
        raise typer.Exit(130) from None

    if not outcome.records and not outcome.interrupted:
        console.print(
            f"Nothing to train: all {len(outcome.skipped)} runs already have records in {results} "
            "(delete their runs/<key>.json files to train them again)."
        )
    console.print(summary_table(outcome))
    for line in warnings(outcome.skipped + outcome.records, results):
        console.print(f"[yellow]warning:[/] {escape(line)}")
    console.print(f"[dim]records: {results / 'runs'}  ·  report: yoloab report --results {results}[/]")
    if outcome.interrupted:
        console.print(
            f"[yellow]Stopped by the user; {len(outcome.pending)} run(s) not finished. "
            "Re-run the same command to resume.[/]"
        )
        raise typer.Exit(130)
    if outcome.failed:
        console.print(f"[red]{len(outcome.failed)} of {len(specs)} runs failed[/] (errors above; records stored).")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command("sweep")(sweep)
