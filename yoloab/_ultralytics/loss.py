"""The box loss of a run, put into Ultralytics' criterion (part of `yoloab._ultralytics`).

Ultralytics' detection criterion (`v8DetectionLoss`; `E2ELoss` holds two, one per head branch) computes its box term
in `BboxLoss.forward`: `iou = bbox_iou(pred, target, CIoU=True)`, `loss_iou = ((1 - iou) * weight).sum() /
target_scores_sum`, beside the DFL (or L1) term. `CatalogBboxLoss` subclasses `BboxLoss`: it keeps Ultralytics' DFL
term as computed by the parent and replaces the box term by the catalog loss's, weighted and summed the same way, on
boxes converted from grid units to pixels (the anchors' strides) with the input size in pixels.

The hook is a trainer callback at `on_pretrain_routine_end`, after the model, the EMA and a resumed criterion
(YOLOv10/YOLO26 restore their branch weights there) exist and before the first batch; callbacks travel to DDP
children with the trainer. It sets the training model's criterion and the EMA's (whose validation loss then uses the
same term, reading the running state without updating it). Checkpoints are untouched: Ultralytics strips the
criterion from every checkpoint it saves, so a checkpoint trained with a catalog loss loads without yoloab.
A running state (Wise-IoU's mean) goes into the run's resume state (`rng_state`) and is put back on resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ..errors import UltralyticsCompatError


def _bbox_loss_class() -> type:
    from ultralytics.utils.loss import BboxLoss

    class CatalogBboxLoss(BboxLoss):
        """Ultralytics' `BboxLoss` with the box term of a catalog loss (DFL/L1 term unchanged)."""

        def __init__(self, original: Any, entry: Any, state: Any) -> None:
            super().__init__()
            self.dfl_loss = original.dfl_loss  # the parent's DFL (None: the L1 form of reg_max 1 heads)
            self.entry, self.state = entry, state

        def forward(
            self,
            pred_dist: torch.Tensor,
            pred_bboxes: torch.Tensor,
            anchor_points: torch.Tensor,
            target_bboxes: torch.Tensor,
            target_scores: torch.Tensor,
            target_scores_sum: torch.Tensor,
            fg_mask: torch.Tensor,
            imgsz: torch.Tensor,
            stride: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            from ..losses import LossContext

            _, loss_dfl = super().forward(
                pred_dist,
                pred_bboxes,
                anchor_points,
                target_bboxes,
                target_scores,
                target_scores_sum,
                fg_mask,
                imgsz,
                stride,
            )
            idx = fg_mask.nonzero(as_tuple=True)
            weight = target_scores[idx].sum(-1, keepdim=True)
            scale = stride[idx[1]]  # pixels per grid unit of each box's head level
            pred = (pred_bboxes[idx] * scale).float()
            target = (target_bboxes[idx] * scale).float()
            image_wh = (float(imgsz[1]), float(imgsz[0]))
            ctx = LossContext(image_wh=image_wh, state=self.state, training=pred.requires_grad)
            term = self.entry.term(pred, target, ctx)
            return (term.unsqueeze(-1) * weight).sum() / target_scores_sum, loss_dfl

    return CatalogBboxLoss


def _branches(criterion: Any) -> Iterator[tuple[str, Any]]:
    """(branch name, `v8DetectionLoss`) of a detection criterion: itself, or E2E's one-to-many and one-to-one."""
    from ultralytics.utils.loss import v8DetectionLoss

    if isinstance(criterion, v8DetectionLoss):
        yield "main", criterion
        return
    for branch in ("one2many", "one2one"):
        sub = getattr(criterion, branch, None)
        if isinstance(sub, v8DetectionLoss):
            yield branch, sub


def install_box_loss(model: Any, entry: Any, batches_per_epoch: int, epochs: int, ema: Any = None) -> None:
    """Give `model` (unwrapped) a criterion whose box term is `entry`'s, and `ema` one sharing its running states.

    Raises:
        UltralyticsCompatError: the criterion holds no `v8DetectionLoss` with a `BboxLoss` (not a detection model, or
            an Ultralytics whose criterion changed shape).
    """
    cls = _bbox_loss_class()
    criterion = model.criterion if getattr(model, "criterion", None) is not None else model.init_criterion()
    states: dict[str, Any] = {}
    for branch, det in _branches(criterion):
        if not hasattr(det, "bbox_loss"):
            break
        states[branch] = entry.new_state(batches_per_epoch, epochs)
        det.bbox_loss = cls(det.bbox_loss, entry, states[branch])
    if not states:
        raise UltralyticsCompatError(
            f"--loss {entry.name}: the criterion {type(criterion).__name__} has no detection box loss to replace"
        )
    model.criterion = criterion
    if ema is not None:
        ema_criterion = ema.init_criterion()
        for branch, det in _branches(ema_criterion):
            det.bbox_loss = cls(det.bbox_loss, entry, states.get(branch))
        ema.criterion = ema_criterion


def attach_box_loss(model: Any, entry: Any) -> None:
    """Register the callback that installs `entry` in the trainer's criterion, on an Ultralytics `YOLO` model."""

    def on_pretrain_routine_end(trainer: Any) -> None:
        from ultralytics.utils.torch_utils import unwrap_model

        ema = trainer.ema.ema if getattr(trainer, "ema", None) is not None else None
        install_box_loss(unwrap_model(trainer.model), entry, len(trainer.train_loader), trainer.epochs, ema)

    model.add_callback("on_pretrain_routine_end", on_pretrain_routine_end)


def box_loss_state(model: Any) -> dict[str, Any] | None:
    """The running states of a model's catalog box loss, per branch, as plain data (None: nothing to keep)."""
    out = {}
    for branch, det in _branches(getattr(model, "criterion", None)):
        state = getattr(getattr(det, "bbox_loss", None), "state", None)
        if state is not None:
            out[branch] = state.state_dict()
    return out or None


def load_box_loss_state(model: Any, saved: dict[str, Any]) -> bool:
    """Put back what `box_loss_state` saved; False when the model's criterion has no matching running state."""
    done = False
    for branch, det in _branches(getattr(model, "criterion", None)):
        state = getattr(getattr(det, "bbox_loss", None), "state", None)
        if state is not None and branch in saved:
            state.load_state_dict(saved[branch])
            done = True
    return done
