"""The `block` role: a module replaces the repeated inner block of C2f / C3k2 / C3 rows (the field's "C2f-X").

A selected row `[-1, 3, C2f, [128, True]]` becomes `[-1, 3, C2f_X, [128, True]]`. yoloab builds that row as
Ultralytics' own host (`C2f`), so the host keeps its cv1/cv2, its width and depth scaling, its `n` and its shortcut
flag, then replaces each inner block: every `Bottleneck` (and, for hosts the module names, every C2PSA `PSABlock`)
becomes `X(c, c, shortcut)` with the hidden width `c` and the flag the host gave its block. In yolo11's C3k2 rows
whose `c3k` flag is set, each repeat is a `C3k` (itself a small C3): X replaces the two Bottlenecks inside each C3k,
and the C3k keeps its own cv1/cv2/cv3, as the field's `C3k2_X` classes do. See `yoloab._ultralytics` for the build.
"""

from __future__ import annotations

from ..models import BaseModel
from ..placement import Candidate, rows_named
from ..registry import BLOCK_HOSTS, ModuleEntry
from ..variants import Variant, row_swap_variant

SEPARATOR = "_"  # C2f_Faster: host, then the registered block name


def host_row_name(host: str, entry: ModuleEntry) -> str:
    """The yaml module name of a host row whose inner blocks are `entry` (`C2f_Faster`)."""
    return f"{host}{SEPARATOR}{entry.name}"


def candidates(d: dict, entry: ModuleEntry | None = None) -> list[Candidate]:
    """Rows whose module is one of the block's hosts (C2f, C3k2, C3 by default; C2PSA where the module fits it)."""
    return rows_named(d, entry.hosts if entry is not None else BLOCK_HOSTS)


def rewrite(base: BaseModel, entry: ModuleEntry, module: str, placement: str) -> Variant:
    """Each selected host row names `<host>_<block>`; its from, repeats and args are unchanged."""
    return row_swap_variant(base, entry, placement, lambda row: [row[0], row[1], host_row_name(row[2], entry), row[3]])
