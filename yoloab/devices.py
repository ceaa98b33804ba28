"""Devices: what `--device` names, whether this machine has it, and its readable name for the records."""

from __future__ import annotations

import platform

import torch

from .errors import ProfileInputError


def resolve_device(spec: str) -> torch.device:
    """Turn `auto|cpu|cuda|cuda:N` into a device, checking that it exists.

    Raises:
        ProfileInputError: unknown spec or a CUDA device that is not present.
    """
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise ProfileInputError(f"unknown device '{spec}'; expected auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda":
        n = torch.cuda.device_count()
        if n == 0 or (device.index or 0) >= n:
            raise ProfileInputError(f"device '{spec}' is not available; this machine has {n} CUDA device(s)")
    elif device.type != "cpu":
        raise ProfileInputError(f"unsupported device '{spec}'; expected auto, cpu, cuda or cuda:N")
    return device


def ultralytics_device(spec: str) -> str | None:
    """Turn `--device auto|cpu|cuda:N|N[,M...]` into Ultralytics' device argument, checking the devices exist.

    Raises:
        ProfileInputError: an unknown device or one this machine does not have.
    """
    if spec in ("auto", "cpu"):
        resolve_device(spec)
        return None if spec == "auto" else "cpu"
    parts = ["0" if p.strip() == "cuda" else p.strip().removeprefix("cuda:") for p in spec.split(",")]
    for part in parts:
        if not part.isdigit():
            raise ProfileInputError(f"unknown device '{spec}'; expected auto, cpu, cuda:N or N[,M...]")
        resolve_device(f"cuda:{part}")
    return ",".join(parts)


def device_name(device: torch.device) -> str:
    """A readable name of the device."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
