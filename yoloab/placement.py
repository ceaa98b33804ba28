"""Placements: which rows of a model yaml a swap replaces.

A row is a candidate when it is a top-level `Conv` row with stride 2 (a "downsampling conv"); the stem (row 0, and
any other stride-2 Conv that reads the input image, as in yolov9e's second branch) is never one. Placements select
candidates by section (`backbone`, `head`, `all`), by explicit row indices (`1,3,16`), or as the module's source
article did (`article`, data on the registry entry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import PlacementError, did_you_mean
from .registry import MODULES, ModuleEntry, Placement

NAMED = ("article", "all", "backbone", "head")
# Rows that change the resolution, besides Conv: how to read their stride from the yaml args.
_STRIDE_ARG = {"Conv": 2, "SCDown": 2, "DWConv": 2, "GhostConv": 2}
_HALVING = {"ADown", "AConv", "Focus"}


@dataclass(frozen=True)
class Candidate:
    """A downsampling Conv row.

    Attributes:
        row: index of the row in backbone + head.
        section: `backbone` or `head`.
        stride: output stride of the row (4 = P2 ... 32 = P5).
    """

    row: int
    section: str
    stride: int


def _first(f: Any) -> int:
    return f[0] if isinstance(f, list) else f


def row_strides(d: dict) -> list[int]:
    """Output stride of every row of backbone + head, read from the yaml (no model is built)."""
    rows = d["backbone"] + d["head"]
    strides: list[int] = []
    multi: dict[int, tuple[int, ...]] = {}  # rows of multi-output backbones: the stride of each output
    for i, (f, _, module, args) in enumerate(rows):
        src = _first(f)
        src = src if src >= 0 else i + src
        inp = 1 if i == 0 else strides[src]
        entry = MODULES.get(module) if module in MODULES else None
        if entry is not None and entry.role == "backbone":
            multi[i] = entry.backbone_outputs(args[0] if args else None)[1]
            out = inp
        elif module == "Index" and src in multi and len(args) > 1:
            out = inp * multi[src][args[1]]
        elif entry is not None and entry.role == "downsample" and entry.conv_args < 3:
            out = inp * 2  # takes only [c2] of a Conv row: the stride is built in (ADown)
        elif module in _STRIDE_ARG or (entry is not None and entry.role == "downsample"):
            s = args[2] if len(args) > 2 else 1
            out = inp * (s if isinstance(s, int) else 1)
        elif module in _HALVING:
            out = inp * 2
        elif module == "nn.Upsample":
            out = max(inp // int(args[1] if len(args) > 1 else 2), 1)
        else:
            out = inp
        strides.append(out)
    return strides


def candidates(d: dict) -> list[Candidate]:
    """Downsampling Conv rows of a model dict, stems excluded, in row order.

    A stem is a stride-2 Conv that reads the input image (output stride 2): row 0 in most families, but yolov9e starts
    with an `nn.Identity` row and has two stems (rows 1 and 15, one per branch). Swapping a stem would hand a 3-channel
    image to a module built for feature maps (ADown splits its input channels in halves).
    """
    nb = len(d["backbone"])
    strides = row_strides(d)
    found = []
    for i, (_, _, module, args) in enumerate(d["backbone"] + d["head"]):
        if i == 0 or module != "Conv" or len(args) < 3 or args[2] != 2 or strides[i] <= 2:
            continue
        found.append(Candidate(i, "backbone" if i < nb else "head", strides[i]))
    return found


def _select(cands: list[Candidate], rule: Placement) -> list[int]:
    return [
        c.row
        for c in cands
        if (rule.scope == "all" or c.section == rule.scope) and (not rule.strides or c.stride in rule.strides)
    ]


def parse_rows(text: str) -> list[int]:
    """Parse `1,3,16` into row indices.

    Raises:
        PlacementError: the text is not a comma-separated list of non-negative integers.
    """
    try:
        rows = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        rows = []
    if not rows or any(r < 0 for r in rows):
        raise PlacementError(
            f"unknown placement '{text}'{did_you_mean(text, NAMED)}; expected one of {', '.join(NAMED)} "
            "or row indices such as 1,3,16"
        )
    return sorted(set(rows))


def resolve(d: dict, placement: str, entry: ModuleEntry, model: str = "model") -> list[int]:
    """The rows a placement selects in a model dict.

    Args:
        d: model dict (backbone + head rows).
        placement: `article`, `all`, `backbone`, `head` or comma-separated row indices.
        entry: the module being placed (its article placement is used for `article`).
        model: model name for messages.

    Returns:
        Sorted row indices.

    Raises:
        PlacementError: unknown placement, an explicit row that is not a candidate, or no row selected.
    """
    cands = candidates(d)
    listing = ", ".join(f"{c.row} ({c.section} P{c.stride.bit_length() - 1})" for c in cands) or "none"
    if placement in NAMED:
        if placement == "article":
            if not entry.article_rules:
                raise PlacementError(f"{entry.name} has no article placement; use all, backbone, head or rows")
            rules = entry.article_rules
        else:
            rules = (Placement(placement),)  # type: ignore[arg-type]
        rows = sorted({r for rule in rules for r in _select(cands, rule)})
        if not rows:
            shown = " + ".join(map(str, rules))
            raise PlacementError(
                f"placement '{placement}' ({shown}) selects no row of {model}; downsampling Conv rows: {listing}"
            )
        return rows
    rows = parse_rows(placement)
    valid = {c.row for c in cands}
    bad = [r for r in rows if r not in valid]
    if bad:
        raise PlacementError(
            f"row(s) {', '.join(map(str, bad))} of {model} are not downsampling Conv rows; candidates: {listing}"
        )
    return rows


def label(placement: str) -> str:
    """The placement as it appears in variant names (`all`, `article`, `rows1-3-16`)."""
    return placement if placement in NAMED else "rows" + "-".join(map(str, parse_rows(placement)))
