"""The `sppf` role: a module replaces the SPPF row (`[-1, 1, SPPF, [1024, 5]]` -> `[-1, 1, X, [1024, 5]]`).

The module takes `X(c1, c2, k)` with c2 width-scaled like SPPF's. YOLO26's SPPF rows carry two more arguments (`n`,
`shortcut`) that belong to its own SPPF: they are not passed on. yolov9 has SPPELAN, not SPPF, and so no candidate.
"""

from __future__ import annotations

from ..models import BaseModel
from ..placement import Candidate, rows_named
from ..registry import ModuleEntry
from ..variants import Variant, row_swap_variant

HOST = "SPPF"


def candidates(d: dict, entry: ModuleEntry | None = None) -> list[Candidate]:
    """The SPPF rows of a model dict."""
    return rows_named(d, (HOST,))


def rewrite(base: BaseModel, entry: ModuleEntry, module: str, placement: str) -> Variant:
    """Each selected SPPF row becomes `[from, n, X, [c2, k]]`."""
    return row_swap_variant(base, entry, placement, lambda row: [row[0], row[1], entry.name, list(row[3][:2])])
