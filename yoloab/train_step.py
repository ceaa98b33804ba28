"""Training cost: one training step per variant, timed like latency (`yoloab profile --train-step`).

A step is what Ultralytics' trainer does per batch minus the optimizer: the model in train mode, forward at the
profile's batch on a fixed synthetic batch of images and boxes, Ultralytics' own detection loss (`model.loss(batch)`,
the criterion its trainer uses: `v8DetectionLoss`, or `E2ELoss` for end-to-end heads such as YOLOv10's and
YOLO26's, with the trainer's default gains from `ultralytics/cfg/default.yaml` as `model.args`) and the backward to
every parameter. The variants' steps are timed in interleaved rounds by `yoloab.timing.interleaved_latency`, as
latency is, so that a busy machine slows all of them alike; each record gets:

- `train_step_ms`, `train_step_iqr_ms`: median and interquartile range of the step, in ms;
- `train_step_batch`: the batch it ran at;
- `mem_train_step_mb`: peak `torch.cuda.max_memory_allocated` over one step (weights, gradients, activations), in
  MiB, on CUDA. On CPU PyTorch keeps no such peak, so it is None and `train_step_note` says so;
- `train_step_error`: why a variant's step could not run (its timing is None), when it could not.

The models are copies: the counted models are not changed (no gradients, no criterion left on them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Iterable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .timing import interleaved_latency

if TYPE_CHECKING:
    from .profiling import ProfileSettings

__all__ = [
    "BOXES_PER_IMAGE",
    "CPU_MEMORY_NOTE",
    "TRAIN_STEP_COLUMNS",
    "measure_train_steps",
    "step_runner",
    "synthetic_batch",
    "table_columns",
]

BOXES_PER_IMAGE = 4
"""Objects per synthetic image: enough for the assigner to match anchors on every level, few enough to stay cheap."""
CPU_MEMORY_NOTE = "peak training memory is measured on CUDA only: PyTorch keeps no peak of CPU allocations"
ALWAYS_FROZEN = (".dfl",)
"""Parameter names Ultralytics' trainer never trains (`BaseTrainer._setup_train`: the DFL head's fixed projection)."""
TRAIN_STEP_COLUMNS = ("train_step_ms", "mem_train_step_mb")
"""The table columns of a train-step measurement, shown by `yoloab profile --train-step` without `--columns`."""


def synthetic_batch(batch: int, imgsz: int, nc: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed batch in the form Ultralytics' detection loss reads: images and `BOXES_PER_IMAGE` labelled boxes each.

    Args:
        batch: images.
        imgsz: square image size.
        nc: class count; labels are drawn from range(nc).
        device: where the tensors live.
        seed: the same seed gives the same batch.

    Returns:
        `img` (batch, 3, imgsz, imgsz) in [0, 1]; `batch_idx` (n,), `cls` (n, 1) and `bboxes` (n, 4) as normalised
        centre-x, centre-y, width, height, every box inside its image; n = batch * BOXES_PER_IMAGE.
    """
    g = torch.Generator().manual_seed(seed)
    n = batch * BOXES_PER_IMAGE
    wh = 0.1 + 0.4 * torch.rand(n, 2, generator=g)  # 10-50% of the image: objects on every detection level
    centre = wh / 2 + (1 - wh) * torch.rand(n, 2, generator=g)  # the whole box inside the image
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=g).to(device),
        "batch_idx": torch.arange(batch).repeat_interleave(BOXES_PER_IMAGE).float().to(device),
        "cls": torch.randint(0, nc, (n, 1), generator=g).float().to(device),
        "bboxes": torch.cat([centre, wh], dim=1).to(device),
    }


def trainable_copy(model: nn.Module, device: torch.device) -> nn.Module:
    """A float copy of a built detection model in train mode, set up as the trainer does.

    Its `args` are the trainer's defaults (the criterion reads the box, cls and dfl gains from them), and every
    floating-point parameter requires a gradient except those the trainer always freezes (`ALWAYS_FROZEN`).
    """
    from ._ultralytics import trainer_defaults

    twin = copy.deepcopy(model).to(device).float().train()
    twin.args = SimpleNamespace(**trainer_defaults())  # what the trainer sets: the criterion reads box/cls/dfl gains
    twin.criterion = None  # built by the first `loss` call, on this copy and device
    for name, p in twin.named_parameters():  # as the trainer: every float parameter trains except the DFL's fixed one
        p.requires_grad_(p.dtype.is_floating_point and not any(frozen in name for frozen in ALWAYS_FROZEN))
    return twin


def step_runner(model: nn.Module, batch: dict[str, torch.Tensor], half: bool = False) -> Callable[[], torch.Tensor]:
    """One training step of `model` on `batch` as a call: zero the gradients, forward with the loss, backward.

    Args:
        model: a trainable copy (`trainable_copy`).
        batch: a batch from `synthetic_batch`.
        half: mixed precision, as the trainer's AMP (CUDA only).

    Returns:
        The call; it returns the summed loss, a tensor (reading it would wait for the device).
    """
    device_type = batch["img"].device.type

    def run() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device_type, enabled=half):
            loss, _ = model.loss(batch)
        total = loss.sum()  # the trainer's scalar: the criterion returns (box, cls, dfl) times the batch size
        total.backward()
        return total

    return run


def _peak_cuda_mb(run: Callable[[], Any], device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    run()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def measure_train_steps(
    models: dict[str, nn.Module],
    records: list[dict[str, Any]],
    device: torch.device,
    settings: ProfileSettings,
    on_step: Callable[[str, dict[str, Any] | None], None] | None = None,
) -> None:
    """Time one training step of every record's model, interleaved, and fill in the record's train-step fields.

    Args:
        models: built, unfused models by variant name (they are copied, not changed).
        records: the records to fill in (each names its model in `variant`); one model listed twice is timed once.
        device: the profile's device.
        settings: resolved profile settings (`batch`, `imgsz`, `half`, and the timing protocol).
        on_step: told `train step <variant>` after each warm-up and interleaved slot, like latency's steps.
    """
    names = list(dict.fromkeys(r["variant"] for r in records))
    runners: dict[Hashable, Callable[[], Any]] = {}
    errors: dict[str, str] = {}
    for name in names:
        model = models[name]
        nc = getattr(model, "nc", None) or model.yaml.get("nc") or 1
        batch = synthetic_batch(settings.batch or 1, settings.imgsz, int(nc), device)
        try:
            run = step_runner(trainable_copy(model, device), batch, half=settings.half and device.type == "cuda")
            loss = run()  # a step that cannot run is said once, here, not in the middle of the timing
            if not torch.isfinite(loss):
                raise ValueError(f"the loss is {loss.item()}")
        except (RuntimeError, ValueError, NotImplementedError, AttributeError, TypeError) as err:
            errors[name] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".strip()
            continue
        runners[name] = run

    def step(name: Hashable) -> None:
        if on_step is not None:
            on_step(f"train step {name}", None)

    timed = interleaved_latency(runners, device, settings, step)
    peaks = {name: _peak_cuda_mb(run, device) for name, run in runners.items()} if device.type == "cuda" else {}
    for record in records:
        name = record["variant"]
        med, iqr = (t * 1e3 for t in timed[name]) if name in timed else (None, None)
        record.update(
            train_step_ms=med,
            train_step_iqr_ms=iqr,
            train_step_batch=settings.batch or 1,
            mem_train_step_mb=peaks.get(name),
        )
        if device.type != "cuda":
            record["train_step_note"] = CPU_MEMORY_NOTE
        if name in errors:
            record["train_step_error"] = errors[name]


def train_step_steps(measured: int, settings: ProfileSettings) -> int:
    """How many `on_step` calls `measure_train_steps` makes for `measured` variants: a warm-up and `rounds` slots."""
    return measured * (1 + settings.rounds) if getattr(settings, "train_step", False) else 0


def table_columns(records: Iterable[dict[str, Any]], chosen: list[str] | None) -> list[str] | None:
    """The columns of `yoloab profile`'s table: `chosen` when given, else the default ones plus the train-step ones.

    The train-step columns (`TRAIN_STEP_COLUMNS`) are not default columns, so that the report shows them only when
    `--columns` names them; the profile that measured them shows them (when a record has a train-step time).
    """
    from .report.metrics import PROFILE_COMMAND, metrics_for

    records = list(records)
    if chosen is not None or not any(r.get("train_step_ms") is not None for r in records):
        return chosen
    return [m.key for m in metrics_for(PROFILE_COMMAND, records, TRAIN_STEP_COLUMNS)]
