"""Pretrained weights carried into variants: which tensors of a base model's checkpoint each variant can reuse.

A tensor of the checkpoint is carried into a variant when the variant has a tensor of the same name and shape, the
rule of Ultralytics' own `intersect_dicts` transfer (a swapped row has other names or shapes, so it starts fresh).
For a backbone swap (RevCol) the rows after the backbone move to new indices; the checkpoint's names are moved with
them first (`Variant.row_map`), so the SPPF and the whole head are carried over too. An attention variant's row map
covers every base row, so every tensor of the base model is carried into it. A block variant keeps each host's
cv1/cv2 and takes nothing from the base's inner blocks (`model.<row>.m.*`), which it replaced.

Counts follow Ultralytics' "Transferred N/M items" line: `transferred_tensors` / `total_tensors` count state_dict
entries (parameters and BatchNorm buffers); `transferred_params` / `params` count learnable parameters. A row is
*fresh* when none of its tensors came from the checkpoint, *partial* when some did (a DWConv row keeps the base
Conv's BatchNorm, a Detect head trained for another class count keeps all but its class convs).

A checkpoint is accepted only for variants of the base model it was trained from (same rows and scale); the number
of classes may differ.

`--backbone-weights FILE` (a timm/PyTorch state dict, `.pth`/`.pt`/`.bin`, or `.safetensors`) seeds the backbone of
a backbone swap (`timm-<model>`, RevCol) by the names the backbone has on its own: for a timm backbone the names of
`timm.create_model(model).state_dict()`, which timm's feature wrapper may have renamed (`stages.0` -> `stages_0`).
Every tensor of the backbone must be in the file with its shape; the first that is not is named, before anything is
built or written. Both files go into the seeding's identity (`Pretrained.sha256`, part of each run key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._ultralytics import intersect_dicts, read_checkpoint
from .errors import PretrainedError, UltralyticsCompatError, UnsafeCheckpointError
from .hashing import file_sha256 as _sha256
from .meta_device import meta_device
from .models import get_base_model, scale_gains
from .variants import Variant, build

__all__ = [
    "Pretrained",
    "backbone_tensor_names",
    "read_state_dict",
    "Transfer",
    "check_pretrained",
    "load_source",
    "seeded_model",
    "summary_line",
    "transfer_all",
    "transfer_into",
]


@dataclass(frozen=True)
class Pretrained:
    """What seeds the variants: a checkpoint named by `--pretrained` and/or `--backbone-weights`, by content.

    Attributes:
        path: absolute path of the checkpoint ('' with `--backbone-weights` alone).
        sha256: the seeding's identity (part of each run key): the checkpoint's SHA-256; with backbone weights, the
            SHA-256 over both files' SHA-256.
        backbone_path: absolute path of the `--backbone-weights` file ('' without).
        backbone_sha256: its SHA-256.
        checkpoint_sha256: the checkpoint's own SHA-256 where `sha256` is not it (with backbone weights).
    """

    path: str
    sha256: str
    backbone_path: str = ""
    backbone_sha256: str = ""
    checkpoint_sha256: str = ""

    def record(self) -> dict[str, Any]:
        """The record's `pretrained` value (with a `backbone_weights` mapping where they were given)."""
        if not self.backbone_path:
            return {"path": self.path, "sha256": self.sha256}
        return {
            "path": self.path or None,
            "sha256": self.checkpoint_sha256 or None,
            "backbone_weights": {"path": self.backbone_path, "sha256": self.backbone_sha256},
        }


@dataclass
class Transfer:
    """What one variant received from a checkpoint.

    Attributes:
        variant: the variant's name.
        source: file name of the checkpoint.
        transferred_tensors: state_dict entries copied from the checkpoint.
        total_tensors: state_dict entries of the variant.
        transferred_params: learnable parameters copied.
        total_params: learnable parameters of the variant.
        fresh_rows: rows none of whose tensors were copied.
        partial_rows: rows some but not all of whose tensors were copied.
    """

    variant: str
    source: str
    transferred_tensors: int
    total_tensors: int
    transferred_params: int
    total_params: int
    fresh_rows: list[int] = field(default_factory=list)
    partial_rows: list[int] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The keys this transfer adds to a profile or run record."""
        return {
            "transferred_tensors": self.transferred_tensors,
            "total_tensors": self.total_tensors,
            "transferred_params": self.transferred_params,
            "fresh_rows": list(self.fresh_rows),
            "partial_rows": list(self.partial_rows),
        }

    def line(self) -> str:
        """`yolov8n-ADown-all: 312/355 tensors, 2.41M/2.74M parameters from yolov8n.pt; fresh rows 1, 3`."""
        return summary_line(
            {"variant": self.variant, "params": self.total_params, "pretrained": {"path": self.source}, **self.record()}
        )


def summary_line(record: dict[str, Any]) -> str:
    """The one-line transfer summary of a profile or run record that has the transfer keys."""
    fresh = ", ".join(map(str, record["fresh_rows"])) or "none"
    seed = record["pretrained"]
    sources = [Path(seed["path"]).name] if seed.get("path") else []
    if isinstance(seed.get("backbone_weights"), dict):
        sources.append(f"{Path(seed['backbone_weights']['path']).name} (backbone)")
    text = (
        f"{record['variant']}: {record['transferred_tensors']}/{record['total_tensors']} tensors, "
        f"{record['transferred_params'] / 1e6:.2f}M/{record['params'] / 1e6:.2f}M parameters "
        f"from {' + '.join(sources)}; fresh rows {fresh}"
    )
    if record.get("partial_rows"):
        text += f"; partly transferred rows {', '.join(map(str, record['partial_rows']))}"
    return text


def _architecture(d: dict[str, Any]) -> str:
    """Rows and effective depth/width/max-channels of a model dict, as parse_model would read them (nc left out)."""
    return json.dumps([d.get("backbone"), d.get("head"), scale_gains(d)], sort_keys=True, default=str)


def _load(path: Path) -> nn.Module:
    if not path.is_file():
        raise PretrainedError(f"--pretrained {path}: no such file; expected an Ultralytics .pt checkpoint")
    try:
        model = read_checkpoint(path)  # the safe unpickler: a --pretrained file is never trusted
    except UnsafeCheckpointError as err:
        shown = ", ".join(err.names[:5]) + (f" and {len(err.names) - 5} more" if len(err.names) > 5 else "")
        raise PretrainedError(
            f"--pretrained {path}: holds objects that are not allowed in a checkpoint ({shown}); not loaded, since "
            "unpickling them could run code; expected a .pt file written by Ultralytics training"
        ) from err
    except UltralyticsCompatError:  # no safe loader in this torch/Ultralytics: not the file's fault
        raise
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0].replace("ERROR ❌️", "").strip()
        raise PretrainedError(
            f"--pretrained {path}: not an Ultralytics checkpoint ({type(err).__name__}: {first[:200]}); "
            "expected a .pt file written by Ultralytics training (weights/best.pt, last.pt, yolov8n.pt)"
        ) from err
    if not isinstance(getattr(model, "yaml", None), dict):
        raise PretrainedError(f"--pretrained {path}: the checkpoint's model has no yaml; expected a YOLO checkpoint")
    return model


def check_pretrained(
    path: str | Path | None, variants: list[Variant], backbone_weights: str | Path | None = None
) -> Pretrained:
    """Read a checkpoint once and check that it is a checkpoint of every variant's base model.

    Args:
        path: the `--pretrained` file, or None.
        variants: the variants it will seed.
        backbone_weights: the `--backbone-weights` file, or None; checked against every backbone swap's backbone.

    Returns:
        The seeding's identity (paths and SHA-256).

    Raises:
        PretrainedError: the file is missing, is not an Ultralytics checkpoint, or was trained from another model; the
            backbone weights are missing, unreadable, or lack or mis-shape a tensor of a variant's backbone.
    """
    if backbone_weights is not None:
        found = _check_backbone_weights(Path(backbone_weights), variants)
        if path is None:
            return Pretrained("", _combined("", found[1]), *found)
        ckpt = check_pretrained(path, variants)
        return Pretrained(ckpt.path, _combined(ckpt.sha256, found[1]), *found, ckpt.sha256)
    if path is None:
        raise PretrainedError("nothing to seed from: give --pretrained PATH or --backbone-weights PATH")
    path = Path(path).expanduser().resolve()
    model = _load(path)
    found = _architecture(model.yaml)
    for base in sorted({v.base for v in variants}):
        try:
            expected = get_base_model(base).config()
        except Exception as err:
            raise PretrainedError(
                f"--pretrained: variant base '{base}' is not a base model name; a checkpoint seeds only variants of "
                "a known base model (--model NAME)"
            ) from err
        if _architecture(expected) != found:
            trained = Path(str(model.yaml.get("yaml_file") or "?")).name
            raise PretrainedError(
                f"--pretrained {path.name}: a checkpoint of another model ({trained}), not of base model '{base}'; "
                f"pass a checkpoint trained from {base} (its rows and scale must match)"
            )
    return Pretrained(str(path), _sha256(path))


def load_source(pretrained: Pretrained) -> nn.Module:
    """Load the checkpoint's model (EMA weights first, as Ultralytics does), checking that the file is unchanged.

    With `--backbone-weights`, their state dict rides on the returned module (an empty one without `--pretrained`)
    for `transfer_into`.

    Raises:
        PretrainedError: the file is gone, unreadable, or its content changed since the sweep was planned.
    """
    model = nn.Module()
    if pretrained.path:
        path = Path(pretrained.path)
        model = _load(path)
        if _sha256(path) != (pretrained.checkpoint_sha256 or pretrained.sha256):
            raise PretrainedError(
                f"--pretrained {path}: the file changed since the sweep was planned (SHA-256 differs)"
            )
    if pretrained.backbone_path:
        path = Path(pretrained.backbone_path)
        state = read_state_dict(path)
        if _sha256(path) != pretrained.backbone_sha256:
            raise PretrainedError(
                f"--backbone-weights {path}: the file changed since the sweep was planned (SHA-256 differs)"
            )
        model._yoloab_backbone_state = state
    return model


def transfer_into(model: nn.Module, source: nn.Module, variant: Variant, source_name: str = "") -> Transfer:
    """Copy every checkpoint tensor whose (row-mapped) name and shape match into `model`, in place.

    Args:
        model: the variant's built `DetectionModel`.
        source: the checkpoint's model.
        variant: the variant (its `row_map` renames rows of a backbone swap).
        source_name: the checkpoint's name, for the summary line.

    Returns:
        The counts and the fresh and partial rows.
    """
    rows = variant.row_map
    # a block variant's inner blocks are new modules, even where their tensor names and shapes match a Bottleneck's
    inner = tuple(f"model.{r}.m." for r in variant.rows) if variant.role == "block" else ()
    moved = {}
    for key, value in source.float().state_dict().items():
        prefix, row, rest = (key.split(".", 2) + ["", ""])[:3]
        if prefix != "model" or not row.isdigit() or key.startswith(inner):
            continue
        if rows is None:
            moved[key] = value
        elif int(row) in rows:
            moved[f"model.{rows[int(row)]}.{rest}"] = value
    own = model.state_dict()
    matched = intersect_dicts(moved, own)
    state = getattr(source, "_yoloab_backbone_state", None)
    if state is not None and variant.is_backbone_swap:
        # checked when the sweep or profile was planned: every name is in the file with the backbone's shape
        names = backbone_tensor_names(model.model[0])
        matched |= {f"model.0.{own_key}": state[key] for key, (own_key, _) in names.items()}
    model.load_state_dict(matched, strict=False)
    params = dict(model.named_parameters())
    fresh, partial = [], []
    for i in range(len(model.model)):
        keys = [k for k in own if k.startswith(f"model.{i}.")]
        hit = sum(k in matched for k in keys)
        if keys and hit == 0:
            fresh.append(i)
        elif keys and hit < len(keys):
            partial.append(i)
    return Transfer(
        variant=variant.name,
        source=source_name,
        transferred_tensors=len(matched),
        total_tensors=len(own),
        transferred_params=sum(params[k].numel() for k in matched if k in params),
        total_params=sum(p.numel() for p in params.values()),
        fresh_rows=fresh,
        partial_rows=partial,
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict file: safetensors, or a torch file read with `weights_only=True` (runs nothing).

    A training checkpoint's state dict under `state_dict_ema`, `model_ema`, `state_dict` or `model` (timm's order) is
    taken from inside it, and a `module.` prefix (DataParallel) is dropped.

    Raises:
        PretrainedError: the file is missing, unreadable, or holds no state dict.
    """
    what = "expected a timm/PyTorch state dict (.pth, .pt, .bin) or a .safetensors file"
    if not path.is_file():
        raise PretrainedError(f"--backbone-weights {path}: no such file; {what}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path), device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise PretrainedError(
            f"--backbone-weights {path}: cannot be read ({type(err).__name__}: {first}); {what}"
        ) from err
    for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise PretrainedError(f"--backbone-weights {path}: holds no state dict (name -> tensor); {what}")
    return {str(k).removeprefix("module."): v for k, v in data.items()}


def backbone_tensor_names(backbone: nn.Module) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The tensors a `--backbone-weights` file must hold for a backbone module, in the module's order.

    Returns:
        name in the file -> (name in the module's state_dict, shape): a timm backbone's `timm_names()` (the names of
        `timm.create_model(model)`), else the module's own names (RevCol keeps its authors' names).
    """
    own = {k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    names = backbone.timm_names() if hasattr(backbone, "timm_names") else {k: k for k in own}
    return {key: (own_key, own[own_key]) for key, own_key in names.items()}


def _combined(*hashes: str) -> str:
    import hashlib

    return hashlib.sha256(":".join(hashes).encode()).hexdigest()


def _check_backbone_weights(path: Path, variants: list[Variant]) -> tuple[str, str]:
    """Check a `--backbone-weights` file against each backbone swap's backbone, built on the meta device.

    Returns:
        The file's absolute path and SHA-256.

    Raises:
        PretrainedError: no variant swaps its backbone, or the file lacks or mis-shapes a tensor (the first one named).
    """
    from .registry import MODULES

    path = path.expanduser().resolve()
    state = read_state_dict(path)
    swaps = [v for v in variants if v.is_backbone_swap]
    if not swaps:
        raise PretrainedError(
            f"--backbone-weights {path.name}: no variant replaces its backbone; name one with --module "
            "timm-<model> (or RevCol)"
        )
    checked: set[str] = set()
    for v in swaps:
        row = v.config["backbone"][0]
        if _row_key(row) in checked:
            continue
        checked.add(_row_key(row))
        entry = MODULES.get(row[2])
        with meta_device():
            backbone = entry.cls(3, *row[3])
        for key, (_, shape) in backbone_tensor_names(backbone).items():
            if key not in state:
                why = "is not in the file"
            elif tuple(state[key].shape) != shape:
                why = f"has shape {list(state[key].shape)} in the file, {list(shape)} in the backbone"
            else:
                continue
            source = f"timm.create_model('{row[3][0]}')" if hasattr(backbone, "timm_names") else entry.name
            raise PretrainedError(
                f"--backbone-weights {path.name} does not fit {v.module} ({v.name}): first mismatched tensor "
                f"'{key}' {why}; expected a state dict of {source}"
            )
    return str(path), _sha256(path)


def _row_key(row: list) -> str:
    """A yaml row as a hashable text."""
    return json.dumps(row, sort_keys=True, default=str)


def transfer_all(models: dict[str, nn.Module], variants: list[Variant], pretrained: Pretrained) -> dict[str, dict]:
    """Carry a checkpoint into built models (by variant name), loading it once; returns each one's record keys.

    Raises:
        PretrainedError: the checkpoint cannot be read or changed since it was checked.
    """
    source = load_source(pretrained)
    name = Path(pretrained.path).name
    out = {}
    for v in variants:
        done = transfer_into(models[v.name], source, v, name)
        out[v.name] = {"pretrained": pretrained.record(), **done.record()}
    return out


def seeded_model(variant: Variant, pretrained: Pretrained, nc: int | None, seed: int = 0) -> tuple[nn.Module, Transfer]:
    """Build a variant (fresh rows initialised under `seed`) and carry the checkpoint into it.

    Raises:
        PretrainedError: the checkpoint cannot be read or changed since it was checked.
    """
    import torch

    source = load_source(pretrained)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build(variant, nc=nc)
    return model, transfer_into(model, source, variant, Path(pretrained.path).name)
