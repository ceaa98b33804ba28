"""Whether a measurement fits in memory, decided before it starts: a floor of what one forward pass needs.

The floor (input plus the largest layer output, at the batch size) comes from one pass on the meta device, so even an
absurd `--imgsz` costs nothing to check; it is compared with the free memory of the device (CUDA) or the available
RAM (CPU), and a size that cannot fit is refused with the estimate instead of failing deep inside PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import ProfileInputError
from .flops import on_meta

if TYPE_CHECKING:  # `yoloab.profiling` calls into this module: its types only, no import at run time
    from .profiling import ProfileSettings


def _numel(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (list, tuple)):
        return sum(_numel(v) for v in value)
    if isinstance(value, dict):
        return sum(_numel(v) for v in value.values())
    return 0


def activation_floor_bytes(model: nn.Module, imgsz: int, batch: int, half: bool) -> int | None:
    """Bytes one forward pass at `batch` cannot do without: its input plus the largest layer output.

    Measured on the meta device (no memory, no arithmetic); a lower bound, since other activations live alongside.
    None where the model cannot run on meta.
    """
    largest = [0]

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        largest[0] = max(largest[0], _numel(output))

    hooks = [m.register_forward_hook(hook) for m in getattr(model, "model", [])]
    try:
        with on_meta(model.eval()) as target, torch.no_grad():
            target(torch.zeros(1, 3, imgsz, imgsz, device="meta"))
    except Exception:  # an op without a meta kernel: no estimate, the measurement itself will tell
        return None
    finally:
        for h in hooks:
            h.remove()
    return batch * (2 if half else 4) * (3 * imgsz * imgsz + largest[0])


def free_memory_bytes(device: torch.device) -> int | None:
    """Memory a measurement can still take on `device` (CUDA: free device memory; CPU: available RAM)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        import psutil

        return psutil.virtual_memory().available
    except Exception:
        return None


def check_memory(models: dict[str, nn.Module], device: torch.device, settings: ProfileSettings) -> None:
    """Refuse an image size and batch whose single forward pass cannot fit in the device's free memory.

    Raises:
        ProfileInputError: with the estimate and what is free.
    """
    free = free_memory_bytes(device)
    if free is None:
        return
    for name, model in models.items():
        need = activation_floor_bytes(model, settings.imgsz, settings.batch, settings.half)
        if need is not None and need > free:
            raise ProfileInputError(
                f"--imgsz {settings.imgsz} at --batch {settings.batch}: {name} needs at least {need / 2**30:.1f} GiB "
                f"for one forward pass (input plus its largest layer output); {device} has {free / 2**30:.1f} GiB "
                "free. Lower --imgsz or --batch, or use --no-latency"
            )
