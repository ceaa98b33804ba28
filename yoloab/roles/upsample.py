"""The `upsample` role: a module replaces `nn.Upsample` rows (`[None, 2, "nearest"]` -> `X(c1, 2)`).

The module takes `X(c1, scale)` under the "same" channel rule: it returns c1 channels at `scale` times the
resolution, so every later row sees the shapes it saw before.
"""

from __future__ import annotations

from ..models import BaseModel
from ..placement import Candidate, rows_named
from ..registry import ModuleEntry
from ..variants import Variant, row_swap_variant

HOST = "nn.Upsample"


def candidates(d: dict, entry: ModuleEntry | None = None) -> list[Candidate]:
    """The `nn.Upsample` rows of a model dict."""
    return rows_named(d, (HOST,))


def _scale(args: list) -> int:
    scale = args[1] if len(args) > 1 and args[1] is not None else 2
    return int(scale)


def rewrite(base: BaseModel, entry: ModuleEntry, module: str, placement: str) -> Variant:
    """Each selected `nn.Upsample` row becomes `[from, n, X, [scale]]`."""
    return row_swap_variant(base, entry, placement, lambda row: [row[0], row[1], entry.name, [_scale(row[3])]])
