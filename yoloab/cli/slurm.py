"""`yoloab sweep --executor slurm`: its options, and what it prints (the logic is `yoloab.executors.slurm`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from ..executors.slurm import RunState, SlurmOptions
    from ..sweep import SweepEvents, SweepOutcome
    from ..training import RunSpec

Partition = Annotated[
    str | None, typer.Option("--partition", help="SLURM: partition of every job.", show_default=False)
]
Account = Annotated[str | None, typer.Option("--account", help="SLURM: account charged.", show_default=False)]
TimeLimit = Annotated[
    str | None,
    typer.Option("--time", help="SLURM: time limit of each job (MINUTES, H:M:S, D-H:M:S).", show_default=False),
]
CpusPerRun = Annotated[
    int | None, typer.Option("--cpus-per-run", help="SLURM: CPUs per run [default: the cluster's].", show_default=False)
]
MemPerRun = Annotated[
    str | None, typer.Option("--mem-per-run", help="SLURM: memory per run, e.g. 16G.", show_default=False)
]
SbatchArgs = Annotated[
    list[str] | None,
    typer.Option("--sbatch-arg", help="SLURM: other sbatch option, e.g. --qos=high (repeatable).", show_default=False),
]
PythonEnv = Annotated[
    Path | None,
    typer.Option(
        "--python-env", help="SLURM: virtual or conda environment each job activates [default: this Python].",
        show_default=False,
    ),
]  # fmt: skip
Detach = Annotated[
    bool, typer.Option("--detach", help="SLURM: submit, print the job ids and exit; re-run the command to follow.")
]
Status = Annotated[
    bool,
    typer.Option(
        "--status",
        help="Where each SLURM-submitted run stands (store, squeue); submits nothing. Alone: every run in --results.",
    ),
]

STYLE = {"finished": "green", "failed": "red", "running": "cyan", "queued": "yellow", "ended": "magenta"}


def slurm_flags(**values: Any) -> dict[str, Any]:
    """The SLURM options by their flag, as `yoloab.executors.make_executor` takes them."""
    names = {
        "partition": "--partition",
        "account": "--account",
        "time_limit": "--time",
        "cpus_per_run": "--cpus-per-run",
        "mem_per_run": "--mem-per-run",
        "sbatch_arg": "--sbatch-arg",
        "python_env": "--python-env",
        "detach": "--detach",
    }
    return {names[k]: v for k, v in values.items()}


def status_table(runs: list[RunState]) -> Table:
    """One row per run: its state, its job and what SLURM or the record says."""
    table = Table(title="yoloab sweep on SLURM", title_justify="left")
    for h in ("variant", "seed", "state", "job", "detail"):
        table.add_column(h, no_wrap=h != "detail", justify="right" if h == "seed" else "left")
    for r in runs:
        style = STYLE.get(r.state)
        state = f"[{style}]{r.state}[/]" if style else r.state
        if r.state == "finished" and r.record is not None:
            detail = f"mAP50-95 {r.record['map50_95']:.4f}" if r.record.get("map50_95") is not None else ""
        else:
            detail = r.detail
        table.add_row(escape(r.spec.variant.name), str(r.spec.seed), state, r.job_id or "-", escape(detail))
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.state] = counts.get(r.state, 0) + 1
    table.caption = ", ".join(f"{n} {state}" for state, n in counts.items())
    table.caption_justify = "left"
    return table


def submitted_line(runs: list[RunState], job_ids: list[str]) -> str:
    """What was submitted now, and what was not (already queued, running or finished)."""
    new = [r for r in runs if r.submitted]
    if not new:
        return "Nothing submitted: every run is finished, queued or running."
    arrays = ", ".join(job_ids)
    ids = ", ".join(r.job_id or "" for r in new)
    return f"Submitted {len(new)} run(s) as SLURM array job {arrays} ({ids}); follow with: squeue --jobs {arrays}"


class _Quiet:
    """Events of a sweep that only submits: nothing to show live."""

    def skipped(self, spec: RunSpec, record: dict[str, Any]) -> None:  # noqa: D102
        pass


def submit_and_exit(specs: list[RunSpec], options: SlurmOptions, console: Console) -> None:
    """`--detach`: submit what needs a job, print every run's state and the job ids, and exit.

    Raises:
        typer.Exit: always (0).
    """
    from ..executors.slurm import slurm_sweep

    _, runs = slurm_sweep(specs, options, _Quiet(), detach=True)  # type: ignore[arg-type]
    console.print(status_table(runs))
    new = [r for r in runs if r.submitted]
    job_ids = sorted({r.job_id.split("_")[0] for r in new if r.job_id})
    console.print(submitted_line(runs, job_ids))
    if any(r.state in ("queued", "running") for r in runs):
        console.print("[dim]Re-run the same command (without --detach) to wait, or with --status to look.[/]")
    raise typer.Exit(0)


def show_status(results: Path, specs: list[RunSpec] | None, console: Console) -> None:
    """`--status`: every run's state (the planned ones, or every run submitted to SLURM from `results`).

    Raises:
        typer.Exit: always (0).
    """
    from ..executors.slurm import slurm_sweep, submitted_specs

    if specs is None:
        specs = submitted_specs(results.resolve())
        if not specs:
            console.print(f"No SLURM submissions in {results / 'slurm'}.")
            raise typer.Exit(0)
    _, runs = slurm_sweep(specs, _no_options(), _Quiet(), status_only=True)  # type: ignore[arg-type]
    console.print(status_table(runs))
    raise typer.Exit(0)


def _no_options() -> SlurmOptions:
    from ..executors.slurm import SlurmOptions

    return SlurmOptions()


def follow(specs: list[RunSpec], options: SlurmOptions, events: SweepEvents, console: Console) -> SweepOutcome:
    """Submit what needs a job and wait with the live display; runs whose jobs ended without a record are listed."""
    from ..executors.slurm import slurm_sweep

    def on_submitted(runs: list[RunState], job_ids: list[str]) -> None:
        console.print(status_table(runs))
        console.print(submitted_line(runs, job_ids))

    def note(line: str) -> None:
        console.print(f"[magenta]↻[/] {escape(line)}", highlight=False, soft_wrap=True)

    outcome, runs = slurm_sweep(specs, options, events, on_submitted=on_submitted, note=note)
    if outcome.interrupted:
        console.print("[yellow]Stopped waiting; the jobs go on. Re-run the same command to follow them again.[/]")
    else:
        for r in runs:
            if r.state == "ended":
                console.print(f"[red]✗[/] {escape(r.spec.label)}: {escape(r.detail)}")
    sys.stdout.flush()
    return outcome
