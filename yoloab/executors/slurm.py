"""The SLURM executor: one batch job per run that still needs training, submitted as a job array with plain `sbatch`.

Why `sbatch` and not submitit: a sweep's runs are the shape of a job array, which `sbatch --array` gives directly
(one submission, one job id, one line in `squeue` per task); the job is a short shell script a user can read, resubmit
and adapt, and needs only yoloab on the nodes. submitit would add a dependency and pickle a function whose job
then only calls yoloab anyway, and its own folder, requeue and result handling would duplicate what the results
store already does (records, locks, resume).

Unlike the other executors, jobs store their own records: the driver may detach (`--detach`) and be gone for days.
The driver only decides what to submit, submits it, and (unless detached) watches; it never trains.

Layout under the results directory (all on storage every node sees):

- `slurm/submit.lock`: held by a driver while it looks at the store and `squeue` and submits, so two drivers never
  submit the same run.
- `slurm/runs/<key>.json`: the run's current job (`job_id`, e.g. `12_3`: array job 12, task 3) and earlier ones.
- `slurm/runs/<key>.progress.json`: the job's last finished epoch and batch, for the driver's live display.
- `slurm/jobs/<submission>/`: one submission: `job.sh` (what `sbatch` ran), `specs.pkl` (the runs, one per array
  task), `command.txt` (the `sbatch` command line) and SLURM's output, `<array job>_<task>.out`.

A job (`task_main`) takes its run's lock (`locks/<key>.lock`, as every sweep does), reads the record again under it
(an `ok` one: nothing to do), resumes from the run's last saved epoch where there is one (marked `resumed`, as
locally), trains, and stores the record, with `job_id`, atomically. A run whose record says it failed is trained
again from scratch, as locally: the job clears its run directory and the failed record first, so that a requeue of
that job resumes instead of starting over once more.

SIGTERM (a time limit, `scancel`, preemption; SLURM sends SIGKILL `KillWait` or `GraceTime` seconds later) stops
the run at once: every finished epoch is already saved (Ultralytics' `last.pt`, copied atomically after each epoch),
only the epoch in flight is lost, and the job leaves no record. SLURM itself requeues a job it preempts or whose node
fails (`--requeue`); a job that ended otherwise without a record (time limit, `scancel`, `JobRequeue=0` clusters) is
resubmitted by the waiting driver (up to `--max-retries` times) or by the next run of the sweep command.

Shared storage: records, checkpoints and progress files are written to a temporary name and renamed (atomic on
NFS, as on any POSIX file system); the run and submit locks are `fcntl.flock` locks, which Linux's NFS client
carries to the server as POSIX locks: NFSv4, or NFSv3 with the lock manager (lockd/statd), and neither `nolock` nor
`local_lock=flock|all` among the mount options. Before anything is submitted, `check_storage` writes, renames and
locks a probe file there (refusing where that fails) and warns where the mount keeps locks on each node. A record
written on one node may take the NFS attribute-cache time (`actimeo`, tens of seconds) to show on another; a run
resubmitted meanwhile finds its `ok` record under its lock and trains nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_atomic
from ..errors import SchedulerError, StorageError, SweepInputError, YoloabWarning
from ..safepaths import inside
from .common import POLL_S, read_progress

if TYPE_CHECKING:
    from ..sweep import SweepEvents, SweepOutcome
    from ..training import RunSpec

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
SQUEUE_POLL_S = 3.0
"""How often a waiting driver asks `squeue` (a cluster's controller is shared: not every POLL_S)."""
LOCK_WAIT_S = 180.0
"""How long a job waits for its run's lock: a job just ended by SLURM may hold it until it has exited."""
MAX_ARRAY = 1000  # SLURM's default MaxArraySize is 1001 (indices 0-1000): larger sweeps are split
# `python -c`, with the working directory off sys.path and the driver's yoloab after every installed package; the
# job's slot is given back as soon as the record is stored
TASK_BOOT = (
    "import sys\n"
    "if sys.path and sys.path[0] == '': del sys.path[0]\n"
    "sys.path.append(sys.argv.pop(1))\n"
    "from yoloab.executors.slurm import task_main\n"
    "code = task_main(sys.argv[1:])\n"
    "sys.stdout.flush(); sys.stderr.flush()\n"
    "import os; os._exit(code)  # the record is stored: skip the interpreter's teardown (seconds, with torch)\n"
)
# squeue's states (%T): a job in one of these may still store its run's record
QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESV_DEL_HOLD"}
RUNNING = {"RUNNING", "COMPLETING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "RESIZING", "STOPPED"}
# sbatch options yoloab sets itself, and the option of yoloab's to use instead (None: no way around it)
OWN_SBATCH = {
    "--array": None,
    "-a": None,
    "--output": None,
    "-o": None,
    "--error": None,
    "-e": None,
    "--parsable": None,
    "--wrap": None,
    "--job-name": "--name",
    "-J": "--name",
    "--partition": "--partition",
    "-p": "--partition",
    "--account": "--account",
    "-A": "--account",
    "--time": "--time",
    "-t": "--time",
    "--cpus-per-task": "--cpus-per-run",
    "-c": "--cpus-per-run",
    "--mem": "--mem-per-run",
}
TIME_FORMAT = re.compile(r"(\d+-)?\d+(:\d+){0,2}|\d+-\d+")  # minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S
MEM_FORMAT = re.compile(r"\d+[KMGT]?", re.I)


@dataclass(frozen=True)
class SlurmOptions:
    """How each run's job is submitted (`sbatch` options), and how the driver behaves.

    Attributes:
        partition: `--partition` (None: the cluster's default).
        account: `--account` (None: the user's default).
        time: `--time` limit of each job, in SLURM's format (`90`, `1:30:00`, `2-00:00:00`); None: the partition's.
        gpus: GPUs per run (`--gres=gpu:N`); more than one trains with Ultralytics' DDP inside the job.
        cpus: `--cpus-per-task` (None: SLURM's default, one).
        mem: `--mem` per run (`16G`); None: the partition's default.
        sbatch_args: other `sbatch` options, passed as given (`--qos=high`, `--constraint=a100`).
        python_env: a virtual or conda environment each job activates (None: the driver's own Python, by path).
        max_retries: resubmissions of a run whose job ended without a record, while the driver waits.
    """

    partition: str | None = None
    account: str | None = None
    time: str | None = None
    gpus: int = 0
    cpus: int | None = None
    mem: str | None = None
    sbatch_args: tuple[str, ...] = ()
    python_env: Path | None = None
    max_retries: int = 1

    def check(self) -> None:
        """Refuse options `sbatch` would refuse, or that clash with what yoloab sets, before anything is written.

        Raises:
            SweepInputError: naming the option and what is expected.
        """
        if self.time is not None and not TIME_FORMAT.fullmatch(self.time):
            raise SweepInputError(
                f"--time '{self.time}' is not a SLURM time limit; expected MINUTES, H:M:S or D-H:M:S (e.g. 90, 1:30:00)"
            )
        if self.mem is not None and not MEM_FORMAT.fullmatch(self.mem):
            raise SweepInputError(f"--mem-per-run '{self.mem}' is not a SLURM memory size; expected e.g. 16G or 4000M")
        if self.gpus < 0:
            raise SweepInputError(f"--gpus-per-run {self.gpus} must be at least 0")
        if self.cpus is not None and self.cpus < 1:
            raise SweepInputError(f"--cpus-per-run {self.cpus} must be at least 1")
        if self.max_retries < 0:
            raise SweepInputError(f"--max-retries {self.max_retries} must be at least 0")
        for arg in self.sbatch_args:
            name = arg.split("=", 1)[0]
            if name in OWN_SBATCH:
                instead = OWN_SBATCH[name]
                raise SweepInputError(
                    f"--sbatch-arg {arg}: {name} is set by yoloab" + (f"; use {instead} instead" if instead else "")
                )
            if not arg.startswith("-"):
                raise SweepInputError(f"--sbatch-arg '{arg}' is not an sbatch option; expected e.g. --qos=high")
        if self.python_env is not None:
            env = self.python_env
            if not ((env / "bin" / "activate").is_file() or (env / "bin" / "python").exists()):
                raise SweepInputError(
                    f"--python-env {env}: no bin/activate or bin/python there; expected a virtual or conda environment"
                )

    def device(self) -> str:
        """Ultralytics' device inside a job: SLURM's `CUDA_VISIBLE_DEVICES` holds the job's GPUs only."""
        return ",".join(str(i) for i in range(self.gpus)) if self.gpus else "cpu"

    def sbatch(self, name: str, tasks: int, folder: Path) -> list[str]:
        """The `sbatch` command line of one submission of `tasks` runs (the job script last)."""
        cmd = ["sbatch", "--parsable", f"--job-name={name}", f"--array=0-{tasks - 1}"]
        cmd += [f"--output={folder / '%A_%a.out'}", "--open-mode=append", "--requeue"]
        for flag, value in (
            ("--partition", self.partition),
            ("--account", self.account),
            ("--time", self.time),
            ("--cpus-per-task", self.cpus),
            ("--mem", self.mem),
        ):
            if value is not None:
                cmd.append(f"{flag}={value}")
        if self.gpus:
            cmd.append(f"--gres=gpu:{self.gpus}")
        return [*cmd, *self.sbatch_args, str(folder / "job.sh")]


def check_slurm() -> None:
    """Refuse `--executor slurm` where SLURM's client commands are missing.

    Raises:
        SweepInputError: `sbatch` or `squeue` is not on PATH.
    """
    missing = [c for c in ("sbatch", "squeue") if shutil.which(c) is None]
    if missing:
        raise SweepInputError(
            f"--executor slurm needs SLURM's {' and '.join(missing)} on PATH; run the sweep on a node that submits jobs"
        )


# --------------------------------------------------------------------------------------------------------------------
# paths


def slurm_dir(results_dir: Path) -> Path:
    """Where a sweep's SLURM bookkeeping lives."""
    return results_dir / "slurm"


def job_path(results_dir: Path, key: str) -> Path:
    """The file naming run `key`'s current job."""
    return slurm_dir(results_dir) / "runs" / f"{key}.json"


def progress_path(results_dir: Path, key: str) -> Path:
    """Where run `key`'s job reports its progress."""
    return slurm_dir(results_dir) / "runs" / f"{key}.progress.json"


@contextlib.contextmanager
def submit_lock(results_dir: Path) -> Any:
    """Hold the sweep's submit lock (blocking): one driver at a time decides and submits."""
    path = slurm_dir(results_dir) / "submit.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_storage(results_dir: Path) -> None:
    """Check that the results directory takes what jobs on other nodes do there: a lock, an atomic rename.

    A lock that fails outright (NFSv3 without lockd: ENOLCK) is refused. A mount whose locks stay on each node
    (`lock_problem`) is only warned about: this node cannot see the others, and such locks still keep two jobs on
    one node apart.

    Raises:
        StorageError: `flock` is refused, or a file cannot be written and renamed.
    """
    folder = slurm_dir(results_dir)
    probe = folder / f".probe-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(probe, "probe\n")
        with open(probe) as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError as err:
        raise StorageError(
            f"{folder}: cannot lock and rename files there ({err.strerror or err}); SLURM jobs need shared storage "
            "with working locks (NFSv4, or NFSv3 with lockd and statd running)"
        ) from err
    finally:
        probe.unlink(missing_ok=True)
    mount = mount_of(folder)
    problem = lock_problem(*mount[1:]) if mount else None
    if problem:
        warnings.warn(
            f"{folder} is on {mount[1]} mounted at {mount[0]} with {problem}: run locks do not reach other nodes, "
            "so two jobs of one run on different nodes would not keep each other out",
            YoloabWarning,
            stacklevel=2,
        )


def mount_of(path: Path, mounts: str | None = None) -> tuple[str, str, str] | None:
    """The mount holding `path`, as (mount point, file system type, options), from `/proc/mounts` (Linux), or None."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = str(path.resolve())
    best = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point = fields[1].replace("\\040", " ")
        inside_it = target == point or target.startswith(point.rstrip("/") + "/")
        if inside_it and (best is None or len(point) >= len(best[0])):  # the last, deepest mount wins
            best = (point, fields[2], fields[3])
    return best


def lock_problem(fstype: str, options: str) -> str | None:
    """Why `flock` locks on a mount stay on each node, or None where they reach the server (or it is local).

    NFS: `nolock`, `local_lock=flock` or `local_lock=all` keep them on the client (NFSv4 and NFSv3 with lockd
    otherwise carry `flock` to the server as POSIX locks). Lustre: cluster-wide only with the `flock` mount option.
    BeeGFS: only with `tuneUseGlobalFileLocks` in its client configuration, which the mount does not show.
    """
    opts = set(options.split(","))
    if fstype.startswith("nfs"):
        local = sorted(opts & {"nolock", "local_lock=flock", "local_lock=all"})
        return f"'{local[0]}'" if local else None
    if fstype == "lustre" and "flock" not in opts:
        return "'localflock'" if "localflock" in opts else "no 'flock' option"
    if fstype == "beegfs":
        return "BeeGFS's node-local locks unless tuneUseGlobalFileLocks is set"
    return None


# --------------------------------------------------------------------------------------------------------------------
# what SLURM says


def _slurm(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SchedulerError(f"{cmd[0]} did not answer: {err}") from err


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def job_states(job_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Each job's state and reason, `{'12_3': ('RUNNING', 'None')}`, from `squeue` then `sacct`.

    `squeue --states=all` still lists a job for `MinJobAge` seconds after it ended (its end state: TIMEOUT,
    CANCELLED, NODE_FAIL...); `sacct` knows older ones where the cluster keeps accounting. A job neither knows is
    left out.

    Raises:
        SchedulerError: `squeue` fails (the controller does not answer).
    """
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    arrays = sorted({i.split("_", 1)[0] for i in ids})
    query = ["squeue", "--noheader", "--array", "--states=all", f"--jobs={','.join(arrays)}", "--format=%i|%T|%r"]
    done = _slurm(query)
    if done.returncode != 0 and "Invalid job id" not in done.stderr:  # every id forgotten: squeue says so, rc 1
        raise SchedulerError(f"squeue failed: {_last_line(done.stderr) or f'exit code {done.returncode}'}")
    states: dict[str, tuple[str, str]] = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    missing = [i for i in ids if i not in states]
    if missing and shutil.which("sacct"):
        states.update(_sacct(missing))
    return {i: states[i] for i in ids if i in states}


def _sacct(ids: list[str]) -> dict[str, tuple[str, str]]:
    """End states from SLURM's accounting, or {} where the cluster keeps none ('accounting storage is disabled')."""
    done = _slurm(["sacct", "--noheader", "--parsable2", f"--jobs={','.join(ids)}", "--format=JobID,State"])
    if done.returncode != 0:
        return {}
    out = {}
    for line in done.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job in ids and state:
            out[job] = (state.split()[0], "sacct")  # `CANCELLED by 1000`
    return out


# --------------------------------------------------------------------------------------------------------------------
# the driver: look, submit, wait


@dataclass
class RunState:
    """Where one run of the sweep stands.

    Attributes:
        spec: the run.
        state: `finished` (an ok record), `failed` (a failed record; submitted again, from scratch), `queued` or
            `running` (its job, per squeue), `ended` (its job ended without a record: resubmitted, resuming),
            `new` (never submitted) or `elsewhere` (its lock is held by a process SLURM does not run for this sweep).
        job_id: its current (or last) job, or None.
        detail: SLURM's state and reason, the record's error, or the run's progress.
        record: its stored record, or None.
        submitted: whether this command submitted it.
    """

    spec: RunSpec
    state: str
    job_id: str | None = None
    detail: str = ""
    record: dict[str, Any] | None = None
    submitted: bool = False

    @property
    def needs_job(self) -> bool:
        """Whether a job should be submitted for it."""
        return self.state in ("new", "ended", "failed")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _lock_free(spec: RunSpec) -> bool:
    from ..sweep import RunLock

    lock = RunLock(spec.results_dir, spec.key)
    if not lock.acquire():
        return False
    lock.release()
    return True


def survey(specs: list[RunSpec]) -> list[RunState]:
    """Each run's state, from the store and from SLURM.

    SLURM is asked first and the records read after: a job that has left `squeue` wrote its record before it
    exited, so a run is never taken for ended while its record is being stored.
    """
    from ..results import load_run

    jobs = {s.key: (_read_json(job_path(s.results_dir, s.key)) or {}).get("job_id") for s in specs}
    states = job_states(j for j in jobs.values() if j)
    out = []
    for spec in specs:
        job = jobs[spec.key]
        slurm_state, reason = states.get(job, ("", "")) if job else ("", "")
        record = load_run(spec.results_dir, spec.key)
        said = f"{slurm_state} ({reason})" if reason not in ("", "None", "sacct") else slurm_state
        if record is not None and record.get("status") == "ok":
            state = RunState(spec, "finished", record.get("job_id") or job, "", record)
        elif slurm_state in QUEUED or slurm_state in RUNNING:
            kind = "queued" if slurm_state in QUEUED else "running"
            state = RunState(spec, kind, job, said if kind == "queued" else _progress(spec), record)
        elif not (job and slurm_state) and not _lock_free(spec):
            # (a job SLURM just ended may still be exiting, holding the lock: the next job waits for it)
            state = RunState(spec, "elsewhere", job, "its lock is held by another sweep or job", record)
        elif record is not None:
            state = RunState(spec, "failed", record.get("job_id") or job, str(record.get("error") or ""), record)
        elif job:
            state = RunState(spec, "ended", job, f"job ended without a record: {said or 'no longer known to squeue'}")
        else:
            state = RunState(spec, "new")
        out.append(state)
    return out


def _progress(spec: RunSpec) -> str:
    progress = read_progress(progress_path(spec.results_dir, spec.key))
    return f"epoch {progress['epoch']}/{progress['epochs']} done" if progress else ""


def submitted_specs(results_dir: Path) -> list[RunSpec]:
    """Every run ever submitted from `results_dir`, as its latest submission planned it (for `--status` alone).

    The submissions' `specs.pkl` are unpickled: like the checkpoints a resume loads, a results directory must be
    trusted.
    """
    latest: dict[str, RunSpec] = {}
    for folder in sorted((slurm_dir(results_dir) / "jobs").glob("*/")):
        try:
            specs = pickle.loads((folder / "specs.pkl").read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            continue  # a submission sbatch refused, or one of another yoloab version
        for spec in specs:
            latest[spec.key] = replace(spec, results_dir=results_dir)
    return list(latest.values())


def submit(runs: list[RunState], options: SlurmOptions, sweep_name: str) -> list[str]:
    """Submit one array job (per `MAX_ARRAY` runs) for `runs`, recording each run's job; returns the job ids.

    Raises:
        SchedulerError: `sbatch` refused the job (its message; nothing is left of the submission).
    """
    job_ids = []
    for start in range(0, len(runs), MAX_ARRAY):
        job_ids.append(_submit_array(runs[start : start + MAX_ARRAY], options, sweep_name))
    return job_ids


def _submit_array(runs: list[RunState], options: SlurmOptions, sweep_name: str) -> str:
    results = runs[0].spec.results_dir
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    folder = slurm_dir(results) / "jobs" / f"{stamp}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    device = options.device()
    specs = [replace(r.spec, settings=replace(r.spec.settings, device=device)) for r in runs]
    (folder / "specs.pkl").write_bytes(pickle.dumps(specs))
    write_atomic(folder / "job.sh", job_script(options, folder, sweep_name, specs))
    (folder / "job.sh").chmod(0o755)
    cmd = options.sbatch(f"yoloab-{sweep_name}", len(runs), folder)
    write_atomic(folder / "command.txt", shlex.join(cmd) + "\n")
    done = _slurm(cmd)
    array_id = done.stdout.strip().split(";")[0]  # `--parsable`: `ID` or `ID;CLUSTER`
    if done.returncode != 0 or not array_id.isdigit():
        shutil.rmtree(folder, ignore_errors=True)
        why = _last_line(done.stderr) or done.stdout.strip() or f"exit code {done.returncode}"
        raise SchedulerError(f"sbatch refused the job: {why} (command: {shlex.join(cmd)})")
    for i, run in enumerate(runs):
        job_id = f"{array_id}_{i}"
        path = job_path(results, run.spec.key)
        earlier = (_read_json(path) or {}).get("jobs") or []
        entry = {
            "key": run.spec.key,
            "label": run.spec.label,
            "job_id": job_id,
            "jobs": [*earlier, job_id],
            "submission": folder.name,
            "submitted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_atomic(path, json.dumps(entry, indent=1) + "\n")
        run.job_id, run.submitted = job_id, True
        run.detail = f"submitted ({run.state}: {run.detail})" if run.state == "ended" else "submitted"
        run.state = "queued"
    return array_id


def job_script(options: SlurmOptions, folder: Path, sweep_name: str, specs: list[RunSpec]) -> str:
    """The batch script of one submission: activate the environment, then train the array task's run."""
    lines = [
        "#!/bin/bash",
        f"# yoloab sweep {sweep_name!r}: array task i trains run i of specs.pkl ({len(specs)} runs)",
        "# written by yoloab; `sbatch` command: command.txt. Each job resumes its run from its last saved epoch.",
        "set -e",
    ]
    if options.python_env is not None:
        env = options.python_env.resolve()
        if (env / "bin" / "activate").is_file():
            lines.append(f"source {shlex.quote(str(env / 'bin' / 'activate'))}")
        else:
            lines.append(f'export PATH={shlex.quote(str(env / "bin"))}:"$PATH"')
        python = "python"
    else:
        python = shlex.quote(sys.executable)
    args = " ".join(shlex.quote(a) for a in (TASK_BOOT, str(PACKAGE_ROOT), str(folder)))
    lines.append(f"exec {python} -c {args}")
    return "\n".join(lines) + "\n"


@dataclass
class Watch:
    """What a waiting driver knows of one submitted run."""

    run: RunState
    started: bool = False
    epoch: int = 0
    retries: int = 0
    history: list[str] = field(default_factory=list)


def wait(
    runs: list[RunState],
    options: SlurmOptions,
    sweep_name: str,
    events: SweepEvents,
    stop: Callable[[], bool],
    outcome: SweepOutcome,
    note: Callable[[str], None] | None = None,
) -> list[RunState]:
    """Follow the queued and running runs until each has a record, feeding `events` as the local executor does.

    A run whose job ends without a record is resubmitted (resuming) up to `options.max_retries` times, said through
    `note`. Stopping (Ctrl-C) stops the waiting only: the jobs go on.

    Returns:
        The runs given up on (their jobs ended without a record after every retry), or left when stopped.
    """
    watching = {r.spec.key: Watch(r) for r in runs if r.state in ("queued", "running")}
    given_up: list[RunState] = []
    last_poll = time.monotonic()
    while watching:
        if stop():
            given_up.extend(w.run for w in watching.values())
            break
        for key, w in list(watching.items()):
            record = _own_record(w.run)
            if record is not None:
                if not w.started:
                    events.started(w.run.spec)
                w.run.state = "finished" if record.get("status") == "ok" else "failed"
                w.run.record = record
                del watching[key]
                outcome.records.append(record)
                events.finished(w.run.spec, record)
            else:
                _feed(w, events)
        if watching and time.monotonic() - last_poll >= SQUEUE_POLL_S:
            last_poll = time.monotonic()
            ended = _ended(watching, events)
            again = [w for w, _ in ended if w.retries < options.max_retries]
            for w, why in ended:
                w.history.append(f"{w.run.job_id}: {why}")
                if w not in again:
                    w.run.state, w.run.detail = "ended", f"job ended without a record: {'; '.join(w.history)}"
                    given_up.append(w.run)
                    del watching[w.run.spec.key]
            if again:
                _resubmit(again, options, sweep_name, note)
        time.sleep(POLL_S)
    return given_up


def _own_record(run: RunState) -> dict[str, Any] | None:
    """The run's stored record once its job (or any job) stored an ok one; a failed record from before is not it."""
    from ..results import load_run

    record = load_run(run.spec.results_dir, run.spec.key)
    if record is not None and (record.get("status") == "ok" or record.get("job_id") == run.job_id):
        return record
    return None


def _ended(watching: dict[str, Watch], events: SweepEvents) -> list[tuple[Watch, str]]:
    """The watched runs whose job has ended without storing their record, with SLURM's end state."""
    states = job_states(w.run.job_id for w in watching.values() if w.run.job_id)
    ended = []
    for w in watching.values():
        state, _ = states.get(w.run.job_id or "", ("", ""))
        if state in RUNNING and not w.started:
            w.started = True
            events.started(w.run.spec)
        if state in QUEUED or state in RUNNING:
            continue
        if _own_record(w.run) is None:  # read after squeue: see `survey`; a record stored since is taken next pass
            ended.append((w, state or "no longer known to squeue"))
    return ended


def _resubmit(again: list[Watch], options: SlurmOptions, sweep_name: str, note: Callable[[str], None] | None) -> None:
    """Submit the runs again, under the submit lock; a run another driver resubmitted meanwhile follows that job."""
    with submit_lock(again[0].run.spec.results_dir):
        todo = []
        for w in again:
            current = (_read_json(job_path(w.run.spec.results_dir, w.run.spec.key)) or {}).get("job_id")
            w.retries += 1
            w.started, w.epoch = False, 0
            if current and current != w.run.job_id:
                w.run.job_id = current
            else:
                w.run.state = "ended"
                todo.append(w.run)
        if not todo:
            return
        submit(todo, options, sweep_name)
    for w in again:
        if note is not None and w.run in todo:
            old, _, why = w.history[-1].partition(": ")
            note(
                f"{w.run.spec.label}: job {old} ended without a record ({why}); resubmitted as {w.run.job_id}, "
                "resuming from its last saved epoch"
            )


def _feed(w: Watch, events: SweepEvents) -> None:
    """Forward a job's progress file to the live display."""
    progress = read_progress(progress_path(w.run.spec.results_dir, w.run.spec.key))
    if progress is None:
        return
    spec = w.run.spec
    if not w.started:
        w.started = True
        events.started(spec)
    if progress.get("metrics") and hasattr(events, "metrics"):
        events.metrics(spec, progress["metrics"])
    if progress["epoch"] != w.epoch:
        w.epoch = progress["epoch"]
        events.epoch(spec, progress["epoch"], progress["epochs"])
    if progress.get("batch") and hasattr(events, "batch"):
        events.batch(spec, *progress["batch"])


def slurm_sweep(
    specs: list[RunSpec],
    options: SlurmOptions,
    events: SweepEvents,
    detach: bool = False,
    status_only: bool = False,
    on_submitted: Callable[[list[RunState], list[str]], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[SweepOutcome, list[RunState]]:
    """Submit the runs that need a job, then (unless detached) wait for them.

    Args:
        specs: the planned runs.
        options: `sbatch` options.
        events: the live display (the local executor's).
        detach: submit and return.
        status_only: look and return, submitting nothing (`--status`).
        on_submitted: called with every run's state and the new job ids once submitted (before waiting).
        note: receives a line for each run resubmitted while waiting.

    Returns:
        The outcome (records stored by jobs while waiting, runs already `ok`, runs left) and each run's state.

    Raises:
        UnsafePathError: a run's path under the results directory is a symlink (before anything is written).
        SchedulerError: `squeue` or `sbatch` failed.
    """
    from ..sweep import SweepOutcome, check_paths, graceful_interrupt

    outcome = SweepOutcome()
    if not specs:
        return outcome, []
    results = specs[0].results_dir
    for spec in specs:  # every path a job or this driver writes, before anything is
        check_paths(spec)
        inside(results, job_path(results, spec.key), "SLURM job file")
        inside(results, progress_path(results, spec.key), "SLURM progress file")
    inside(results, slurm_dir(results) / "jobs", "SLURM submissions folder")
    inside(results, slurm_dir(results) / "submit.lock", "SLURM submit lock")
    if status_only:
        return outcome, survey(specs)
    check_storage(results)
    with submit_lock(results):
        runs = survey(specs)
        todo = [r for r in runs if r.needs_job]
        job_ids = submit(todo, options, specs[0].sweep) if todo else []
    for r in runs:
        if r.state == "finished":
            outcome.skipped.append(r.record)
            events.skipped(r.spec, r.record)
    if on_submitted is not None:
        on_submitted(runs, job_ids)
    live = [r for r in runs if r.state in ("queued", "running")]
    if detach or not live:
        outcome.pending.extend(r.spec for r in live)
        return outcome, runs
    with graceful_interrupt(events.stopping) as stop:
        left = wait(live, options, specs[0].sweep, events, stop, outcome, note)
        outcome.interrupted = stop()
    outcome.pending.extend(r.spec for r in left)
    return outcome, runs


# --------------------------------------------------------------------------------------------------------------------
# the job


class JobSignalled(KeyboardInterrupt):
    """SLURM asked the job to end (SIGTERM: time limit, scancel, preemption).

    A KeyboardInterrupt, so that no `except Exception` inside Ultralytics or torch swallows it.
    """


def job_id_from_env(env: dict[str, str] | None = None) -> str | None:
    """The running job's id as squeue names it: `ARRAY_TASK` for an array task, else the job id; None outside SLURM."""
    env = os.environ if env is None else env
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def task_main(argv: list[str]) -> int:
    """Entry of a job: train run number `SLURM_ARRAY_TASK_ID` of the submission folder `argv[0]`, store its record.

    Returns:
        0 when the run has an `ok` record (now or before), 1 when it failed, 143 when SIGTERM stopped it (no record:
        it resumes from its last saved epoch when resubmitted or requeued), 75 when another process held its lock
        for `LOCK_WAIT_S` seconds.
    """
    from ..errors import SweepInterrupted
    from ..results import load_run, run_path, val_stats_path
    from ..safepaths import tree_inside
    from ..sweep import RunLock, record_run
    from ..training import DISK_FULL
    from ..worker import run_in_worker

    folder = Path(argv[0])
    specs: list[RunSpec] = pickle.loads((folder / "specs.pkl").read_bytes())
    spec = specs[int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))]
    job_id = job_id_from_env()
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    print(f"yoloab: job {job_id} (restart {restarts}): {spec.label}, log: {spec.log_path}", flush=True)
    lock = RunLock(spec.results_dir, spec.key)
    deadline = time.monotonic() + LOCK_WAIT_S
    while not lock.acquire():  # the job this one replaces may still be exiting (SIGTERM, then KillWait)
        if time.monotonic() > deadline:
            print(f"yoloab: {spec.label}: its lock is held by another process; nothing done", flush=True)
            return 75
        time.sleep(1.0)
    stopping: list[int] = []

    def on_term(signum: int, frame: Any) -> None:
        stopping.append(signum)
        raise JobSignalled(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        record = load_run(spec.results_dir, spec.key)
        if record is not None and record.get("status") == "ok":
            print(f"yoloab: {spec.label} already has an ok record; nothing done", flush=True)
            return 0
        if record is not None and not str(record.get("error") or "").startswith(DISK_FULL):
            # a failed run trains again from scratch, as locally; its old record goes now, so that a requeue of this
            # job (or a resubmission) resumes what this one saves instead of starting over once more
            shutil.rmtree(tree_inside(spec.results_dir, spec.run_dir, "run directory"), ignore_errors=True)
            val_stats_path(spec.results_dir, spec.key).unlink(missing_ok=True)
            run_path(spec.results_dir, spec.key).unlink(missing_ok=True)
        progress = progress_path(spec.results_dir, spec.key)
        with _output_to(spec.log_path):
            record = run_in_worker(spec, progress, lambda: bool(stopping))
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the record is whole: storing it takes milliseconds
        record["job_id"] = job_id
        record_run(spec, record)
        progress.unlink(missing_ok=True)
    except (JobSignalled, SweepInterrupted):
        print(f"yoloab: {spec.label} stopped by SIGTERM; it resumes from its last saved epoch", flush=True)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        lock.release()
    print(f"yoloab: {spec.label}: {record['status']}", flush=True)
    return 0 if record["status"] == "ok" else 1


@contextlib.contextmanager
def _output_to(log: Path) -> Any:
    """Send this process's stdout and stderr (Ultralytics' lines, torch's warnings) to the run's log, then back."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
