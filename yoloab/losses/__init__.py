"""The box-loss catalog: IoU-family losses as published, one file per family, and the registry `--loss` reads.

Each loss is a function of predicted and target boxes (xyxy, (N, 4), paired row by row, in pixels) and a
`LossContext`, returning the per-box loss term; Ultralytics' criterion weights it by the assigned scores and sums it
exactly as it does its own CIoU term (`yoloab._ultralytics.loss`). `CIoU`, Ultralytics' own, is the default and the
baseline: a run with it trains with Ultralytics' criterion untouched.

Families (paper, formula and constants in each file's docstring): `iou`, `giou`, `diou` (DIoU, CIoU), `eiou`, `siou`,
`mpdiou`, `shape_iou`, `wiou` (WIoUv1, WIoUv2, WIoUv3), `alpha_iou` (alpha-IoU, alpha-CIoU), `nwd` (NWD, NWD-CIoU),
and the two that compose with a base: `inner_iou` (`Inner-<X>`) and `focaler_iou` (`Focaler-<X>`), for X in
`COMPOSABLE`.

A plugin file registers its own loss with `register_loss`:

    from yoloab.losses import register_loss

    @register_loss("MyIoU", returns="iou", paper="...")
    def my_iou(pred, target):  # xyxy boxes (N, 4) -> (N,)
        ...
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..errors import LossRegistrationError, UnknownLossError, did_you_mean
from . import alpha_iou, diou, eiou, focaler_iou, giou, inner_iou, iou, mpdiou, nwd, shape_iou, siou, wiou

DEFAULT_LOSS = "CIoU"
"""Ultralytics' own box loss: the baseline, trained with Ultralytics' criterion untouched."""
COMPOSABLE = ("IoU", "GIoU", "DIoU", "CIoU", "EIoU", "SIoU", "MPDIoU", "Shape-IoU")
"""The base losses `Inner-` and `Focaler-` compose with."""
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")

LossFn = Callable[[torch.Tensor, torch.Tensor, "LossContext"], torch.Tensor]


@dataclass
class LossContext:
    """What a loss may need besides the boxes.

    Attributes:
        image_wh: input width and height, in the units of the boxes (pixels in training); MPDIoU uses it.
        state: the loss's running state (Wise-IoU v2/v3: its `RunningMean`), None for stateless losses.
        training: whether this call trains (a running state is updated only then).
    """

    image_wh: tuple[float, float] | torch.Tensor | None = None
    state: Any = None
    training: bool = False


@dataclass(frozen=True)
class LossEntry:
    """One loss of the catalog.

    Attributes:
        name: the name `--loss` takes and run names carry (`SIoU`, `Inner-CIoU`).
        fn: per-box loss term of (pred, target, ctx).
        family: the file (or plugin) it comes from.
        paper: the publication.
        params: its constants, as published (recorded; part of the run key).
        stateful: whether it keeps a running mean across batches (Wise-IoU v2, v3).
        source: `yoloab`, or the plugin function's SHA-256 (a changed plugin changes the run key).
    """

    name: str
    fn: LossFn
    family: str
    paper: str
    params: dict[str, Any] = field(default_factory=dict)
    stateful: bool = False
    source: str = "yoloab"

    def term(self, pred: torch.Tensor, target: torch.Tensor, ctx: LossContext | None = None) -> torch.Tensor:
        """The per-box loss term (N,) of paired xyxy boxes."""
        return self.fn(pred, target, ctx or LossContext())

    def new_state(self, batches_per_epoch: int, epochs: int) -> wiou.RunningMean | None:
        """A fresh running state for a run of `epochs` epochs of `batches_per_epoch` batches (None when stateless)."""
        if not self.stateful:
            return None
        return wiou.RunningMean(wiou.paper_momentum(batches_per_epoch, epochs))

    def identity(self) -> dict[str, Any]:
        """What enters a run key: the name, the constants and where the code comes from."""
        return {"name": self.name, "params": self.params, "source": self.source}


class LossRegistry:
    """Name -> `LossEntry`, looked up case-insensitively."""

    def __init__(self) -> None:
        self._entries: dict[str, LossEntry] = {}

    def add(self, entry: LossEntry) -> LossEntry:
        """Register an entry.

        Raises:
            LossRegistrationError: a name that cannot be a file name, or one already taken by another loss.
        """
        if not _NAME.match(entry.name):
            raise LossRegistrationError(
                f"loss name {entry.name!r} must start with a letter and hold only letters, digits, '.', '_' or '-'"
            )
        taken = self._entries.get(entry.name.lower())
        if taken is not None and taken.source != entry.source:
            raise LossRegistrationError(f"loss {entry.name!r} is already registered (from {taken.family})")
        self._entries[entry.name.lower()] = entry
        return entry

    def remove(self, name: str) -> None:
        """Forget a loss (tests)."""
        self._entries.pop(name.lower(), None)

    def get(self, name: str) -> LossEntry:
        """The entry of `name` (any case).

        Raises:
            UnknownLossError: no such loss; one line with the nearest names.
        """
        entry = self._entries.get(str(name).lower())
        if entry is None:
            raise UnknownLossError(
                f"unknown loss '{name}'{did_you_mean(str(name), self.names())}; "
                f"{len(self._entries)} losses in the catalog (docs/losses.md); a plugin file (--plugin) can add one"
            )
        return entry

    def names(self) -> list[str]:
        """Every registered name, catalog order."""
        return [e.name for e in self._entries.values()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[LossEntry]:
        return iter(list(self._entries.values()))


LOSSES = LossRegistry()


def _builtin(name: str, fn: LossFn, module: Any, stateful: bool = False, **params: Any) -> None:
    family = module.__name__.rsplit(".", 1)[-1]
    LOSSES.add(LossEntry(name, fn, family, module.PAPER, params, stateful))


_builtin("IoU", iou.iou_loss, iou)
_builtin("GIoU", giou.giou_loss, giou)
_builtin("DIoU", diou.diou_loss, diou)
_builtin("CIoU", diou.ciou_loss, diou)
_builtin("EIoU", eiou.eiou_loss, eiou)
_builtin("SIoU", siou.siou_loss, siou, theta=siou.THETA)
_builtin("MPDIoU", mpdiou.mpdiou_loss, mpdiou)
_builtin("Shape-IoU", shape_iou.shape_iou_loss, shape_iou, scale=shape_iou.SCALE)
_builtin("WIoUv1", wiou.wiou_v1_loss, wiou)
_builtin("WIoUv2", wiou.wiou_v2_loss, wiou, True, gamma=wiou.GAMMA, momentum="1-0.05^(1/(epochs*batches))")
_builtin(
    "WIoUv3", wiou.wiou_v3_loss, wiou, True, alpha=wiou.ALPHA, delta=wiou.DELTA, momentum="1-0.05^(1/(epochs*batches))"
)
_builtin("alpha-IoU", alpha_iou.alpha_iou_loss, alpha_iou, alpha=alpha_iou.ALPHA)
_builtin("alpha-CIoU", alpha_iou.alpha_ciou_loss, alpha_iou, alpha=alpha_iou.ALPHA)
_builtin("NWD", nwd.nwd_loss, nwd, C=nwd.C)
_builtin("NWD-CIoU", nwd.nwd_ciou_loss, nwd, C=nwd.C, iou_ratio=nwd.IOU_RATIO)
for _base in COMPOSABLE:
    _entry = LOSSES.get(_base)
    _builtin(
        f"Inner-{_base}", inner_iou.inner(_entry.fn), inner_iou, base=_base, ratio=inner_iou.RATIO, **_entry.params
    )
for _base in COMPOSABLE:
    _entry = LOSSES.get(_base)
    _builtin(
        f"Focaler-{_base}",
        focaler_iou.focaler(_entry.fn),
        focaler_iou,
        base=_base,
        d=focaler_iou.D,
        u=focaler_iou.U,
        **_entry.params,
    )


def get_loss(name: str) -> LossEntry:
    """The catalog entry of a loss name (any case).

    Raises:
        UnknownLossError: no such loss; one line with the nearest names.
    """
    return LOSSES.get(name)


def check_losses(names: list[str] | None) -> list[str]:
    """The canonical names of `--loss` values, in order, each once, after the default loss.

    The default (Ultralytics' own CIoU) always comes first, as the baseline model always comes with its variants:
    every other loss's Δ is taken against it, so `--loss SIoU` alone trains CIoU and SIoU.

    Raises:
        UnknownLossError: the first unknown name, with the nearest names.
    """
    out: list[str] = [DEFAULT_LOSS]
    for name in names or []:
        canonical = LOSSES.get(name).name
        if canonical not in out:
            out.append(canonical)
    return out


def register_loss(
    name: str, *, returns: Literal["loss", "iou"] = "loss", paper: str = ""
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Register a plugin's box loss under `name` (decorator).

    The function takes predicted and target boxes, xyxy tensors (N, 4) paired row by row in pixels, and returns (N,):
    the per-box loss term (`returns="loss"`), or an IoU-like score whose loss is `1 - score` (`returns="iou"`).
    It may take a third argument, the `LossContext` (input size, training flag).

    Args:
        name: the name `--loss` takes (letters, digits, '.', '_', '-').
        returns: what the function returns.
        paper: the publication, shown in the catalog.

    Raises:
        LossRegistrationError: a bad name, a name taken by another loss, or an unknown `returns`.
    """
    if returns not in ("loss", "iou"):
        raise LossRegistrationError(f"register_loss({name!r}): returns={returns!r}; expected 'loss' or 'iou'")

    def decorate(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        takes_ctx = len(inspect.signature(fn).parameters) >= 3

        def term(pred: torch.Tensor, target: torch.Tensor, ctx: LossContext) -> torch.Tensor:
            out = fn(pred, target, ctx) if takes_ctx else fn(pred, target)
            return 1 - out if returns == "iou" else out

        try:
            code = inspect.getsource(fn)
        except (OSError, TypeError):  # defined where its source cannot be read: the qualified name stands in
            code = f"{fn.__module__}.{fn.__qualname__}"
        digest = hashlib.sha256(f"{returns}\n{code}".encode()).hexdigest()
        LOSSES.add(LossEntry(name, term, f"plugin {fn.__module__}", paper, {"returns": returns}, source=digest))
        return fn

    return decorate


__all__ = [
    "COMPOSABLE",
    "DEFAULT_LOSS",
    "LOSSES",
    "LossContext",
    "LossEntry",
    "check_losses",
    "get_loss",
    "register_loss",
]
