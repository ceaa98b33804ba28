"""Option aliases shared by every command, so that the same flag means the same thing everywhere."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import OptionValueError
from ..plugins import load_plugin

Plugins = Annotated[
    list[Path] | None,
    typer.Option("--plugin", help="Python file registering extra modules (repeatable).", show_default=False),
]
Models = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="Base model name, e.g. yolov8n, yolo11s or yolo11n.pt (repeatable; none: yolov8n).",
        show_default=False,
    ),
]
Modules = Annotated[
    list[str] | None,
    typer.Option(
        "--module",
        help="Registered module or all; RevCol-small etc. pick a size (repeatable; none: baselines only).",
        show_default=False,
    ),
]
DEFAULT_LOSS = "CIoU"  # yoloab.losses.DEFAULT_LOSS, repeated so that `--help` does not import torch
Losses = Annotated[
    list[str] | None,
    typer.Option(
        "--loss",
        help="Box loss, crossed with the variants (repeatable; the default CIoU is always trained too): SIoU, "
        "WIoUv3, Inner-CIoU, ... (docs/losses.md).",
        show_default=DEFAULT_LOSS + ", Ultralytics' own",
    ),
]
PlacementOpt = Annotated[
    str, typer.Option("--placement", "-p", help="article | all | backbone | head | row indices such as 1,3,16.")
]
Yamls = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Model yaml files, used as given; a base model yaml Ultralytics ships (yolo11n.yaml) is that base model.",
        show_default=False,
    ),
]


def _check_nc(value: int | None) -> int | None:
    """Refuse `--nc` below 1 while the options are read: before plugins load, models build or files are written.

    Raises:
        OptionValueError: a class count below 1.
    """
    if value is not None and value < 1:
        raise OptionValueError(f"--nc {value} must be at least 1 (or left out: the yaml's nc)")
    return value


Nc = Annotated[int | None, typer.Option("--nc", help="Number of classes (default: the yaml's nc).", callback=_check_nc)]
PretrainedOpt = Annotated[
    Path | None,
    typer.Option(
        "--pretrained",
        help="Checkpoint of the base model (.pt): its weights seed every layer whose name and shape match.",
        show_default=False,
    ),
]
BackboneWeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--backbone-weights",
        help="State dict of the swapped-in backbone (timm/PyTorch .pth/.pt/.bin or .safetensors): seeds timm-<model>.",
        show_default=False,
    ),
]
Results = Annotated[Path, typer.Option("--results", help="Results directory (records for `report`).")]


def load_plugins(plugins: list[Path] | None) -> None:
    """Import every `--plugin` file before anything else is resolved."""
    for path in plugins or []:
        load_plugin(path)


def make_console() -> Console:
    """A Rich console for tables.

    When stdout is not a terminal (a pipe, a log file, CI) it is wide enough that tables keep one line per row
    instead of wrapping at Rich's default 80 columns, unless `COLUMNS` sets the width.
    """
    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return console
    return Console(width=max(console.width, 200))
