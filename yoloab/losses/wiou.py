"""Wise-IoU v1, v2 and v3: a distance attention on the IoU loss, and (v2, v3) focusing by a running mean.

Paper: Z. Tong, Y. Chen, Z. Xu, R. Yu, "Wise-IoU: Bounding Box Regression Loss with Dynamic Focusing Mechanism",
arXiv:2301.10051, 2023, eqs. 7-14; authors' code github.com/Instinct323/wiou (branch v1 is the paper's code).

    L_IoU = 1 - IoU
    R_WIoU = exp(((x - x_gt)² + (y - y_gt)²) / (W_g² + H_g²)*)       (* : detached, no gradient)
    v1:  L = R_WIoU L_IoU
    v2:  L = (L_IoU* / L̄_IoU)^γ  R_WIoU L_IoU,      γ = 0.5
    v3:  β = L_IoU* / L̄_IoU,   r = β / (δ α^(β - δ)),   L = r R_WIoU L_IoU,      α = 1.9, δ = 3

W_g, H_g: size of the smallest enclosing box. L̄_IoU is the running mean of L_IoU over training batches, starting at
1, with momentum m = 1 - 0.05^(1/(t n)) (the paper's recommendation: n batches per epoch, and after t epochs the
starting value weighs 5%). The paper leaves t to the user (the epoch where mAP's rise slows; its own run used
n = 890, t = 34); yoloab takes t = the run's epochs, so the starting value has faded to 5% by the last epoch.
α = 1.9, δ = 3 are the paper's values for its YOLOv7 experiments (the authors' later code uses 1.7 and 2.7).

As in the authors' code, the mean is updated with each training batch before that batch's loss uses it, only in
training (validation reads it), and it is kept per criterion branch (YOLOv10's and YOLO26's one-to-many and
one-to-one heads each have their own). yoloab saves it with each epoch's resume state and restores it on resume.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .boxes import geometry

PAPER = "Tong et al., Wise-IoU: Bounding Box Regression Loss with Dynamic Focusing Mechanism, arXiv:2301.10051 (2023)"
GAMMA = 0.5  # v2's focusing exponent
ALPHA = 1.9  # v3
DELTA = 3.0  # v3
REAL_SHARE = 0.05  # the starting value's weight after t epochs (the paper's 0.05)


def paper_momentum(batches_per_epoch: int, epochs: int) -> float:
    """The paper's momentum m = 1 - 0.05^(1/(t n)): the starting value weighs 5% after t epochs of n batches."""
    steps = max(1, int(batches_per_epoch) * int(epochs))
    return 1 - REAL_SHARE ** (1 / steps)


@dataclass
class RunningMean:
    """The running mean L̄_IoU of Wise-IoU v2 and v3.

    Attributes:
        momentum: weight of each new batch's mean.
        value: the mean (a float32 scalar tensor on the loss's device); starts at 1.
        updates: batches seen.
    """

    momentum: float
    value: torch.Tensor | None = None
    updates: int = 0

    def __post_init__(self) -> None:
        if self.value is None:
            self.value = torch.tensor(1.0)

    def update(self, l_iou: torch.Tensor) -> None:
        """Fold one batch's mean L_IoU in (a batch without boxes changes nothing)."""
        if l_iou.numel() == 0:
            return
        value = self.value.to(l_iou.device)
        self.value = value * (1 - self.momentum) + self.momentum * l_iou.detach().float().mean()
        self.updates += 1

    def state_dict(self) -> dict[str, float | int]:
        """Plain data (float32 to float is exact), for the resume state."""
        return {"value": float(self.value), "updates": int(self.updates), "momentum": float(self.momentum)}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        """Put back what `state_dict` gave."""
        self.value = torch.tensor(float(state["value"]), dtype=torch.float32)
        self.updates = int(state["updates"])
        self.momentum = float(state["momentum"])


def _parts(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_IoU, R_WIoU) per box pair."""
    g = geometry(pred, target)
    return 1 - g.iou, torch.exp(g.rho2 / g.c2.detach())


def _mean(ctx: object, l_iou: torch.Tensor) -> torch.Tensor:
    """L̄_IoU after this batch (updated in training only); 1, the starting value, without a state."""
    state = getattr(ctx, "state", None)
    if state is None:
        return torch.ones((), device=l_iou.device)
    if getattr(ctx, "training", False):
        state.update(l_iou)
    return state.value.to(l_iou.device)


def wiou_v1_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
    """`R_WIoU L_IoU` per box pair (xyxy)."""
    l_iou, r = _parts(pred, target)
    return r * l_iou


def wiou_v2_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
    """`(L_IoU*/L̄_IoU)^γ R_WIoU L_IoU` per box pair (xyxy)."""
    l_iou, r = _parts(pred, target)
    mean = _mean(ctx, l_iou)
    return (l_iou.detach() / mean) ** GAMMA * r * l_iou


def wiou_v3_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
    """`β/(δ α^(β-δ)) R_WIoU L_IoU` per box pair (xyxy), β = L_IoU*/L̄_IoU."""
    l_iou, r = _parts(pred, target)
    beta = l_iou.detach() / _mean(ctx, l_iou)
    return beta / (DELTA * ALPHA ** (beta - DELTA)) * r * l_iou
