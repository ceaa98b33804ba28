"""Placements: which rows of a model yaml a swap acts on.

Each role (`yoloab.roles`) lists its own candidate rows: stride-2 Conv rows for `downsample`, C2f/C3k2/C3 rows for
`block`, the rows an attention module can follow, `nn.Upsample` rows, the SPPF row. The selectors are the same for
every role: a section (`backbone`, `head`, `all`), optionally narrowed to output levels (`all:P3,P4,P5`), explicit
row indices (`1,3,16`), the module's source article (`article`, data on the registry entry) and, for attention,
`sppf` and `neck-outputs`. The stem (row 0, and any stride-2 Conv that reads the image) is never a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import PlacementError, did_you_mean
from .registry import MODULES, ModuleEntry, Placement

NAMED = ("article", "all", "backbone", "head")
SPECIAL = ("sppf", "neck-outputs")  # attention only: after the SPPF row, after each map Detect reads
SCOPES = ("all", "backbone", "head")
# Rows that change the resolution, besides Conv: how to read their stride from the yaml args.
_STRIDE_ARG = {"Conv": 2, "SCDown": 2, "DWConv": 2, "GhostConv": 2}
_HALVING = {"ADown", "AConv", "Focus"}


@dataclass(frozen=True)
class Candidate:
    """A row a role can act on.

    Attributes:
        row: index of the row in backbone + head.
        section: `backbone` or `head`.
        stride: output stride of the row (4 = P2 ... 32 = P5).
        kind: which selectors reach it: `row` (sections, levels, indices), `sppf` or `neck-output` (attention).
    """

    row: int
    section: str
    stride: int
    kind: str = "row"

    def __str__(self) -> str:
        return f"{self.row} ({self.section} P{self.stride.bit_length() - 1})"


def first_source(f: Any) -> int:
    """The first input of a row's `from` (an int or a list)."""
    return f[0] if isinstance(f, list) else f


def row_strides(d: dict) -> list[int]:
    """Output stride of every row of backbone + head, read from the yaml (no model is built)."""
    rows = d["backbone"] + d["head"]
    strides: list[int] = []
    multi: dict[int, tuple[int, ...]] = {}  # rows of multi-output backbones: the stride of each output
    for i, (f, _, module, args) in enumerate(rows):
        src = first_source(f)
        src = src if src >= 0 else i + src
        inp = 1 if i == 0 else strides[src]
        entry = MODULES.get(module) if module in MODULES else None
        role = entry.role if entry is not None else None
        if role == "backbone":
            multi[i] = entry.backbone_outputs(args[0] if args else None)[1]
            out = inp
        elif module == "Index" and src in multi and len(args) > 1:
            out = inp * multi[src][args[1]]
        elif role == "downsample" and entry.conv_args < 3:
            out = inp * 2  # takes only [c2] of a Conv row: the stride is built in (ADown)
        elif module in _STRIDE_ARG or role == "downsample":
            s = args[2] if len(args) > 2 else 1
            out = inp * (s if isinstance(s, int) else 1)
        elif module in _HALVING:
            out = inp * 2
        elif module == "nn.Upsample":
            out = max(inp // int(args[1] if len(args) > 1 else 2), 1)
        elif role == "upsample":
            out = max(inp // int(args[0] if args else 2), 1)
        else:
            out = inp
        strides.append(out)
    return strides


def rows_named(d: dict, names: tuple[str, ...] | set[str], kind: str = "row") -> list[Candidate]:
    """The rows of a model dict whose module is one of `names`, as candidates of a kind, in row order."""
    nb, strides = len(d["backbone"]), row_strides(d)
    return [
        Candidate(i, "backbone" if i < nb else "head", strides[i], kind)
        for i, row in enumerate(d["backbone"] + d["head"])
        if row[2] in names
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
            f"unknown placement '{text}'{did_you_mean(text, (*NAMED, *SPECIAL))}; expected one of "
            f"{', '.join(NAMED)}, a section with levels (all:P3,P4,P5), sppf or neck-outputs (attention) "
            "or row indices such as 1,3,16"
        )
    return sorted(set(rows))


def parse_rule(text: str) -> Placement | None:
    """A named selector as a rule (`head`, `all:P3,P4,P5`, `sppf`); None for `article` and row indices.

    Raises:
        PlacementError: a section with levels that are not P1..P7.
    """
    if text in SCOPES or text in SPECIAL:
        return Placement(text)  # type: ignore[arg-type]
    scope, sep, levels = text.partition(":")
    if not sep or scope not in SCOPES:
        return None
    strides = []
    for level in levels.split(","):
        level = level.strip()
        if len(level) != 2 or level[0] not in "Pp" or not level[1].isdigit() or not 1 <= int(level[1]) <= 7:
            raise PlacementError(f"placement '{text}': level '{level}' is not P1..P7; expected e.g. {scope}:P3,P4,P5")
        strides.append(2 ** int(level[1]))
    return Placement(scope, tuple(sorted(set(strides))))  # type: ignore[arg-type]


def select(cands: list[Candidate], rule: Placement) -> list[int]:
    """Rows of `cands` a rule selects."""
    if rule.scope in SPECIAL:
        kind = "sppf" if rule.scope == "sppf" else "neck-output"
        return [c.row for c in cands if c.kind == kind]
    return [
        c.row
        for c in cands
        if c.kind == "row"
        and (rule.scope == "all" or c.section == rule.scope)
        and (not rule.strides or c.stride in rule.strides)
    ]


def candidates(d: dict, entry: ModuleEntry) -> list[Candidate]:
    """The candidate rows of a module's role in a model dict."""
    from .roles import ROLES

    return ROLES[entry.role].rewriter().candidates(d, entry)


def article_rules(entry: ModuleEntry) -> tuple[Placement, ...]:
    """The rules `--placement article` applies: the module's article placement, else its role's default."""
    from .roles import ROLES

    if entry.article_rules:
        return entry.article_rules
    default = ROLES[entry.role].default
    rule = parse_rule(default) if default else None
    return (rule,) if rule is not None else ()


def article_text(entry: ModuleEntry) -> str:
    """The article placement as `yoloab list` shows it (`all`, `sppf (role default)`, `-`)."""
    if entry.article_rules or entry.role == "backbone":
        return entry.article_text
    rules = article_rules(entry)
    return f"{' + '.join(map(str, rules))} (role default)" if rules else "-"


def resolve(d: dict, placement: str, entry: ModuleEntry, model: str = "model") -> list[int]:
    """The rows a placement selects in a model dict.

    Args:
        d: model dict (backbone + head rows).
        placement: `article`, `all`, `backbone`, `head`, `<section>:P3,P4`, `sppf`, `neck-outputs` or row indices.
        entry: the module being placed (its role gives the candidates; its article placement is used for `article`).
        model: model name for messages.

    Returns:
        Sorted row indices.

    Raises:
        PlacementError: unknown placement, one the role does not take, an explicit row that is not a candidate, or
            no row selected.
    """
    from .roles import ROLES

    spec = ROLES[entry.role]
    cands = candidates(d, entry)
    what = spec.candidates_text
    rows_only = sorted({c.row: c for c in cands if c.kind == "row"}.values(), key=lambda c: c.row)
    listing = ", ".join(map(str, rows_only)) or "none"
    if placement == "article":
        rules: tuple[Placement, ...] = article_rules(entry)
        if not rules:
            raise PlacementError(f"{entry.name} has no article placement; use {', '.join(spec.selectors[1:])} or rows")
    else:
        rule = parse_rule(placement)
        rules = (rule,) if rule is not None else ()
    if placement == "article" or rules:
        named = {r.scope for r in rules}
        refused = sorted(s for s in named if s not in spec.selectors)
        if refused:
            raise PlacementError(
                f"placement '{placement}' does not apply to {entry.role} modules like {entry.name}; "
                f"expected one of {', '.join(spec.selectors)} or row indices"
            )
        rows = sorted({r for rule in rules for r in select(cands, rule)})
        if not rows:
            shown = " + ".join(map(str, rules))
            raise PlacementError(f"placement '{placement}' ({shown}) selects no row of {model}; {what}: {listing}")
        return rows
    rows = parse_rows(placement)
    valid = {c.row for c in cands}
    bad = [r for r in rows if r not in valid]
    if bad:
        raise PlacementError(f"row(s) {', '.join(map(str, bad))} of {model} are not {what}; candidates: {listing}")
    return rows


def label(placement: str) -> str:
    """The placement as it appears in variant names (`all`, `article`, `all-P3-P4`, `rows1-3-16`)."""
    if placement in NAMED or placement in SPECIAL:
        return placement
    rule = parse_rule(placement)
    if rule is not None:
        return "-".join([rule.scope, *(f"P{s.bit_length() - 1}" for s in rule.strides)])
    return "rows" + "-".join(map(str, parse_rows(placement)))
