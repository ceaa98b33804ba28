"""Roles: the ways a plug-in module enters a model, as data.

Each role says which rows of a base model it acts on, how its modules take channels, and what a plugin module must
provide. The rewrite of the model dict for a role lives in one file of this folder (`downsample.py`, `block.py`,
`attention.py`, `upsample.py`, `sppf.py`, `backbone.py`), imported when a variant of that role is made. This file
imports nothing heavy: the registry reads it to validate `register_module(role=...)` without importing torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class RoleSpec:
    """What a role is.

    Attributes:
        name: the role's name (`register_module(role=...)`).
        replaces: what a variant of this role changes in the base model, for `yoloab list` and the README.
        channels: the channel rule its modules use (a key of `yoloab.registry.CHANNEL_RULES`).
        contract: the constructor a plugin module of this role must provide.
        selectors: the placements its variants accept besides explicit row indices.
        candidates_text: what its candidate rows are, for messages (`downsampling Conv rows`).
        default: the placement `article` means for a module of this role that has no article placement of its own
            ('' where every module must name one).
    """

    name: str
    replaces: str
    channels: str
    contract: str
    selectors: tuple[str, ...]
    candidates_text: str
    default: str = ""

    def rewriter(self) -> ModuleType:
        """The file of this role: its `candidates(d)` and `rewrite(base, entry, placement)`."""
        return importlib.import_module(f"{__name__}.{self.name}")


_SCOPES = ("article", "all", "backbone", "head", "all:P3,P4,P5")
ROLES: dict[str, RoleSpec] = {
    spec.name: spec
    for spec in (
        RoleSpec(
            "downsample",
            "top-level stride-2 Conv rows (the stem excluded): the row becomes the module",
            "conv",
            "X(c1, c2, k=3, s=2): c2 width-scaled from the Conv row; halves the resolution",
            _SCOPES,
            "downsampling Conv rows",
            "",
        ),
        RoleSpec(
            "block",
            "the repeated inner block of C2f / C3k2 / C3 rows (C2f-X); the host keeps cv1/cv2, n, width and shortcut",
            "conv",
            "X(c, c, shortcut=True): keeps channels and resolution; inside C3k2's C3k it replaces the Bottlenecks",
            _SCOPES,
            "rows hosting inner blocks",
            "all",
        ),
        RoleSpec(
            "attention",
            "nothing: a new row after each selected row (C2f/C3k2/C3 rows, sppf, neck-outputs); later `from`s remapped",
            "same",
            "X(c1, *args): returns c1 channels at the same resolution",
            (*_SCOPES, "sppf", "neck-outputs"),
            "rows an attention module can follow",
            "sppf",
        ),
        RoleSpec(
            "upsample",
            "nn.Upsample rows of the head",
            "same",
            "X(c1, scale=2, *args): returns c1 channels at scale x the resolution",
            ("article", "all", "backbone", "head"),
            "nn.Upsample rows",
            "all",
        ),
        RoleSpec(
            "sppf",
            "the SPPF row",
            "conv",
            "X(c1, c2, k=5, *args): c2 width-scaled from the SPPF row; keeps the resolution",
            ("article", "all", "backbone", "head"),
            "SPPF rows",
            "all",
        ),
        RoleSpec(
            "backbone",
            "every backbone row before SPPF/C2PSA; the tail and the head are kept and remapped",
            "input",
            "X(c1, size): exposes `out_channels` and `strides` (8, 16 and 32 among them) after construction",
            (),
            "backbone rows",
            "backbone",
        ),
    )
}
ROLE_NAMES = tuple(ROLES)
