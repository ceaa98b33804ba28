"""The box-loss catalog against torchvision, against transcriptions of the papers' equations, and hand-worked values.

The transcriptions below are written per box pair in plain Python floats (`math`), independently of the catalog's
tensor code; each loss also has one value worked out by hand for one box pair. Training-side checks: the catalog CIoU
put into Ultralytics' criterion reproduces Ultralytics' own box loss; Wise-IoU's running mean follows the paper's
momentum; a plugin registers a loss; an unknown name is one line with the nearest names.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.ops as tvo

from yoloab.errors import LossRegistrationError, UnknownLossError
from yoloab.losses import COMPOSABLE, DEFAULT_LOSS, LOSSES, LossContext, check_losses, get_loss, register_loss
from yoloab.losses import wiou as wiou_mod

IMAGE = (640.0, 480.0)


def _random_boxes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random xyxy pairs in float64: overlapping, disjoint, nested and degenerate (zero width or height) ones."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, 2, generator=g, dtype=torch.float64) * 100
    wh = torch.rand(n, 2, 2, generator=g, dtype=torch.float64) * 60 + 0.5
    boxes = torch.cat((xy, xy + wh), -1)  # (n, 2, 4)
    pred, target = boxes[:, 0].clone(), boxes[:, 1].clone()
    pred[: n // 8, 2] = pred[: n // 8, 0]  # zero width
    target[n // 8 : n // 4, 3] = target[n // 8 : n // 4, 1]  # zero height
    pred[n // 4 : n // 4 + 8] = target[n // 4 : n // 4 + 8] + 300  # disjoint
    inner = target[n // 2 : n // 2 + 8]
    shrink = torch.tensor([1.0, 1, -1, -1], dtype=torch.float64) * 0.2 * (inner[:, 2:3] - inner[:, :1])
    pred[n // 2 : n // 2 + 8] = inner + shrink  # nested
    return pred, target


# ---- torchvision ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("GIoU", tvo.generalized_box_iou_loss),
        ("DIoU", tvo.distance_box_iou_loss),
        ("CIoU", tvo.complete_box_iou_loss),
    ],
    ids=["GIoU", "DIoU", "CIoU"],
)
def test_giou_diou_ciou_equal_torchvision(name, reference):
    pred, target = _random_boxes(256, seed=1)
    ours = get_loss(name).term(pred, target)
    theirs = reference(pred, target, reduction="none")
    assert torch.isfinite(theirs).all()
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    assert (theirs[256 // 4 : 256 // 4 + 8] > 1).all()  # the disjoint pairs were in the sample


# ---- transcriptions of the papers' equations (floats, one pair at a time) ---------------------------------------


def _parts(p, t):
    x1, y1, x2, y2 = p
    a1, b1, a2, b2 = t
    w, h, wg, hg = x2 - x1, y2 - y1, a2 - a1, b2 - b1
    inter = max(0.0, min(x2, a2) - max(x1, a1)) * max(0.0, min(y2, b2) - max(y1, b1))
    iou = inter / (w * h + wg * hg - inter)
    cw, ch = max(x2, a2) - min(x1, a1), max(y2, b2) - min(y1, b1)
    dx, dy = (x1 + x2) / 2 - (a1 + a2) / 2, (y1 + y2) / 2 - (b1 + b2) / 2
    return dict(w=w, h=h, wg=wg, hg=hg, iou=iou, cw=cw, ch=ch, c2=cw**2 + ch**2, dx=dx, dy=dy, rho2=dx**2 + dy**2)


def _ciou(p, t):
    q = _parts(p, t)
    v = 4 / math.pi**2 * (math.atan(q["wg"] / q["hg"]) - math.atan(q["w"] / q["h"])) ** 2
    return 1 - q["iou"] + q["rho2"] / q["c2"] + v / ((1 - q["iou"]) + v) * v


def _paper(name, p, t, mean=1.0):
    q = _parts(p, t)
    iou = q["iou"]
    if name == "IoU":
        return 1 - iou
    if name == "GIoU":
        union = q["w"] * q["h"] + q["wg"] * q["hg"] - _inter(p, t)
        return 1 - iou + (q["cw"] * q["ch"] - union) / (q["cw"] * q["ch"])
    if name == "DIoU":
        return 1 - iou + q["rho2"] / q["c2"]
    if name == "CIoU":
        return _ciou(p, t)
    if name == "EIoU":
        return (
            1
            - iou
            + q["rho2"] / q["c2"]
            + (q["w"] - q["wg"]) ** 2 / q["cw"] ** 2
            + (q["h"] - q["hg"]) ** 2 / q["ch"] ** 2
        )
    if name == "SIoU":  # Gevorgyan eqs. 1-11: the angle to whichever axis is nearer
        sigma = math.hypot(q["dx"], q["dy"])
        alpha = math.asin(abs(q["dy"]) / sigma)
        if alpha > math.pi / 4:
            alpha = math.pi / 2 - alpha
        lam = 1 - 2 * math.sin(alpha - math.pi / 4) ** 2
        gamma = 2 - lam
        dist = sum(1 - math.exp(-gamma * r) for r in ((q["dx"] / q["cw"]) ** 2, (q["dy"] / q["ch"]) ** 2))
        om = [abs(q["w"] - q["wg"]) / max(q["w"], q["wg"]), abs(q["h"] - q["hg"]) / max(q["h"], q["hg"])]
        shape = sum((1 - math.exp(-o)) ** 4 for o in om)
        return 1 - iou + (dist + shape) / 2
    if name == "MPDIoU":
        d1 = (p[0] - t[0]) ** 2 + (p[1] - t[1]) ** 2
        d2 = (p[2] - t[2]) ** 2 + (p[3] - t[3]) ** 2
        n = IMAGE[0] ** 2 + IMAGE[1] ** 2
        return 1 - (iou - d1 / n - d2 / n)
    if name == "Shape-IoU":  # scale 0: ww = hh = 1
        dist = (q["dx"] ** 2 + q["dy"] ** 2) / q["c2"]
        om = [abs(q["w"] - q["wg"]) / max(q["w"], q["wg"]), abs(q["h"] - q["hg"]) / max(q["h"], q["hg"])]
        return 1 - iou + dist + 0.5 * sum((1 - math.exp(-o)) ** 4 for o in om)
    r_wiou = math.exp(q["rho2"] / q["c2"])
    if name == "WIoUv1":
        return r_wiou * (1 - iou)
    if name == "WIoUv2":
        return ((1 - iou) / mean) ** 0.5 * r_wiou * (1 - iou)
    if name == "WIoUv3":
        beta = (1 - iou) / mean
        return beta / (3 * 1.9 ** (beta - 3)) * r_wiou * (1 - iou)
    if name == "alpha-IoU":
        return 1 - iou**3
    if name == "alpha-CIoU":
        v = 4 / math.pi**2 * (math.atan(q["wg"] / q["hg"]) - math.atan(q["w"] / q["h"])) ** 2
        beta = v / ((1 - iou) + v)
        return 1 - iou**3 + (q["rho2"] / q["c2"]) ** 3 + (beta * v) ** 3
    if name in ("NWD", "NWD-CIoU"):  # Wang et al. eqs. 5-7, C = 12.8
        w2 = q["dx"] ** 2 + q["dy"] ** 2 + ((q["w"] - q["wg"]) / 2) ** 2 + ((q["h"] - q["hg"]) / 2) ** 2
        l_nwd = 1 - math.exp(-math.sqrt(w2) / 12.8)
        return l_nwd if name == "NWD" else 0.5 * l_nwd + 0.5 * _ciou(p, t)
    kind, _, base = name.partition("-")
    if kind == "Inner":  # Zhang et al.: auxiliary boxes scaled by 0.7 about the centres

        def scale(b):
            cx, cy, hw, hh = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, (b[2] - b[0]) * 0.35, (b[3] - b[1]) * 0.35
            return (cx - hw, cy - hh, cx + hw, cy + hh)

        return _paper(base, p, t) + iou - _parts(scale(p), scale(t))["iou"]
    if kind == "Focaler":  # d = 0, u = 0.95
        focal = 0.0 if iou < 0 else 1.0 if iou > 0.95 else iou / 0.95
        return _paper(base, p, t) + iou - focal
    raise KeyError(name)


def _inter(p, t):
    return max(0.0, min(p[2], t[2]) - max(p[0], t[0])) * max(0.0, min(p[3], t[3]) - max(p[1], t[1]))


TRANSCRIBED = [e.name for e in LOSSES if e.source == "yoloab"]


@pytest.mark.parametrize("name", TRANSCRIBED, ids=TRANSCRIBED)
def test_each_loss_equals_a_transcription_of_its_paper(name):
    g = torch.Generator().manual_seed(7)
    xy = torch.rand(64, 2, 2, generator=g, dtype=torch.float64) * 80
    wh = torch.rand(64, 2, 2, generator=g, dtype=torch.float64) * 50 + 2
    boxes = torch.cat((xy, xy + wh), -1)
    pred, target = boxes[:, 0], boxes[:, 1]
    pred[:4] = target[:4] + 200  # disjoint pairs too
    ours = get_loss(name).term(pred, target, LossContext(image_wh=IMAGE))
    pairs = zip(pred.tolist(), target.tolist(), strict=True)
    expected = torch.tensor([_paper(name, p, t) for p, t in pairs], dtype=torch.float64)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-6)


# ---- one hand-worked value per loss -----------------------------------------------------------------------------
# pred (0,0,4,2), target (1,0,5,2): w=h ratio equal (4x2 both), overlap 3x2=6, union 10, IoU 0.6; enclosing 5x2,
# c² = 29, centre offset dx = -1, dy = 0 (ρ² = 1); same size, so every shape/aspect term is 0.
P, T = (0.0, 0.0, 4.0, 2.0), (1.0, 0.0, 5.0, 2.0)
HAND = {
    "IoU": 0.4,
    "GIoU": 0.4 + (10 - 10) / 10,  # the enclosing box (5x2) is the union: GIoU = IoU
    "DIoU": 0.4 + 1 / 29,
    "CIoU": 0.4 + 1 / 29,  # equal aspect ratios: v = 0
    "EIoU": 0.4 + 1 / 29,  # equal widths and heights
    # SIoU: the centres lie on the x axis, angle 0 -> Λ = 1 - 2 sin²(-π/4) = 0, γ = 2; ρ_x = (1/5)², ρ_y = 0
    "SIoU": 0.4 + (1 - math.exp(-2 * 0.04)) / 2,
    # MPDIoU on a 640x480 image: d1² = d2² = 1, w² + h² = 640000
    "MPDIoU": 0.4 + 2 / 640000,
    "Shape-IoU": 0.4 + 1 / 29,  # scale 0: ww = hh = 1, no shape cost
    "WIoUv1": math.exp(1 / 29) * 0.4,
    "WIoUv2": (0.4 / 1.0) ** 0.5 * math.exp(1 / 29) * 0.4,  # starting mean 1
    "WIoUv3": 0.4 / (3 * 1.9 ** (0.4 - 3)) * math.exp(1 / 29) * 0.4,
    "alpha-IoU": 1 - 0.6**3,
    "alpha-CIoU": 1 - 0.6**3 + (1 / 29) ** 3,
    "NWD": 1 - math.exp(-1 / 12.8),  # W₂ = 1 (centres 1 apart, same size)
    "NWD-CIoU": 0.5 * (1 - math.exp(-1 / 12.8)) + 0.5 * (0.4 + 1 / 29),
}
# Inner (ratio 0.7): inner boxes (0.6,0.3,3.4,1.7) and (1.6,0.3,4.4,1.7): overlap 1.8x1.4 = 2.52, union
# 2x3.92 - 2.52 = 5.32, IoU_inner = 2.52/5.32
# Focaler (d 0, u 0.95): IoU_focaler = 0.6/0.95
for _base in COMPOSABLE:
    HAND[f"Inner-{_base}"] = HAND[_base] + 0.6 - 2.52 / 5.32
    HAND[f"Focaler-{_base}"] = HAND[_base] + 0.6 - 0.6 / 0.95


@pytest.mark.parametrize("name", TRANSCRIBED, ids=TRANSCRIBED)
def test_hand_worked_value(name):
    pred, target = torch.tensor([P], dtype=torch.float64), torch.tensor([T], dtype=torch.float64)
    value = get_loss(name).term(pred, target, LossContext(image_wh=IMAGE))
    assert value.item() == pytest.approx(HAND[name], abs=1e-6)


def test_every_catalog_loss_has_a_hand_worked_value():
    assert set(TRANSCRIBED) == set(HAND)


# ---- gradients --------------------------------------------------------------------------------------------------

CASES = {
    "identical": ((10.0, 10, 30, 40), (10.0, 10, 30, 40)),
    "nested": ((12.0, 14, 20, 30), (10.0, 10, 30, 40)),
    "disjoint": ((100.0, 100, 120, 110), (10.0, 10, 30, 40)),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("name", LOSSES.names(), ids=LOSSES.names())
def test_gradients_are_finite(name, case):
    p, t = CASES[case]
    pred = torch.tensor([p], requires_grad=True)
    entry = get_loss(name)
    ctx = LossContext(image_wh=IMAGE, state=entry.new_state(10, 2), training=True)
    loss = entry.term(pred, torch.tensor([t]), ctx).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all(), pred.grad


# ---- Wise-IoU's running mean ------------------------------------------------------------------------------------


def test_wiou_running_mean_follows_the_papers_momentum():
    entry = get_loss("WIoUv3")
    state = entry.new_state(batches_per_epoch=4, epochs=5)
    m = 1 - 0.05 ** (1 / 20)
    assert state.momentum == pytest.approx(m)
    pred, target = torch.tensor([P]), torch.tensor([T])
    mean = 1.0
    for _ in range(3):
        value = entry.term(pred, target, LossContext(state=state, training=True))
        mean = (1 - m) * mean + m * 0.4  # the mean moves before this batch's loss reads it (authors' code)
        beta = 0.4 / mean
        assert value.item() == pytest.approx(beta / (3 * 1.9 ** (beta - 3)) * math.exp(1 / 29) * 0.4, rel=1e-5)
    assert state.updates == 3 and float(state.value) == pytest.approx(mean, rel=1e-6)
    entry.term(pred, target, LossContext(state=state, training=False))  # validation reads, never updates
    entry.term(pred[:0], target[:0], LossContext(state=state, training=True))  # a batch without boxes: no NaN mean
    assert state.updates == 3 and math.isfinite(float(state.value))
    # after t·n batches the starting value weighs 5%, as the paper chose m for
    assert (1 - m) ** 20 == pytest.approx(0.05)
    saved = state.state_dict()
    again = entry.new_state(4, 5)
    again.load_state_dict(saved)
    assert again.state_dict() == saved and torch.equal(again.value, state.value.float())


def test_wiou_constants_are_the_papers():
    assert (wiou_mod.ALPHA, wiou_mod.DELTA, wiou_mod.GAMMA) == (1.9, 3.0, 0.5)


# ---- the criterion ----------------------------------------------------------------------------------------------


def _criterion_inputs():
    from ultralytics.cfg import get_cfg

    from yoloab.models import get_base_model
    from yoloab.variants import baseline, build

    torch.manual_seed(0)
    model = build(baseline(get_base_model("yolov8n")), nc=3)
    model.args = get_cfg()
    model.train()
    imgs = torch.rand(2, 3, 64, 64)
    batch = {
        "img": imgs,
        "batch_idx": torch.tensor([0.0, 0, 1]),
        "cls": torch.tensor([[0.0], [1], [2]]),
        "bboxes": torch.tensor([[0.3, 0.3, 0.2, 0.25], [0.6, 0.7, 0.3, 0.2], [0.5, 0.5, 0.4, 0.5]]),
    }
    return model, batch


def test_catalog_ciou_in_the_criterion_reproduces_ultralytics_box_loss():
    """The hook's weighting, summing and pixel conversion: the catalog CIoU gives Ultralytics' own box term."""
    from yoloab._ultralytics.loss import install_box_loss

    model, batch = _criterion_inputs()
    preds = model(batch["img"])
    _, own = model.loss(batch, preds)
    model.criterion = None
    install_box_loss(model, get_loss("CIoU"), batches_per_epoch=1, epochs=1)
    _, ours = model.loss(batch, preds)
    assert float(own["box_loss"]) > 0
    assert float(ours["box_loss"]) == pytest.approx(float(own["box_loss"]), rel=1e-5)
    assert float(ours["dfl_loss"]) == float(own["dfl_loss"])  # Ultralytics' DFL term, untouched
    install_box_loss(model, get_loss("GIoU"), 1, 1)  # reuses the criterion; another term gives another value
    model.criterion = None
    install_box_loss(model, get_loss("GIoU"), 1, 1)
    _, giou = model.loss(batch, preds)
    assert float(giou["box_loss"]) != pytest.approx(float(own["box_loss"]), rel=1e-5)


# ---- names, plugins ---------------------------------------------------------------------------------------------


def test_names_and_combinations():
    assert DEFAULT_LOSS == "CIoU"
    from yoloab.cli.options import DEFAULT_LOSS as CLI_DEFAULT
    from yoloab.report.table import DEFAULT_LOSS as REPORT_DEFAULT
    from yoloab.significance import DEFAULT_LOSS as SIGNIFICANCE_DEFAULT

    assert CLI_DEFAULT == REPORT_DEFAULT == SIGNIFICANCE_DEFAULT == DEFAULT_LOSS
    assert {f"Inner-{b}" for b in COMPOSABLE} | {f"Focaler-{b}" for b in COMPOSABLE} <= set(LOSSES.names())
    assert check_losses(["siou", "SIoU", "wiouv3"]) == ["CIoU", "SIoU", "WIoUv3"]  # the default: every Δ's reference
    assert check_losses(["WIoUv3", "ciou"]) == ["CIoU", "WIoUv3"]
    assert check_losses(None) == ["CIoU"]


def test_unknown_loss_names_the_nearest():
    with pytest.raises(UnknownLossError) as err:
        check_losses(["SIoUU"])
    assert "SIoU" in str(err.value) and "\n" not in str(err.value)


def test_a_plugin_registers_a_loss():
    @register_loss("TestL1Corners", returns="loss", paper="test")
    def l1(pred, target):
        return (pred - target).abs().sum(-1)

    @register_loss("TestPlainIoU", returns="iou")
    def plain(pred, target):
        return tvo.box_iou(pred, target).diagonal()

    try:
        pred, target = torch.tensor([P]), torch.tensor([T])
        assert get_loss("TestL1Corners").term(pred, target).item() == pytest.approx(2.0)
        assert get_loss("testplainiou").term(pred, target).item() == pytest.approx(0.4)
        with pytest.raises(LossRegistrationError):
            register_loss("bad/name")(l1)
    finally:
        LOSSES.remove("TestL1Corners")
        LOSSES.remove("TestPlainIoU")
