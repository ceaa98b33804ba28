"""`yoloab sweep`: train every variant on a dataset with identical settings; resumable, failures isolated."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from ..sweep_progress import SweepClock, duration
from . import slurm as slurm_cli
from .options import (
    DEFAULT_LOSS,
    BackboneWeightsOpt,
    Losses,
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
# click's, as the Typer in use carries it (see `yoloab.cli.app.UsageError`): --dataset is required but with --status
MissingOption: type[Exception] = sys.modules[typer.BadParameter.__module__].MissingParameter


class _EtaColumn(ProgressColumn):
    """`ETA h:mm:ss`: the sweep's from `SweepClock` (from the first step on), a run's epoch from Rich's own speed."""

    def __init__(self, clock: SweepClock) -> None:
        super().__init__()
        self.clock = clock

    def render(self, task: Task) -> Text:  # noqa: D102
        seconds = self.clock.eta() if task.fields.get("sweep") else task.time_remaining
        shown = "-:--:--" if seconds is None else str(timedelta(seconds=max(int(seconds), 0)))
        return Text(f"ETA {shown}", style="progress.remaining")


class _ProgressEvents:
    """One live display: the sweep's bar (epochs of all runs, ETA) and the current epoch's batches and last metrics.

    The overall bar counts epochs of all runs, known before the first starts, advanced within an epoch by its batches,
    so its ETA (`yoloab.sweep_progress.SweepClock`) shows from the first batch and moves every batch. With `quiet`
    nothing is live: one line per run as it starts and one as it ends (status, time, ETA), for logs and CI.
    """

    def __init__(self, progress: Progress, specs: list[RunSpec], quiet: bool, clock: SweepClock) -> None:
        self.progress, self.quiet, self.clock = progress, quiet, clock
        self.epochs = {s.key: s.settings.epochs for s in specs}
        self.begun = 0  # runs skipped or started: the number of the next one
        self.task = progress.add_task("sweep", total=clock.total, run=f"0/{clock.runs} runs", sweep=True)
        self.run_task = progress.add_task("run", total=None, run="", visible=False)
        self.last: dict[str, str] = {}
        self.run_epoch = 0

    def _say(self, text: str) -> None:
        # soft wrap: a line of a log stays one line, however long its error
        self.progress.console.print(text, highlight=False, soft_wrap=True)

    def _stamp(self) -> str:
        return f"[dim]{time.strftime('%H:%M:%S')}[/] " if self.quiet else ""

    def _overall(self) -> None:
        c = self.clock
        self.progress.update(self.task, completed=c.completed, run=f"{c.runs_done}/{c.runs} runs")

    def skipped(self, spec: RunSpec, record: dict[str, Any]) -> None:  # noqa: D102
        self.clock.skipped(spec.key)
        self.begun += 1
        self._overall()
        self._transfer(record)

    def _transfer(self, record: dict[str, Any]) -> None:
        if record.get("transferred_tensors") is not None:
            from ..transfer import summary_line

            self._say(escape(summary_line(record)))

    def started(self, spec: RunSpec) -> None:  # noqa: D102
        self.last, self.run_epoch = {}, 0
        self.clock.started(spec.key)
        self.begun += 1
        if self.quiet:
            self._say(f"{self._stamp()}▶ {escape(spec.label)}: started, run {self.begun} of {self.clock.runs}")
        else:
            self._say(f"[bold]▶ {escape(spec.label)}[/] [dim]log: {spec.log_path}[/]")
        self.progress.reset(self.run_task, total=None, visible=True, description=escape(spec.label), run="starting")

    def epoch(self, spec: RunSpec, epoch: int, epochs: int) -> None:  # noqa: D102
        self.clock.step(spec.key, epoch, 1.0)
        self._overall()

    def batch(self, spec: RunSpec, epoch: int, epochs: int, batch: int, batches: int) -> None:  # noqa: D102
        self.clock.step(spec.key, epoch, batch / batches)
        self._overall()
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
        took = duration(self.clock.finished(spec.key, record))
        self._overall()
        self.progress.update(self.run_task, visible=False)
        self._transfer(record)
        note = f" (resumed after epoch {record['resumed_from_epoch']})" if record.get("resumed_from_epoch") else ""
        label = escape(spec.label)
        if self.quiet:
            c = self.clock
            left = c.runs - c.runs_done
            tail = f" · {c.runs_done}/{c.runs} runs done" + (f", ETA {duration(c.eta())}" if left else "")
            if record["status"] == "ok":
                what = f"[green]✓[/] {label}: ok in {took}, mAP50-95 {record['map50_95']:.4f}{note}"
            else:
                what = f"[red]✗[/] {label}: failed in {took}: {escape(' '.join(str(record['error']).split()))}"
            self._say(self._stamp() + what + tail)
        elif record["status"] == "ok":
            self._say(f"[green]✓[/] {label}: mAP50-95 {record['map50_95']:.4f} in {took}{note}")
        else:
            self._say(f"[red]✗[/] {label} failed after {took}: {escape(str(record['error']))}")

    def waiting(self, spec: RunSpec) -> None:  # noqa: D102
        c = self.clock
        self.progress.update(self.task, run=f"{c.runs_done}/{c.runs} runs · {spec.label}: waiting for another sweep")
        if self.quiet:
            self._say(f"{self._stamp()}… {escape(spec.label)}: waiting for another sweep that is training it")

    def stopping(self) -> None:  # noqa: D102
        self._say("[yellow]Stopping after the current epoch is saved (Ctrl-C again to stop now)...[/]")


def summary_table(outcome: SweepOutcome) -> Table:
    """Every run of the sweep, trained now or stored by an earlier sweep."""
    from ..report.terminal import fold_name

    table = Table(title="yoloab sweep", title_justify="left")
    table.add_column("variant", no_wrap=True)  # names fold at their hyphens (fold_name), numbers stay whole
    records = outcome.skipped + outcome.records
    losses = any(r.get("loss", DEFAULT_LOSS) != DEFAULT_LOSS for r in records)  # a loss axis: its own column
    if losses:
        table.add_column("loss", no_wrap=True)
    resumed = any(r.get("resumed") for r in records)  # an empty column would only take width
    for h in ("seed", "status", "mAP50", "mAP50-95", "epochs", "train s", "img/s", *(["resumed"] if resumed else [])):
        table.add_column(
            h, justify="left" if h == "status" else "right", no_wrap=True, min_width=19 if h == "resumed" else len(h)
        )
    for r in outcome.skipped + outcome.records:
        ok = r["status"] == "ok"
        status = "[red]failed[/]" if not ok else ("ok (stored)" if r in outcome.skipped else "[green]ok[/]")
        table.add_row(
            fold_name(r["variant"]),
            *([r.get("loss", DEFAULT_LOSS)] if losses else []),
            str(r["seed"]),
            status,
            f"{r['map50']:.4f}" if ok else "-",
            f"{r['map50_95']:.4f}" if ok else "-",
            str(r.get("epochs_done") or "-"),
            f"{r['train_time_s']:.1f}" if ok and r.get("train_time_s") else "-",
            f"{r['images_per_s']:.1f}" if ok and r.get("images_per_s") else "-",
            *([_resumed(r)] if resumed else []),
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
    slurm = "slurm"


def sweep(
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Ultralytics data yaml, or 'builtin' (required but with --status).",
            show_default=False,
        ),
    ] = None,
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
    seeds: Annotated[
        int | None,
        typer.Option(
            "--seeds", min=1, help="N seeds: 0..N-1, as --seed 0 ... --seed N-1 (not with --seed).", show_default=False
        ),
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
        typer.Option(
            "--quiet", "-q", help="No live display: one line as each run starts and ends, then the summary (for logs)."
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", help="Ultralytics' own output on the terminal instead of results/train/<run>.log."),
    ] = False,
    builtin_images: Annotated[
        int, typer.Option("--builtin-images", help="Training images of the built-in dataset (val: a quarter).")
    ] = 512,
    executor: Annotated[
        Executor, typer.Option("--executor", help="local (this machine), ray (a Ray cluster) or slurm (SLURM jobs).")
    ] = Executor.local,
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
        float | None,
        typer.Option(
            "--gpus-per-run", help="Ray, SLURM: GPUs per run [default: Ray 1 where the cluster has GPUs, SLURM 0]."
        ),
    ] = None,
    max_retries: Annotated[
        int,
        typer.Option(
            "--max-retries", help="Ray: retries of a run whose worker dies; SLURM: of a job that ends without a record."
        ),
    ] = 1,
    partition: slurm_cli.Partition = None,
    account: slurm_cli.Account = None,
    time_limit: slurm_cli.TimeLimit = None,
    cpus_per_run: slurm_cli.CpusPerRun = None,
    mem_per_run: slurm_cli.MemPerRun = None,
    sbatch_arg: slurm_cli.SbatchArgs = None,
    python_env: slurm_cli.PythonEnv = None,
    detach: slurm_cli.Detach = False,
    status: slurm_cli.Status = False,
    pretrained: PretrainedOpt = None,
    backbone_weights: BackboneWeightsOpt = None,
    loss: Losses = None,
    plugin: Plugins = None,
) -> None:
    """Train each baseline and one variant per module and placement (or YAML files) on a dataset.

    Every run trains through Ultralytics' own trainer with the same settings. Re-running the same command skips
    finished runs and resumes interrupted ones. A failing variant is recorded as failed and the sweep goes on.
    """
    if seeds is not None and seed:  # before anything is loaded: which seeds is ambiguous
        raise typer.BadParameter(
            f"--seeds {seeds} (seeds 0..{seeds - 1}) and --seed {' --seed '.join(map(str, seed))} together; "
            "give one of them",
            param_hint="'--seeds'",
        )
    if status and dataset is None:  # every run submitted from --results: nothing to plan
        slurm_cli.show_status(results, None, console)
    if dataset is None:
        raise MissingOption(param_hint="'--dataset' / '-d'", param_type="option")
    # imported here, not at the top: `yoloab --help` must not wait for torch, Ultralytics and Ray
    from .._ultralytics import import_ultralytics
    from ..datasets import load_dataset, training_defaults
    from ..devices import ultralytics_device
    from ..executors import SlurmOptions, make_executor
    from ..losses import check_losses
    from ..profiling import check_imgsz
    from ..results import check_writable
    from ..significance import warnings
    from ..sweep import run_sweep
    from ..training import TrainSettings, parse_train_args, plan_runs
    from ..transfer import check_pretrained
    from ..variants import check_buildable, select_request

    import_ultralytics()  # a fresh machine's "Creating new Ultralytics Settings" goes to stderr, not before our lines
    load_plugins(plugin)
    losses = check_losses(loss)  # after the plugins (they may register losses), before anything is written
    variants = select_request(model, module, placement, [str(y) for y in yamls or []])
    check_buildable(variants)  # every variant before any trains, exactly as profile builds them
    defaults = training_defaults(dataset)
    epochs = defaults["epochs"] if epochs is None else epochs
    imgsz = defaults["imgsz"] if imgsz is None else imgsz
    batch = defaults["batch"] if batch is None else batch
    check_imgsz(imgsz, 32, "every model")
    seeding = pretrained or backbone_weights
    seed_ckpt = check_pretrained(pretrained, variants, backbone_weights) if seeding else None  # before any write
    settings = TrainSettings(
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        workers=workers,
        device=ultralytics_device(device),
        train_args=parse_train_args(train),
        verbose=verbose,
    )
    flags = slurm_cli.slurm_flags(
        partition=partition, account=account, time_limit=time_limit, cpus_per_run=cpus_per_run,
        mem_per_run=mem_per_run, sbatch_arg=sbatch_arg, python_env=python_env, detach=detach,
    )  # fmt: skip
    runner = make_executor(
        "slurm" if status else executor.value, devices, address, gpus_per_run, max_retries, device, slurm=flags
    )
    check_writable(results)
    data = load_dataset(dataset, builtin_images)
    plugins = tuple(str(p.expanduser().resolve()) for p in plugin or [])
    chosen_seeds = list(range(seeds)) if seeds is not None else seed or [0]
    specs = plan_runs(variants, data, settings, chosen_seeds, results.resolve(), name, plugins, seed_ckpt, losses)
    if status:
        slurm_cli.show_status(results, specs, console)
    if isinstance(runner, SlurmOptions) and detach:
        slurm_cli.submit_and_exit(specs, runner, console)
    clock = SweepClock({s.key: s.settings.epochs for s in specs})

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        _EtaColumn(clock),
        TextColumn("{task.fields[run]}"),
    )
    # the live display writes to the terminal of now: Ultralytics' output is sent to log files through sys.stdout
    live = Console(file=sys.stdout, width=None if console.is_terminal else console.width)
    try:
        with Progress(
            *columns, console=live, disable=quiet, redirect_stdout=verbose, redirect_stderr=verbose
        ) as progress:
            events = _ProgressEvents(progress, specs, quiet, clock)
            if isinstance(runner, SlurmOptions):  # jobs store the records; this process submits and follows
                outcome = slurm_cli.follow(specs, runner, events, progress.console)
            else:
                outcome = run_sweep(specs, events, runner)
    except KeyboardInterrupt:
        console.print("[yellow]Stopped at once; the run in flight resumes from its last saved epoch next time.[/]")
        raise typer.Exit(130) from None

    if not outcome.records and not outcome.interrupted and not outcome.pending:
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
    if outcome.pending:  # SLURM jobs that ended without a record, every retry spent: the next run resubmits them
        console.print(f"[red]{len(outcome.pending)} run(s) have no record yet[/]; re-run the same command to resubmit.")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command("sweep")(sweep)
