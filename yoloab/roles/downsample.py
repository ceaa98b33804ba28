"""The `downsample` role: a module replaces top-level stride-2 Conv rows.

Candidates are `Conv` rows with stride 2 outside the stem: row 0, and any other stride-2 Conv that reads the input
image (yolov9e starts with an `nn.Identity` row and has two stems, rows 1 and 15). Swapping a stem would hand a
3-channel image to a module built for feature maps (ADown splits its input channels in halves). The module's row
keeps the first `conv_args` of the Conv's `[c2, k, s]` (ADown: `[c2]`).
"""

from __future__ import annotations

from ..models import BaseModel
from ..placement import Candidate, row_strides
from ..registry import ModuleEntry
from ..variants import Variant, row_swap_variant


def candidates(d: dict, entry: ModuleEntry | None = None) -> list[Candidate]:
    """Downsampling Conv rows of a model dict, stems excluded, in row order."""
    nb = len(d["backbone"])
    strides = row_strides(d)
    found = []
    for i, (_, _, module, args) in enumerate(d["backbone"] + d["head"]):
        if i == 0 or module != "Conv" or len(args) < 3 or args[2] != 2 or strides[i] <= 2:
            continue
        found.append(Candidate(i, "backbone" if i < nb else "head", strides[i]))
    return found


def rewrite(base: BaseModel, entry: ModuleEntry, module: str, placement: str) -> Variant:
    """Each selected Conv row becomes `[from, n, X, args[:conv_args]]`."""
    return row_swap_variant(base, entry, placement, lambda row: [row[0], row[1], entry.name, row[3][: entry.conv_args]])
