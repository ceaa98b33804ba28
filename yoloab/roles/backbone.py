"""The `backbone` role: a module replaces every backbone row before the base model's tail (SPPF, C2PSA, ...).

The new backbone is one row building the module, then one `Index` row per output at strides 8, 16 and 32 (channels
from the module's declared `out_channels`, no dummy forward). The module is RevCol (`RevCol-tiny`) or any timm model
(`timm-fasternet_t0`, row `[fasternet_t0, [1, 2, 3]]`: the model and its `feature_info` taps at strides 8/16/32).
The base model's tail and its whole head are kept; each head input that read the last base row at a level reads that
level's `Index` row instead. The variant's row map
covers the kept rows only (the tail and the head at their new indices), so `--pretrained` seeds exactly those.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from ..errors import ModelConfigError, PlacementError
from ..models import BaseModel
from ..placement import Candidate, row_strides
from ..registry import ModuleEntry, split_name
from ..variants import Variant

TAIL_MODULES = {"SPPF", "SPP", "SPPELAN", "C2PSA", "PSA", "C2fPSA"}  # kept after a backbone swap


def candidates(d: dict, entry: ModuleEntry | None = None) -> list[Candidate]:
    """A backbone swap has no row candidates: it replaces the whole backbone."""
    return []


def rewrite(base: BaseModel, entry: ModuleEntry, module: str, placement: str) -> Variant:
    """Replace the backbone with the module and its output taps; keep and remap the tail and the head.

    Raises:
        PlacementError: a placement other than `article`/`backbone` was asked for.
        ModelConfigError: the module lacks a stride-8/16/32 output, or a head row reads a backbone row it replaces.
    """
    if placement not in ("article", "backbone", "all"):
        raise PlacementError(
            f"{entry.name} replaces the whole backbone; placement '{placement}' does not apply (use backbone)"
        )
    _, size, option = split_name(module)
    size = size or entry.default_size or ""
    d = base.config()
    old_backbone, head = d["backbone"], d["head"]
    nb_old = len(old_backbone)
    strides = row_strides(d)
    tail_start = next((i for i, row in enumerate(old_backbone) if row[2] in TAIL_MODULES), nb_old)
    channels, out_strides = entry.backbone_outputs(size)
    # a module may spell out what its size implies (timm: the taps), so that the row says exactly what it builds
    spelled = getattr(entry.cls, "row_args", None)
    args = list(spelled(size)) if spelled and size else ([size] if size else [])
    args += list(entry.options[option] if option else ())
    new_backbone: list[list[Any]] = [[-1, 1, entry.name, args]]
    remap: dict[int, int] = {}
    for s in (8, 16, 32):
        if s not in out_strides:
            raise ModelConfigError(f"{entry.name}-{size} has no stride-{s} output; its strides are {out_strides}")
        level_rows = [i for i in range(tail_start) if strides[i] == s]
        if level_rows:
            remap[level_rows[-1]] = len(new_backbone)
        k = out_strides.index(s)
        new_backbone.append([0, 1, "Index", [channels[k], k]])
    for i in range(tail_start, nb_old):
        remap[i] = len(new_backbone)
        new_backbone.append(deepcopy(old_backbone[i]))
    nb_new = len(new_backbone)

    def move(f: Any, at: int) -> Any:
        if isinstance(f, list):
            return [move(x, at) for x in f]
        if f < 0:
            return f
        if f >= nb_old:
            return f - nb_old + nb_new
        if f not in remap:
            raise ModelConfigError(
                f"{base.name}: head row {at} reads backbone row {f}, which a {entry.name} backbone does not provide"
            )
        return remap[f]

    d["backbone"] = new_backbone
    d["head"] = [[move(row[0], nb_old + j), *row[1:]] for j, row in enumerate(head)]
    name = "-".join(x for x in (entry.name, size, option) if x)
    # rows whose weights a base checkpoint can seed: the kept tail (SPPF, C2PSA) and the head, at their new indices
    kept = {old: new for old, new in remap.items() if old >= tail_start}
    kept |= {nb_old + j: nb_new + j for j in range(len(head))}
    return Variant(
        f"{base.name}-{name}",
        base.name,
        d,
        name,
        "backbone",
        list(range(nb_new - (nb_old - tail_start))),
        f"yoloab variants --model {base.name} --module {name}",
        row_map=kept,
    )
