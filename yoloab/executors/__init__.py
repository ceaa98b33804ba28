"""Executors that train a sweep's runs elsewhere than in the driver's process, one module each.

- `local`: one subprocess per listed device (`--devices 0,1`).
- `ray`: one Ray task per run, on a local instance or a cluster (`--executor ray`).
- `slurm`: one SLURM job per run, as a job array (`--executor slurm`); jobs store their own records, so the driver
  can detach.
- `common`: what they share (workers that die with their driver, device pinning, the files a worker hands back).

The local and Ray executors only train and hand records back; the driver (`yoloab.sweep.run_sweep`) alone skips,
locks and stores, so resuming, skipping and failure records behave exactly as with the in-process executor.
"""

from __future__ import annotations

from typing import Any

from ..errors import SweepInputError
from .common import POLL_S, failed_record, pinned
from .local import DevicesExecutor, parse_devices
from .ray import RAY_TIMEOUT_ENV, RAY_TIMEOUT_S, RayExecutor, ray_timeout
from .slurm import SlurmOptions, check_slurm

__all__ = [
    "POLL_S",
    "RAY_TIMEOUT_ENV",
    "RAY_TIMEOUT_S",
    "DevicesExecutor",
    "RayExecutor",
    "SlurmOptions",
    "failed_record",
    "make_executor",
    "parse_devices",
    "pinned",
    "ray_timeout",
]


def make_executor(
    kind: str,
    devices: str | None,
    address: str | None,
    gpus_per_run: float | None,
    max_retries: int,
    device: str,
    slurm: dict[str, Any] | None = None,
) -> Any:
    """The executor `--executor`/`--devices` ask for (None: this process), rejecting options that do not go together.

    A Ray cluster named by `address` is joined here, so that one that cannot be reached is refused before anything
    is written; a local Ray instance starts when the sweep does. For SLURM the answer is the checked `SlurmOptions`
    (the sweep then goes through `yoloab.executors.slurm.slurm_sweep`).

    Args:
        kind: `local`, `ray` or `slurm`.
        devices: `--devices`.
        address: `--address` (Ray).
        gpus_per_run: `--gpus-per-run` (Ray, SLURM).
        max_retries: `--max-retries` (Ray, SLURM).
        device: `--device`.
        slurm: the SLURM options by flag (`{"--partition": "gpu", "--time": None, ...}`; None or unset: not given).

    Raises:
        SweepInputError: an option of another executor, a device conflict, a Ray cluster that cannot be reached, or
            SLURM options `sbatch` would refuse.
    """
    given = {flag: value for flag, value in (slurm or {}).items() if value not in (None, False, (), [])}
    if kind == "slurm":
        return _slurm_options(devices, address, gpus_per_run, max_retries, device, slurm or {})
    for flag in given:
        raise SweepInputError(f"{flag} needs --executor slurm")
    if kind == "ray":
        if devices is not None:
            raise SweepInputError("--devices is for the local executor; Ray places runs on the cluster's GPUs itself")
        if device != "auto":
            raise SweepInputError("--device is for the local executor; with Ray use --gpus-per-run")
        executor = RayExecutor(address, gpus_per_run, max_retries)
        if address is not None:  # a cluster that cannot be reached is refused before the results directory is touched
            executor._connect()
        return executor
    if address is not None:
        raise SweepInputError("--address needs --executor ray")
    if gpus_per_run is not None:
        raise SweepInputError("--gpus-per-run needs --executor ray or --executor slurm")
    if devices is None:
        return None
    if device != "auto":
        raise SweepInputError("give either --device (one run at a time) or --devices (one run per device), not both")
    return DevicesExecutor(parse_devices(devices))


def _slurm_options(
    devices: str | None,
    address: str | None,
    gpus_per_run: float | None,
    max_retries: int,
    device: str,
    flags: dict[str, Any],
) -> SlurmOptions:
    """The checked `sbatch` options of `--executor slurm`."""
    from pathlib import Path

    if devices is not None:
        raise SweepInputError("--devices is for the local executor; SLURM gives each job its GPUs (--gpus-per-run)")
    if device != "auto":
        raise SweepInputError("--device is for the local executor; with SLURM use --gpus-per-run")
    if address is not None:
        raise SweepInputError("--address needs --executor ray")
    gpus = 0 if gpus_per_run is None else gpus_per_run
    if gpus != int(gpus):
        raise SweepInputError(f"--gpus-per-run {gpus_per_run:g}: SLURM gives whole GPUs; expected 0, 1, 2...")
    env = flags.get("--python-env")
    options = SlurmOptions(
        partition=flags.get("--partition"),
        account=flags.get("--account"),
        time=flags.get("--time"),
        gpus=int(gpus),
        cpus=flags.get("--cpus-per-run"),
        mem=flags.get("--mem-per-run"),
        sbatch_args=tuple(flags.get("--sbatch-arg") or ()),
        python_env=Path(env).expanduser().resolve() if env else None,
        max_retries=max_retries,
    )
    options.check()
    check_slurm()
    return options
