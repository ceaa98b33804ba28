"""The `attention` role: a new row after each selected row; every later `from` is remapped.

Candidates are the rows an attention module is put after in the field's catalogs: the block rows (C2f, C3k2, C3 and
their relatives in other families) selected by section and level, the SPPF row (`sppf`) and the three maps Detect
reads (`neck-outputs`). The module is built with the channels of the row it follows and returns as many (`X(c1)`,
the "same" channel rule), so the inserted row is `[-1, 1, X, []]`.

Every row that read a selected row reads the attention row instead (the module refines that row's output for all its
consumers), Concat's and Detect's lists included; every other index is shifted by the rows inserted before it. The
variant keeps its row map (base row -> the row holding the same module now), which `--pretrained` follows, and its
yaml header lists the inserted rows.
"""

from __future__ import annotations

from typing import Any

from ..models import DETECT_HEADS, BaseModel
from ..placement import Candidate, label, resolve, row_strides, rows_named
from ..registry import ModuleEntry
from ..variants import Variant

HOSTS = ("C2f", "C3k2", "C3", "C2fCIB", "A2C2f", "RepNCSPELAN4")  # block rows (not the C2PSA tail)
SPP_TAILS = ("SPPF", "SPPELAN")


def candidates(d: dict, entry: ModuleEntry | None = None) -> list[Candidate]:
    """Block rows by section and level, the SPPF row and the rows Detect reads."""
    rows = d["backbone"] + d["head"]
    found = rows_named(d, HOSTS) + rows_named(d, SPP_TAILS, "sppf")
    heads = rows_named(d, DETECT_HEADS)
    if heads:
        last, nb, strides = heads[-1].row, len(d["backbone"]), row_strides(d)
        f = rows[last][0]
        for x in f if isinstance(f, list) else [f]:
            src = x if x >= 0 else last + x
            found.append(Candidate(src, "backbone" if src < nb else "head", strides[src], "neck-output"))
    return found


def insert_after(d: dict, after: list[int], row: list) -> tuple[dict, dict[int, int], list[int]]:
    """A copy of `d` with `row` inserted after each row in `after`, every `from` remapped.

    A row that read a selected row reads the inserted row instead; other inputs follow their row to its new index.
    A relative input (`-1`, `-2`) stays relative when it still points at the same (moved) row.

    Returns:
        The new dict, the row map (base row -> its new index) and the new indices of the inserted rows.
    """
    rows = d["backbone"] + d["head"]
    nb = len(d["backbone"])
    new_index: dict[int, int] = {}
    output_of: dict[int, int] = {}  # base row -> the new row whose output now stands for it
    layout: list[tuple[int | None, list]] = []  # (base row or None for an inserted row, row)
    inserted: list[int] = []
    for i, r in enumerate(rows):
        new_index[i] = len(layout)
        layout.append((i, r))
        if i in after:
            inserted.append(len(layout))
            layout.append((None, [-1, *row[1:]]))
        output_of[i] = len(layout) - 1

    def move(f: Any, base_row: int, at: int) -> Any:
        if isinstance(f, list):
            return [move(x, base_row, at) for x in f]
        src = f if f >= 0 else base_row + f
        if src < 0:  # row 0 reads the image
            return f
        target = output_of[src]
        return f if f < 0 and at + f == target else target

    out = dict(d)
    new_rows = [[move(r[0], i, n), *r[1:]] if i is not None else list(r) for n, (i, r) in enumerate(layout)]
    nb_new = new_index[nb] if nb < len(rows) else len(layout)
    out["backbone"], out["head"] = new_rows[:nb_new], new_rows[nb_new:]
    return out, new_index, inserted


def rewrite(base: BaseModel, entry: ModuleEntry, module: str, placement: str) -> Variant:
    """Insert `[-1, 1, X, []]` after each selected row."""
    d = base.config()
    after = resolve(d, placement, entry, base.name)
    new, row_map, inserted = insert_after(d, after, [-1, 1, entry.name, []])
    return Variant(
        f"{base.name}-{entry.name}-{label(placement)}",
        base.name,
        new,
        entry.name,
        placement,
        inserted,
        f"yoloab variants --model {base.name} --module {entry.name} --placement {placement}",
        row_map=row_map,
        after=after,
    )
