"""SE: the squeeze-and-excitation block of Hu et al. (CVPR 2018), as timm's `SEModule` configured to the paper.

Paper: J. Hu, L. Shen, G. Sun, "Squeeze-and-Excitation Networks", CVPR 2018, pp. 7132-7141 (extended version with
S. Albanie and E. Wu in TPAMI 2020), arXiv:1709.01507.
Authors' code: github.com/hujie-frank/SENet (Caffe prototxt files, e.g. `models/SE-ResNet-50.prototxt`, read at
0262d43d44c561fd53c3dba210cc8bacfc60500d). Being Caffe, it cannot be run next to this module, so two PyTorch
references were run instead:
- Cadene/pretrained-models.pytorch, `pretrainedmodels/models/senet.py` (`SEModule`), the port that loads the
  authors' converted ImageNet weights; same layout (1x1 convs `fc1`, `fc2` with bias) and same state_dict keys;
- moskomule/senet.pytorch, `senet/se_module.py` (`SELayer`), a widely used re-implementation with bias-free
  `nn.Linear` layers (reproduced here with `bias=False`, weights mapped by reshaping).

Compared with Cadene/pretrained-models.pytorch@8aae3d8f1135b6b13fed79c1d431e3449fdbf6e0: `SEModule(c, r)` vs
`SE(c, r)`, state_dict loaded as is (same keys), float64 with N(0, 1) weights, c in {16, 32, 64, 128, 256},
r in {16, 4}: parameter count equal; forward output, input gradient and parameter gradients equal to 0.0 (max abs
difference). Compared with moskomule/senet.pytorch@8cb2669fec6fa344481726f9199aa611f08c3fbd: `SELayer(c, r)` vs
`SE(c, r, bias=False)`, Linear weights reshaped into the 1x1 convs, same cases: parameter count equal; max abs
difference 3.8e-15 (forward), 6.1e-15 (input gradient), 4.1e-14 (parameter gradients), from matmul vs conv rounding.

What it computes, for x (B, C, H, W) and r = `reduction`:
1. squeeze: z = the mean of x over H and W, one value per channel;
2. excitation: s = sigmoid(W2 relu(W1 z + b1) + b2), W1 of shape (C // r, C), W2 of shape (C, C // r);
3. scale: y = x * s, s broadcast over H and W.
Parameters: 2 C (C // r) + C // r + C (with biases, the default), 2 C (C // r) with `bias=False`.

Biases: the paper writes Eq. (3) and its parameter count (2/r sum_s N_s C_s^2) without biases, but the authors'
released models have them (the `*_1x1_down` / `*_1x1_up` Convolution layers keep Caffe's default `bias_term: true`,
where every other conv of the prototxt says `bias_term: false`), and so does the Cadene port. Biases are therefore
on by default; `bias=False` gives the bias-free variant that moskomule/senet.pytorch and many YOLO repositories use.

Reduced width: exactly C // r, as in the paper and the authors' models. timm's `SEModule` would round it to a
multiple of 8 (`rd_divisor=8`: 16 channels / 16 -> 8, not 1), so the width is passed as `rd_channels`. When C // r
would be 0 (C < r) the authors' 1x1 conv cannot be built (Caffe refuses `num_output: 0`, PyTorch's conv fails at the
first forward) and timm would silently substitute its rounded width, so this module raises a ValueError instead of
inventing a width; pass a smaller `reduction` for such narrow maps. With r = 16 every YOLO width from 16 up works.

Reuse: this class is timm's `timm.layers.SEModule` (1x1 convs `fc1`/`fc2`, ReLU, sigmoid gate, no norm, no max
pool), configured with the exact reduced width; its forward is timm's, unchanged.
Ultralytics ships no SE block.
"""

from __future__ import annotations

from timm.layers import SEModule

from yoloab.registry import channel_count_note, register_module

__all__ = ["SE"]


@register_module(
    role="attention",
    paper="Squeeze-and-Excitation Networks, Hu, Shen & Sun, CVPR 2018, arXiv:1709.01507",
    # public yaml rows such as [-1, 1, SE, [256]] give a channel count where yoloab reads reduction
    row_notes=(channel_count_note("SE", "reduction"),),
)
class SE(SEModule):
    """Squeeze-and-excitation channel attention: x * sigmoid(W2 relu(W1 avgpool(x) + b1) + b2).

    Args:
        c1: input (and output) channels C.
        reduction: the reduction ratio r; the hidden width is C // r.
        bias: biases on the two 1x1 convs, as in the authors' Caffe models; False gives the bias-free variant.

    Raises:
        ValueError: `reduction` is not positive, or C // r is 0.
    """

    def __init__(self, c1: int, reduction: int = 16, bias: bool = True) -> None:
        if reduction < 1:
            raise ValueError(f"SE needs a positive reduction ratio, got reduction={reduction}")
        hidden = c1 // reduction
        if hidden < 1:
            raise ValueError(
                f"SE(c1={c1}, reduction={reduction}) has c1 // reduction = 0 hidden units; "
                f"the reference's layer cannot be built; use reduction <= {c1}"
            )
        super().__init__(c1, rd_channels=hidden, bias=bias)
        self.reduction = reduction
