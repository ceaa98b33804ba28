"""Tests for yoloab.modules.akconv: sizes, kernel layout, sampling orientation and the reference's border quirk.

Expected values come from literal lists, closed forms or per-cell loops written here, never from the module itself.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yoloab.modules.akconv import AKConv, kernel_points
from yoloab.registry import MODULES, Placement

# Initial kernel points (row, col), written out by hand from width = round(sqrt(N)), rows = N // width.
LAYOUTS = {
    1: [(0, 0)],
    2: [(0, 0), (1, 0)],
    3: [(0, 0), (0, 1), (1, 0)],
    4: [(0, 0), (0, 1), (1, 0), (1, 1)],
    5: [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)],
    6: [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)],
    9: [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)],
}

# A 5x5 map whose values are not a linear function of (row, col), so that wrong bilinear weights show up.
X5 = torch.tensor(
    [
        [3.0, 7.0, 1.0, 4.0, 9.0],
        [2.0, 8.0, 5.0, 6.0, 0.0],
        [6.0, 1.0, 9.0, 3.0, 7.0],
        [4.0, 5.0, 2.0, 8.0, 1.0],
        [9.0, 0.0, 6.0, 2.0, 5.0],
    ]
).view(1, 1, 5, 5)


def out_size(size: int, stride: int) -> int:
    return (size + 2 * 1 - 3) // stride + 1


def zero_offsets(m: AKConv) -> AKConv:
    with torch.no_grad():
        m.p_conv.weight.zero_()
        m.p_conv.bias.zero_()
    return m


def sample_reader(c1: int, n: int, stride: int, cls: type[AKConv] = AKConv) -> AKConv:
    """AKConv with zero offsets whose output channel ch * N + k is sample k of input channel ch."""
    m = zero_offsets(cls(c1, c1 * n, n, stride))
    with torch.no_grad():
        m.conv[0].weight.zero_()
        for ch in range(c1):
            for k in range(n):
                m.conv[0].weight[ch * n + k, ch, k, 0] = 1.0
    m.conv[1] = nn.Identity()
    m.conv[2] = nn.Identity()
    return m


def expected_samples(x: torch.Tensor, points: list[tuple[int, int]], stride: int) -> torch.Tensor:
    """Per-cell reading of x at (i*stride, j*stride) + point, with the reference's 2x per clamped axis."""
    b, c1, height, width = x.shape
    n = len(points)
    h, w = out_size(height, stride), out_size(width, stride)
    out = torch.empty(b, c1 * n, h, w, dtype=x.dtype)
    for i in range(h):
        for j in range(w):
            for k, (pr, pc) in enumerate(points):
                r, c, factor = i * stride + pr, j * stride + pc, 1.0
                if r >= height - 1:
                    r, factor = height - 1, factor * 2
                if c >= width - 1:
                    c, factor = width - 1, factor * 2
                for ch in range(c1):
                    out[:, ch * n + k, i, j] = factor * x[:, ch, r, c]
    return out


def expected_touched(
    points: list[tuple[int, int]], stride: int, height: int, width: int, pixel: tuple[int, int]
) -> torch.Tensor:
    """Output cells with a sampling point on `pixel` (zero offsets, positions clamped into the image)."""
    h, w = out_size(height, stride), out_size(width, stride)
    touched = torch.zeros(h, w, dtype=torch.bool)
    for i in range(h):
        for j in range(w):
            for pr, pc in points:
                if (min(i * stride + pr, height - 1), min(j * stride + pc, width - 1)) == pixel:
                    touched[i, j] = True
    return touched


class TransposedAKConv(AKConv):
    """The circulating variant that builds its grids with meshgrid(indexing='xy'); must fail the orientation tests."""

    def _get_p_0(self, offset: torch.Tensor) -> torch.Tensor:
        n, (h, w), s = self.num_param, offset.shape[2:], self.stride
        p_0_r, p_0_c = torch.meshgrid(torch.arange(0, h * s, s), torch.arange(0, w * s, s), indexing="xy")
        p_0_r = p_0_r.flatten().view(1, 1, h, w).repeat(1, n, 1, 1)
        p_0_c = p_0_c.flatten().view(1, 1, h, w).repeat(1, n, 1, 1)
        return torch.cat([p_0_r, p_0_c], 1).to(offset.dtype)


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "c1, c2, n, stride, bias",
    [(3, 16, 5, 2, None), (8, 8, 1, 1, None), (4, 6, 9, 2, True), (16, 32, 3, 1, False)],
    ids=["N5-s2-nobias", "N1-s1-nobias", "N9-s2-bias", "N3-s1-biasFalse"],
)
def test_parameter_count_closed_form(c1, c2, n, stride, bias):
    m = AKConv(c1, c2, n, stride, bias)
    expected = (9 * c1 * 2 * n + 2 * n) + (c1 * c2 * n + (c2 if bias else 0)) + 2 * c2
    assert sum(p.numel() for p in m.parameters()) == expected


def test_state_dict_keys_match_reference():
    keys = set(AKConv(3, 4, 5).state_dict())
    assert keys == {
        "conv.0.weight",
        "conv.1.weight",
        "conv.1.bias",
        "conv.1.running_mean",
        "conv.1.running_var",
        "conv.1.num_batches_tracked",
        "p_conv.weight",
        "p_conv.bias",
    }


def test_offset_conv_init():
    m = AKConv(3, 4, 5, 2)
    assert m.p_conv.kernel_size == (3, 3) and m.p_conv.padding == (1, 1) and m.p_conv.stride == (2, 2)
    assert m.p_conv.out_channels == 10
    assert torch.count_nonzero(m.p_conv.weight) == 0
    assert m.p_conv.bias is not None and torch.count_nonzero(m.p_conv.bias) > 0


@pytest.mark.parametrize(
    "shape, n, stride",
    [((2, 3, 8, 8), 5, 1), ((2, 3, 8, 8), 5, 2), ((2, 4, 7, 12), 3, 1), ((2, 4, 7, 12), 4, 2), ((1, 2, 9, 5), 9, 2)],
    ids=["8x8-s1", "8x8-s2", "7x12-s1", "7x12-s2", "9x5-s2"],
)
def test_output_shape_and_backward(shape, n, stride):
    torch.manual_seed(0)
    b, c1, height, width = shape
    m = AKConv(c1, 6, n, stride)
    x = torch.randn(shape)
    y = m(x)
    assert y.shape == (b, 6, out_size(height, stride), out_size(width, stride))
    y.square().mean().backward()
    for grad in (m.p_conv.bias.grad, m.p_conv.weight.grad, m.conv[0].weight.grad):
        assert torch.isfinite(grad).all()
        assert grad.abs().sum() > 0


def test_follows_module_dtype():
    m = AKConv(2, 3, 5, 2).double()
    y = m(torch.randn(1, 2, 6, 7, dtype=torch.float64))
    assert y.dtype == torch.float64


# ---------------------------------------------------------------- initial layout


@pytest.mark.parametrize("n", sorted(LAYOUTS), ids=[f"N{n}" for n in sorted(LAYOUTS)])
def test_kernel_points(n):
    assert kernel_points(n) == LAYOUTS[n]


@pytest.mark.parametrize("n", sorted(LAYOUTS), ids=[f"N{n}" for n in sorted(LAYOUTS)])
def test_p_n_rows_then_cols(n):
    m = AKConv(1, 1, n)
    p_n = m._get_p_n(torch.zeros(1, 2 * n, 1, 1))
    rows = [r for r, _ in LAYOUTS[n]]
    cols = [c for _, c in LAYOUTS[n]]
    assert p_n.shape == (1, 2 * n, 1, 1)
    assert p_n.flatten().tolist() == rows + cols


def test_kernel_points_rejects_zero():
    with pytest.raises(ValueError, match="num_param"):
        AKConv(1, 1, 0)


# ---------------------------------------------------------------- orientation

ORIENTATION_CASES = [((9, 9), 5, 1), ((9, 9), 6, 2), ((7, 11), 5, 1), ((7, 11), 6, 2), ((11, 7), 5, 2)]
ORIENTATION_IDS = ["9x9-N5-s1", "9x9-N6-s2", "7x11-N5-s1", "7x11-N6-s2", "11x7-N5-s2"]


@pytest.mark.parametrize("size, n, stride", ORIENTATION_CASES, ids=ORIENTATION_IDS)
def test_samples_follow_ij_orientation(size, n, stride):
    torch.manual_seed(1)
    x = torch.randn(2, 2, *size)
    got = sample_reader(2, n, stride)(x)
    torch.testing.assert_close(got, expected_samples(x, LAYOUTS[n], stride), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "size, n, stride",
    [((9, 9), 5, 1), ((9, 9), 6, 2), ((7, 11), 5, 1), ((7, 11), 6, 2)],
    ids=["9x9-N5-s1", "9x9-N6-s2", "7x11-N5-s1", "7x11-N6-s2"],
)
def test_transposed_variant_fails_sample_check(size, n, stride):
    torch.manual_seed(1)
    x = torch.randn(2, 2, *size)
    got = sample_reader(2, n, stride, TransposedAKConv)(x)
    assert not torch.allclose(got, expected_samples(x, LAYOUTS[n], stride), rtol=0, atol=1e-6)


PERTURB_CASES = [
    ((9, 9), 1, (2, 5)),
    ((9, 9), 2, (8, 3)),
    ((7, 11), 1, (3, 8)),
    ((7, 11), 2, (6, 4)),
    ((7, 11), 2, (2, 10)),
]
PERTURB_IDS = ["9x9-s1-interior", "9x9-s2-bottom", "7x11-s1-interior", "7x11-s2-bottom", "7x11-s2-right"]


def perturbation_map(m: AKConv, size: tuple[int, int], pixel: tuple[int, int]) -> torch.Tensor:
    """Which output cells change when one input pixel changes (BN in eval, so cells stay independent)."""
    torch.manual_seed(2)
    m.eval()
    x = torch.randn(1, 3, *size)
    x2 = x.clone()
    x2[..., pixel[0], pixel[1]] += 1.0
    with torch.no_grad():
        diff = (m(x2) - m(x)).abs().amax(dim=(0, 1))
    return diff > 1e-6


@pytest.mark.parametrize("size, stride, pixel", PERTURB_CASES, ids=PERTURB_IDS)
def test_pixel_change_reaches_only_cells_sampling_it(size, stride, pixel):
    torch.manual_seed(3)
    m = zero_offsets(AKConv(3, 8, 5, stride))
    touched = expected_touched(LAYOUTS[5], stride, *size, pixel)
    assert touched.any()
    assert torch.equal(perturbation_map(m, size, pixel), touched)


@pytest.mark.parametrize("size, stride, pixel", PERTURB_CASES[2:], ids=PERTURB_IDS[2:])
def test_transposed_variant_fails_perturbation_check(size, stride, pixel):
    torch.manual_seed(3)
    m = zero_offsets(TransposedAKConv(3, 8, 5, stride))
    touched = expected_touched(LAYOUTS[5], stride, *size, pixel)
    assert not torch.equal(perturbation_map(m, size, pixel), touched)


# ---------------------------------------------------------------- bilinear sampling and the border quirk


def single_point_sample(row_offset: float, col_offset: float, cell: tuple[int, int]) -> float:
    """Sample of a 1-point AKConv on X5 at `cell` with a constant (row, col) offset."""
    m = sample_reader(1, 1, 1)
    with torch.no_grad():
        m.p_conv.bias.copy_(torch.tensor([row_offset, col_offset]))
    return m(X5)[0, 0, cell[0], cell[1]].item()


@pytest.mark.parametrize(
    "row_offset, col_offset, cell, expected",
    [
        (-0.5, 0.0, (0, 2), 2 * 1.0),  # p_row = -0.5 on the top row: 2 * X5[0, 2]
        (0.5, 0.0, (4, 2), 2 * 6.0),  # p_row = 4.5 > H-1: 2 * X5[4, 2]
        (0.0, 0.0, (4, 2), 2 * 6.0),  # p_row = 4 = H-1 exactly already doubles
        (0.0, -0.5, (2, 0), 2 * 6.0),  # p_col = -0.5: 2 * X5[2, 0]
        (0.0, 0.75, (3, 4), 2 * 1.0),  # p_col = 4.75: 2 * X5[3, 4]
        (-0.5, -0.5, (0, 0), 4 * 3.0),  # top-left corner: 4 * X5[0, 0]
        (0.5, 0.5, (4, 4), 4 * 5.0),  # bottom-right corner: 4 * X5[4, 4]
        (-0.5, 0.5, (0, 4), 4 * 9.0),  # top-right corner: 4 * X5[0, 4]
    ],
    ids=["top", "bottom", "last-row-exact", "left", "right", "corner-tl", "corner-br", "corner-tr"],
)
def test_border_quirk_doubles(row_offset, col_offset, cell, expected):
    assert single_point_sample(row_offset, col_offset, cell) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "row_offset, col_offset, cell, expected",
    [
        # (1.25, 2.5) between X5[1, 2]=5, X5[1, 3]=6, X5[2, 2]=9, X5[2, 3]=3
        (0.25, 0.5, (1, 2), 0.75 * 0.5 * 5 + 0.75 * 0.5 * 6 + 0.25 * 0.5 * 9 + 0.25 * 0.5 * 3),
        # (1.75, 0.25) between X5[1, 0]=2, X5[1, 1]=8, X5[2, 0]=6, X5[2, 1]=1
        (-0.25, -0.75, (2, 1), 0.25 * 0.75 * 2 + 0.25 * 0.25 * 8 + 0.75 * 0.75 * 6 + 0.75 * 0.25 * 1),
        # (3.5, 2.0): exact column, halfway between X5[3, 2]=2 and X5[4, 2]=6
        (0.5, 0.0, (3, 2), 0.5 * 2 + 0.5 * 6),
    ],
    ids=["plus-quarter-row-half-col", "minus-offsets", "column-exact"],
)
def test_bilinear_interior(row_offset, col_offset, cell, expected):
    assert single_point_sample(row_offset, col_offset, cell) == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------- hooks and registration


def test_no_gradient_hook_on_offset_conv():
    m = AKConv(3, 4, 5)
    assert not m.p_conv._backward_hooks
    assert not m.p_conv._backward_pre_hooks
    assert not m._backward_hooks


def test_registered_as_downsample():
    entry = MODULES.get("AKConv")
    assert entry.cls is AKConv
    assert entry.role == "downsample" and entry.channels == "conv"
    assert entry.article == Placement("backbone", (4, 8))
    assert "2311.11587" in entry.paper


# ---------------------------------------------------------------- the fast formulation (issue 23)
#
# `fast` must compute the same function as `faithful`, the port checked above against per-cell loops: the same
# forward and the same gradient of every input and parameter, to 1e-12 in float64. Positions are drawn so that many
# fall outside the image (the border quirk, the clamp), and a set of cases makes every position an exact integer,
# where bilinear sampling has its kinks and a formulation that rounds a coordinate picks the other side.


def pair(c1: int, c2: int, n: int, stride: int, bias: bool | None, offsets: str, seed: int) -> tuple[AKConv, AKConv]:
    """A faithful AKConv in float64 with the given kind of offsets, and a fast copy with the same parameters."""
    torch.manual_seed(seed)
    faithful = AKConv(c1, c2, n, stride, bias, impl="faithful").double()
    with torch.no_grad():
        if offsets == "random":  # a spread of several pixels: many positions land outside the image
            faithful.p_conv.weight.normal_(0, 1.0)
            faithful.p_conv.bias.normal_(0, 2.0)
        elif offsets == "zero":  # every position the integral grid point itself
            faithful.p_conv.weight.zero_()
            faithful.p_conv.bias.zero_()
        else:  # integral offsets, constant per kernel point: integral positions, some beyond each border
            faithful.p_conv.weight.zero_()
            faithful.p_conv.bias.copy_(torch.randint(-3, 4, (2 * n,), dtype=torch.float64))
        faithful.conv[1].weight.uniform_(0.5, 1.5)
        faithful.conv[1].bias.normal_()
    fast = AKConv(c1, c2, n, stride, bias, impl="fast").double()
    fast.load_state_dict(faithful.state_dict())
    return faithful, fast


def forward_and_grads(m: AKConv, x: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output and the gradient of sum(output * weight) for the input and every parameter, by name."""
    x = x.clone().requires_grad_(True)
    m.zero_grad()
    y = m(x)
    (y * weight).sum().backward()
    out = {"output": y.detach(), "grad input": x.grad}
    out.update({f"grad {name}": p.grad for name, p in m.named_parameters()})
    return out


EQUIVALENCE_CASES = [
    # (batch, c1, c2, N, stride, bias, H, W, offsets)
    (2, 3, 5, 5, 2, None, 9, 11, "random"),
    (2, 3, 5, 5, 1, True, 7, 6, "random"),
    (1, 4, 3, 9, 2, None, 10, 10, "random"),
    (2, 2, 4, 1, 1, False, 5, 8, "random"),
    (1, 3, 4, 3, 2, None, 8, 8, "zero"),
    (2, 3, 4, 5, 1, True, 7, 9, "zero"),
    (2, 3, 4, 5, 2, None, 9, 7, "integral"),
    (1, 2, 3, 6, 1, None, 6, 6, "integral"),
]
EQUIVALENCE_IDS = [
    "b2-N5-s2-random",
    "b2-N5-s1-bias-random",
    "b1-N9-s2-random",
    "b2-N1-s1-random",
    "b1-N3-s2-zero-offsets",
    "b2-N5-s1-bias-zero-offsets",
    "b2-N5-s2-integral-offsets",
    "b1-N6-s1-integral-offsets",
]


@pytest.mark.parametrize("b, c1, c2, n, stride, bias, height, width, offsets", EQUIVALENCE_CASES, ids=EQUIVALENCE_IDS)
def test_fast_equals_faithful_forward_and_every_gradient(b, c1, c2, n, stride, bias, height, width, offsets):
    faithful, fast = pair(c1, c2, n, stride, bias, offsets, seed=n * 10 + stride)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(b, c1, height, width, dtype=torch.float64, generator=g)
    h, w = out_size(height, stride), out_size(width, stride)
    weight = torch.randn(b, c2, h, w, dtype=torch.float64, generator=g)
    want = forward_and_grads(faithful, x, weight)
    got = forward_and_grads(fast, x, weight)
    assert want.keys() == got.keys() and len(want) == 2 + len(list(faithful.parameters()))
    for name in want:
        assert got[name] is not None and got[name].abs().sum() > 0 or want[name].abs().sum() == 0, name
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-12, msg=lambda m, name=name: f"{name}: {m}")


def test_integral_cases_do_sit_on_kinks_and_outside():
    # the 'zero' and 'integral' cases above must really test what they claim: integral positions, some beyond the
    # borders (the clamp) and some inside (a kink with a neighbour on each side)
    faithful, _ = pair(3, 4, 5, 2, None, "integral", seed=52)
    x = torch.zeros(1, 3, 9, 7, dtype=torch.float64)
    offset = faithful.p_conv(x)
    p = faithful._get_p_0(offset) + faithful._get_p_n(offset) + offset
    assert torch.equal(p, p.round())
    rows, cols = p[:, :5], p[:, 5:]
    assert (rows < 0).any() or (rows > 8).any() or (cols < 0).any() or (cols > 6).any()
    assert ((rows > 0) & (rows < 8) & (cols > 0) & (cols < 6)).any()


def test_fast_without_input_gradient_gives_the_parameter_gradients():
    # an input that needs no gradient (the first layer, frozen features) skips the scatter: the rest is unchanged
    faithful, fast = pair(3, 4, 5, 2, None, "random", seed=3)
    x = torch.randn(2, 3, 8, 9, dtype=torch.float64)
    for m in (faithful, fast):
        m.zero_grad()
        m(x).square().sum().backward()
    for (name, p), q in zip(faithful.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-12, msg=name)


def test_fast_in_float32_agrees_with_faithful():
    # training runs in float32: same function, rounding apart
    faithful, fast = pair(16, 32, 3, 2, None, "random", seed=4)
    faithful, fast = faithful.float(), fast.float()
    x = torch.randn(1, 16, 40, 40)
    torch.testing.assert_close(fast(x), faithful(x), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- choosing the formulation


def test_default_is_faithful_and_both_have_the_same_parameters(monkeypatch):
    monkeypatch.delenv("YOLOAB_AKCONV", raising=False)
    assert AKConv(3, 4, 5).akconv_impl == "faithful"
    torch.manual_seed(0)
    a = AKConv(3, 4, 5, 2, impl="faithful")
    torch.manual_seed(0)
    b = AKConv(3, 4, 5, 2, impl="fast")
    assert a.state_dict().keys() == b.state_dict().keys()
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name  # same construction order: a seed gives the same init under either


@pytest.mark.parametrize(
    "env, arg, expected",
    [(None, "fast", "fast"), ("fast", None, "fast"), ("fast", "faithful", "faithful"), ("faithful", None, "faithful")],
    ids=["arg", "env", "arg-beats-env", "env-faithful"],
)
def test_choice_by_argument_or_environment(monkeypatch, env, arg, expected):
    if env is None:
        monkeypatch.delenv("YOLOAB_AKCONV", raising=False)
    else:
        monkeypatch.setenv("YOLOAB_AKCONV", env)
    assert AKConv(3, 4, 5, 2, None, arg).akconv_impl == expected


@pytest.mark.parametrize(
    "env, arg, words",
    [(None, "fats", ["impl='fats'", "nearest: fast"]), ("faithfull", None, ["YOLOAB_AKCONV='faithfull'", "faithful"])],
    ids=["bad-arg", "bad-env"],
)
def test_unknown_formulation_is_one_line_with_the_nearest(monkeypatch, env, arg, words):
    if env is None:
        monkeypatch.delenv("YOLOAB_AKCONV", raising=False)
    else:
        monkeypatch.setenv("YOLOAB_AKCONV", env)
    with pytest.raises(ValueError) as err:
        AKConv(3, 4, 5, 2, None, arg)
    assert "\n" not in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_choice_is_recorded_and_survives_pickling(tmp_path):
    from yoloab.registry import recorded_attributes

    model = nn.Sequential(AKConv(3, 4, 5, 2, impl="fast"), AKConv(4, 4, 3, 1, impl="fast"))
    assert recorded_attributes(model) == {"akconv_impl": "fast"}
    model[1].akconv_impl = "faithful"
    assert recorded_attributes(model) == {"akconv_impl": ["fast", "faithful"]}
    torch.save(model, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    assert [m.akconv_impl for m in loaded] == ["fast", "faithful"]


def test_module_pickled_before_the_choice_existed_runs_faithful():
    m = AKConv(3, 4, 5, 2, impl="fast")
    del m.akconv_impl  # what unpickling an older checkpoint gives
    calls = []
    m._forward_faithful = lambda x: calls.append("faithful") or x  # type: ignore[method-assign]
    m._forward_fast = lambda x: calls.append("fast") or x  # type: ignore[method-assign]
    m(torch.zeros(1, 3, 4, 4))
    assert calls == ["faithful"]


@pytest.mark.slow  # one fresh interpreter importing Ultralytics
def test_yaml_row_chooses_and_a_fresh_process_rebuilds_it(tmp_path, monkeypatch):
    # the yaml row's fifth argument is the choice that travels with a model definition: a new process building the
    # same yaml, without any environment variable, gets the same formulations and, seeded, the same parameters
    import os
    import subprocess
    import sys

    from ultralytics.nn.tasks import DetectionModel

    yaml = tmp_path / "ak.yaml"
    yaml.write_text(
        "nc: 2\nbackbone:\n  - [-1, 1, Conv, [8, 3, 2]]\n  - [-1, 1, AKConv, [16, 3, 2, None, fast]]\n"
        "  - [-1, 1, AKConv, [16, 3, 2]]\nhead:\n  - [[2], 1, Detect, [nc]]\n"
    )
    script = (
        "import sys, torch, yoloab\n"
        "from ultralytics.nn.tasks import DetectionModel\n"
        "torch.manual_seed(0)\n"
        "m = DetectionModel(sys.argv[1], verbose=False)\n"
        "print([l.akconv_impl for l in m.model if hasattr(l, 'akconv_impl')])\n"
        "print(repr(sum(float(p.double().sum()) for p in m.state_dict().values())))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "YOLOAB_AKCONV"}
    run = subprocess.run([sys.executable, "-c", script, str(yaml)], capture_output=True, text=True, env=env, check=True)
    monkeypatch.delenv("YOLOAB_AKCONV", raising=False)
    torch.manual_seed(0)
    here = DetectionModel(str(yaml), verbose=False)
    impls = [layer.akconv_impl for layer in here.model if hasattr(layer, "akconv_impl")]
    checksum = sum(float(p.double().sum()) for p in here.state_dict().values())
    assert impls == ["fast", "faithful"]
    assert run.stdout.split("\n")[:2] == [str(impls), repr(checksum)]


def test_integral_positions_tell_the_two_sides_of_a_kink_apart():
    # control for the cases above: reading an integral position from the cell below (as a formulation that rounds
    # the coordinate down does) gives the same samples but another position gradient, which the tests would catch
    from yoloab.modules.akconv import _BilinearSamples

    torch.manual_seed(5)
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    p = torch.tensor([2.0, 3.0]).view(1, 2, 1, 1).double().requires_grad_(True)  # N = 1: row 2, column 3
    right, left = p.detach().floor(), (p.detach() - 0.5).floor()
    outs = []
    for floor in (right, left):
        s = _BilinearSamples.apply(x, p, floor)
        (grad,) = torch.autograd.grad(s.sum(), p)
        outs.append((s.detach(), grad))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=0, atol=1e-12)
    assert not torch.allclose(outs[0][1], outs[1][1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("b", [1, 2], ids=["b1", "b2"])
def test_fast_counts_the_same_flops(b):
    # the same ops are counted: a batched product (bmm) would be filed under attention and leave the published count
    from thop import profile
    from torch.utils.flop_counter import FlopCounterMode

    faithful, fast = pair(4, 6, 5, 2, None, "random", seed=6)
    x = torch.randn(b, 4, 9, 9, dtype=torch.float64)
    counts = []
    for m in (faithful, fast):
        with FlopCounterMode(display=False) as counter:
            m(x)
        counts.append({str(op): n for op, n in counter.get_flop_counts()["Global"].items()})
    assert sum(counts[0].values()) == sum(counts[1].values()) > 0
    assert not any("bmm" in op for op in counts[1])
    # and Ultralytics' count (thop, which hooks modules: a layer the forward skipped would count zero)
    macs = [profile(m.float(), inputs=(x.float(),), verbose=False)[0] for m in (faithful, fast)]
    assert macs[0] == macs[1] > 0


@pytest.mark.parametrize("impl", ["faithful", "fast"])
def test_a_nan_input_gives_nan_not_an_index_error(impl):
    # Ultralytics' get_flops feeds `torch.empty` (uninitialised memory, NaN at times): the reference's floor().long()
    # of a NaN position is index -2**63, and its gather raises; here the NaN reaches the output instead
    torch.manual_seed(0)
    m = AKConv(4, 8, 3, 2, impl=impl).eval()
    x = torch.randn(1, 4, 8, 8)
    x[0, :, 3, 3] = float("nan")
    with torch.no_grad():
        y = m(x)
        finite = m(torch.nan_to_num(x))
    assert y.shape == finite.shape == (1, 8, 4, 4)
    assert torch.isnan(y).any() and torch.isfinite(finite).all()
