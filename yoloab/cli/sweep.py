"""`yoloab sweep`: train every variant on a dataset with identical settings; resumable, failures isolated."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
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
    """One live display: the sweep's bar (runs, ETA over all epochs) and the current epoch's batches and last metrics.

    The overall bar counts epochs of all runs, advanced within an epoch by its batches, so its ETA moves every batch.
    With `quiet` nothing is live: one line per run as it finishes (for logs and CI).
    """

    def __init__(self, progress: Progress, specs: list[RunSpec], quiet: bool) -> None:
        self.progress, self.quiet = progress, quiet
        self.epochs = {s.key: s.settings.epochs for s in specs}
        self.total = len(specs)
        self.done_units, self.runs_done = 0.0, 0
        self.task = progress.add_task("sweep", total=sum(self.epochs.values()), run=f"0/{self.total} runs")
        self.run_task = progress.add_task("run", total=None, run="", visible=False)
        self.last: dict[str, str] = {}
        self.run_epoch = 0

    def _say(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def _overall(self, spec: RunSpec, fraction: float) -> None:
        self.progress.update(self.task, completed=self.done_units + fraction, run=f"{self.runs_done}/{self.total} runs")

    def skipped(self, spec: RunSpec, record: dict[str, Any]) -> None:  # noqa: D102
        self.done_units += self.epochs[spec.key]
        self.runs_done += 1
        self._overall(spec, 0)
        self._transfer(record)

    def _transfer(self, record: dict[str, Any]) -> None:
        if record.get("transferred_tensors") is not None:
            from ..transfer import summary_line

            self._say(escape(summary_line(record)))

    def started(self, spec: RunSpec) -> None:  # noqa: D102
        self.last, self.run_epoch = {}, 0
        if not self.quiet:
            self._say(f"[bold]▶ {escape(spec.label)}[/] [dim]log: {spec.log_path}[/]")
        self.progress.reset(self.run_task, total=None, visible=True, description=escape(spec.label), run="starting")

    def epoch(self, spec: RunSpec, epoch: int, epochs: int) -> None:  # noqa: D102
        self._overall(spec, epoch)

    def batch(self, spec: RunSpec, epoch: int, epochs: int, batch: int, batches: int) -> None:  # noqa: D102
        self._overall(spec, epoch - 1 + batch / batches)
        if epoch != self.run_epoch:  # the run's bar is the epoch's: elapsed and ETA restart with each epoch
            self.run_epoch = epoch
            self.progress.reset(self.run_task, total=batches, completed=0)
        last = "  ".join(f"{k} {v}" for k, v in self.last.items())
        self.progress.update(
            self.run_task,
            total=batches,
            completed=batch,
            run=f"epoch {epoch}/{epochs}  batch {batch}/{batches}  {last}",
        )

    def metrics(self, spec: RunSpec, values: dict[str, float]) -> None:  # noqa: D102
        names = {"metrics/mAP50(B)": "mAP50", "metrics/mAP50-95(B)": "mAP50-95", "train/box_loss": "box"}
        self.last = {short: f"{values[k]:.3f}" for k, short in names.items() if k in values}

    def finished(self, spec: RunSpec, record: dict[str, Any]) -> None:  # noqa: D102
        self.done_units += self.epochs[spec.key]
        self.runs_done += 1
        self._overall(spec, 0)
        self.progress.update(self.run_task, visible=False)
        self._transfer(record)
        note = f" (resumed after epoch {record['resumed_from_epoch']})" if record.get("resumed_from_epoch") else ""
        if record["status"] == "ok":
            self._say(f"[green]✓[/] {escape(spec.label)}: mAP50-95 {record['map50_95']:.4f}{note}")
        else:
            self._say(f"[red]✗[/] {escape(spec.label)} failed: {escape(str(record['error']))}")

    def waiting(self, spec: RunSpec) -> None:  # noqa: D102
        self.progress.update(
            self.task, run=f"{self.runs_done}/{self.total} runs · {spec.label}: waiting for another sweep"
        )

    def stopping(self) -> None:  # noqa: D102
        self._say("[yellow]Stopping after the current epoch is saved (Ctrl-C again to stop now)...[/]")


def summary_table(outcome: SweepOutcome) -> Table:
    """Every run of the sweep, trained now or stored by an earlier sweep."""
    table = Table(title="yoloab sweep", title_justify="left")
    table.add_column("variant", no_wrap=True)
    for h in ("seed", "status", "mAP50", "mAP50-95", "epochs", "train s", "img/s", "resumed"):
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
            _resumed(r),
        )
    failed = [r for r in outcome.records if r["status"] != "ok"]
    if failed:
        table.caption = "\n".join(f"{r['variant']} seed {r['seed']}: {escape(str(r['error']))}" for r in failed)
        table.caption_justify = "left"
    return table


def _resumed(record: dict[str, Any]) -> str:
    if not record.get("resumed"):
        return ""
    after = record.get("resumed_from_epoch")
    return f"[yellow]yes[/] (after epoch {after})" if after else "[yellow]yes[/]"


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
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", help="Training epochs of every run.", show_default="100; 5 with --dataset builtin"),
    ] = None,
    imgsz: Annotated[
        int | None,
        typer.Option(
            "--imgsz", help="Train/val image size, a multiple of 32.", show_default="640; 128 with --dataset builtin"
        ),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(
            "--batch", help="Batch size (-1: Ultralytics' auto batch).", show_default="16; 8 with --dataset builtin"
        ),
    ] = None,
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
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No live display: one line per finished run, then the summary (for logs)."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", help="Ultralytics' own output on the terminal instead of results/train/<run>.log."),
    ] = False,
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
    from ..datasets import load_dataset, training_defaults
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
    defaults = training_defaults(dataset)
    epochs = defaults["epochs"] if epochs is None else epochs
    imgsz = defaults["imgsz"] if imgsz is None else imgsz
    batch = defaults["batch"] if batch is None else batch
    check_imgsz(imgsz, 32, "every model")
    seed_ckpt = check_pretrained(pretrained, variants) if pretrained else None  # before anything is written
    settings = TrainSettings(
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        workers=workers,
        device=ultralytics_device(device),
        train_args=parse_train_args(train),
        verbose=verbose,
    )
    runner = make_executor(executor.value, devices, address, gpus_per_run, max_retries, device)
    check_writable(results)
    data = load_dataset(dataset, builtin_images)
    plugins = tuple(str(p.expanduser().resolve()) for p in plugin or [])
    specs = plan_runs(variants, data, settings, seed or [0], results.resolve(), name, plugins, seed_ckpt)

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[run]}"),
    )
    # the live display writes to the terminal of now: Ultralytics' output is sent to log files through sys.stdout
    live = Console(file=sys.stdout, width=None if console.is_terminal else console.width)
    try:
        with Progress(
            *columns, console=live, disable=quiet, redirect_stdout=verbose, redirect_stderr=verbose
        ) as progress:
            outcome = run_sweep(specs, _ProgressEvents(progress, specs, quiet), runner)
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
