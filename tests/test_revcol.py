"""Tests of the RevCol backbone (yoloab/modules/revcol.py): CPU, tiny configs except where the real size counts."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from yoloab.modules.revcol import REVCOL_SIZES, RevCol, RevColConfig, revcol_param_count

# small enough to run in milliseconds, deep enough (3 columns, drop-path) to exercise the up paths and RNG replay
MINI = RevColConfig(channels=(8, 16, 32, 64), layers=(1, 1, 1, 1), num_subnet=3, drop_path=0.2)
STRIDES = (4, 8, 16, 32)


@pytest.fixture(scope="module")
def tiny() -> RevCol:
    """The real `tiny` size, built once for the whole module."""
    torch.manual_seed(0)
    return RevCol(3, "tiny").eval()


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomize(model: RevCol, seed: int = 0) -> None:
    """Move every parameter away from its init so that blocks (gamma 1e-6 at init) and alphas really contribute."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".alpha" in name:
                # |alpha| in [0.4, 1.0] with both signs: invertible, well conditioned
                sign = torch.where(torch.rand(p.shape, generator=gen) < 0.3, -1.0, 1.0)
                p.copy_(sign * (0.4 + 0.6 * torch.rand(p.shape, generator=gen)))
            elif name.endswith("gamma"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))


def block_rates(column: nn.Module) -> list[float]:
    """Drop-path rates of a column's blocks, in order (Identity = 0)."""
    rates = []
    for level in range(4):
        for block in getattr(column, f"level{level}").blocks:
            rates.append(getattr(block.drop_path, "drop_prob", 0.0))
    return rates


# --------------------------------------------------------------------------------------------- parameter counts


def test_tiny_param_count_spelled_out(tiny: RevCol) -> None:
    c0, c1, c2, c3 = 64, 128, 256, 512
    stem = (3 * c0 * 4 * 4 + c0) + 2 * c0  # Conv2d(3, C0, 4, s4) + channels-first LayerNorm

    def block(c: int) -> int:
        # depthwise 3x3 (+bias), LayerNorm, Linear(C, 4C), Linear(4C, C), layer-scale gamma
        return (c * 9 + c) + 2 * c + (c * 4 * c + 4 * c) + (4 * c * c + c) + c

    blocks = 2 * block(c0) + 2 * block(c1) + 4 * block(c2) + 2 * block(c3)
    down = sum(ci * co * 2 * 2 + co + 2 * co for ci, co in ((c0, c1), (c1, c2), (c2, c3)))  # Conv2d 2x2 s2 + LN
    up = sum(ci * co + co + 2 * co for ci, co in ((c1, c0), (c2, c1), (c3, c2)))  # Linear + LN, no up in column 0
    alphas = c0 + c1 + c2 + c3
    expected = stem + 4 * (blocks + down + alphas) + 3 * up

    assert n_params(tiny) == expected
    assert revcol_param_count("tiny") == expected
    assert 25_000_000 < expected < 35_000_000


@pytest.mark.parametrize("size", list(REVCOL_SIZES), ids=list(REVCOL_SIZES))
def test_param_count_closed_form(size: str) -> None:
    with torch.device("meta"):  # no memory, no init cost
        model = RevCol(3, size)
    assert n_params(model) == revcol_param_count(size)


@pytest.mark.parametrize("c1", [1, 4], ids=["c1=1", "c1=4"])
def test_param_count_input_channels(c1: int) -> None:
    with torch.device("meta"):
        model = RevCol(c1, "tiny")
    assert model.stem[0].in_channels == c1
    assert n_params(model) == revcol_param_count(REVCOL_SIZES["tiny"], c1=c1)
    assert revcol_param_count("tiny", c1=c1) - revcol_param_count("tiny") == (c1 - 3) * 64 * 16


# ------------------------------------------------------------------------------------------------------ outputs


@pytest.mark.parametrize("hw", [(64, 64), (64, 96)], ids=["64x64", "64x96"])
def test_outputs_tiny(tiny: RevCol, hw: tuple[int, int]) -> None:
    assert tiny.out_channels == [64, 128, 256, 512]
    assert tuple(tiny.strides) == STRIDES
    x = torch.randn(1, 3, *hw)
    with torch.inference_mode():
        ys = tiny(x)
    assert isinstance(ys, list) and len(ys) == 4
    for y, c, s in zip(ys, tiny.out_channels, STRIDES, strict=True):
        assert y.shape == (1, c, hw[0] // s, hw[1] // s)
        assert torch.isfinite(y).all()


def test_outputs_are_last_column() -> None:
    torch.manual_seed(0)
    model = RevCol(3, MINI).eval()
    randomize(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ys = model(x)
        stem = model.stem(x)
        cs = (0, 0, 0, 0)
        for i in range(MINI.num_subnet):
            cs = getattr(model, f"subnet{i}")(stem, *cs)
    for y, c in zip(ys, cs, strict=True):
        torch.testing.assert_close(y, c, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------- against the authors

# Printed by a scratch script (kept outside the project) that builds the authors' RevCol tiny from
# megvii-research/RevCol at the commit named in the file (`models/revcol.py`, `revcol_tiny(save_memory=False,
# inter_supv=False)`), loads the weights `draw_weights` gives, and runs the stem and the four columns in float64 on CPU.
# Key mapping: none. The authors' state dict minus their classification head (`cls.*`, listed in the file) has
# exactly yoloab's names, shapes and order, so it loads with strict=True.
REFERENCE = json.loads((Path(__file__).parent / "golden" / "revcol_tiny_reference.json").read_text())


def draw_weights(keys_shapes: list, seed: int) -> dict[str, torch.Tensor]:
    """The reference weights: one float64 generator, keys in the file's order; the rule keeps every path active
    (alphas of both signs with |alpha| in [0.4, 1], layer-scale gammas of order 0.5 instead of the init's 1e-6)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in keys_shapes:
        name = key.rsplit(".", 1)[-1]
        r = torch.randn(shape, generator=gen, dtype=torch.float64)
        if name.startswith("alpha"):
            u = torch.rand(shape, generator=gen, dtype=torch.float64)
            out[key] = torch.where(r < -0.43, -1.0, 1.0) * (0.4 + 0.6 * u)
        elif name == "gamma":
            out[key] = 0.5 * r
        elif len(shape) >= 2:
            out[key] = r / math.prod(shape[1:]) ** 0.5  # conv and linear weights: unit gain
        elif name == "weight":  # LayerNorm scale
            out[key] = 1.0 + 0.1 * r
        else:
            out[key] = 0.1 * r
    return out


def sha256_f64(tensors: list[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().to(torch.float64).contiguous().numpy().astype("<f8").tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def reference_weights() -> dict[str, torch.Tensor]:
    weights = draw_weights(REFERENCE["state_dict"], REFERENCE["weight_seed"])
    # the same weights the authors' model was given, bit for bit
    assert sha256_f64([weights[k] for k, _ in REFERENCE["state_dict"]]) == REFERENCE["weights_sha256"]
    return weights


def test_state_dict_names_and_shapes_are_the_authors() -> None:
    with torch.device("meta"):
        model = RevCol(3, "tiny")
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == REFERENCE["state_dict"]
    assert all(k.startswith("cls.") for k in REFERENCE["dropped_head_keys"])  # only the head was left out


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["float64", "float32"])
def test_forward_matches_the_authors(reference_weights, dtype: torch.dtype, atol: float) -> None:
    with torch.device("meta"):
        model = RevCol(3, "tiny")
    model.load_state_dict({k: v.to(dtype) for k, v in reference_weights.items()}, strict=True, assign=True)
    size = REFERENCE["imgsz"]
    gen = torch.Generator().manual_seed(REFERENCE["input_seed"])
    x = torch.randn(1, 3, size, size, generator=gen, dtype=torch.float64)
    assert sha256_f64([x]) == REFERENCE["input_sha256"]
    x = x.to(dtype)
    with torch.no_grad():
        ys = model.eval()(x)
    assert [list(y.shape) for y in ys] == [m["shape"] for m in REFERENCE["outputs"]]
    for y, ref in zip(ys, REFERENCE["outputs"], strict=True):
        y = y.double()
        pooled = torch.nn.functional.adaptive_avg_pool2d(y, 2).flatten()
        torch.testing.assert_close(pooled, torch.tensor(ref["pooled_2x2"], dtype=torch.float64), rtol=0, atol=atol)
        scale = ref["abs_max"]  # O(10): the sums are over up to 16k values, so their tolerance grows with the count
        assert y.abs().max().item() == pytest.approx(scale, abs=atol)
        assert y.sum().item() == pytest.approx(ref["sum"], abs=atol * y.numel())
        assert (y * y).sum().item() == pytest.approx(ref["sum_sq"], abs=2 * atol * scale * y.numel())


# ---------------------------------------------------------------------------------- reversible == non-reversible


def run_train_step(
    model: RevCol,
    x: torch.Tensor,
    weights: list[torch.Tensor],
    seed: int,
    input_grad: bool = True,
    bf16_forward: bool = False,
):
    """Forward in train mode with a fixed seed, backward of a weighted sum; returns outputs and gradients."""
    model.train()
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(input_grad)
    torch.manual_seed(seed)
    # autocast around the forward only, as in AMP training: backward must replay the state itself
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_forward):
        ys = model(x)
    sum((y * w).sum() for y, w in zip(ys, weights, strict=True)).backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    return [y.detach() for y in ys], x.grad, grads


def make_pair(dtype: torch.dtype, config: RevColConfig = MINI) -> tuple[RevCol, RevCol]:
    torch.manual_seed(0)
    plain = RevCol(3, config, save_memory=False).to(dtype)
    randomize(plain)
    reversible = RevCol(3, config, save_memory=True).to(dtype)
    reversible.load_state_dict(plain.state_dict())
    return plain, reversible


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-5), (torch.float32, 1e-4)], ids=["float64", "float32"])
def test_reversible_matches_plain(dtype: torch.dtype, tol: float) -> None:
    plain, reversible = make_pair(dtype)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, 64, generator=gen).to(dtype)
    weights = [
        torch.randn(2, c, 64 // s, 64 // s, generator=gen).to(dtype)
        for c, s in zip(MINI.channels, STRIDES, strict=True)
    ]

    ys_p, gx_p, g_p = run_train_step(plain, x, weights, seed=123)
    ys_r, gx_r, g_r = run_train_step(reversible, x, weights, seed=123)

    # drop-path really draws masks here, so a wrong RNG replay would show: another seed changes the outputs
    ys_other, _, _ = run_train_step(plain, x, weights, seed=7)
    assert max((a - b).abs().max().item() for a, b in zip(ys_p, ys_other, strict=True)) > 100 * tol

    for a, b in zip(ys_p, ys_r, strict=True):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)
    torch.testing.assert_close(gx_r, gx_p, rtol=tol, atol=tol)
    assert g_p.keys() == g_r.keys()
    for name in g_p:
        assert g_p[name] is not None and g_r[name] is not None, name
        torch.testing.assert_close(g_r[name], g_p[name], rtol=tol, atol=tol, msg=lambda m, n=name: f"{n}: {m}")


def test_reversible_with_frozen_stem() -> None:
    # the input and the stem need no grad: the columns must still be trained (alphas are inputs of the function)
    plain, reversible = make_pair(torch.float64)
    for model in (plain, reversible):
        model.stem.requires_grad_(False)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 3, 64, 64, generator=gen, dtype=torch.float64)
    weights = [
        torch.randn(1, c, 64 // s, 64 // s, generator=gen, dtype=torch.float64)
        for c, s in zip(MINI.channels, STRIDES, strict=True)
    ]
    _, _, g_p = run_train_step(plain, x, weights, seed=5, input_grad=False)
    _, _, g_r = run_train_step(reversible, x, weights, seed=5, input_grad=False)
    for name, grad in g_p.items():
        if name.startswith("stem."):
            assert grad is None and g_r[name] is None
        else:
            torch.testing.assert_close(g_r[name], grad, rtol=1e-5, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def test_reversible_replays_autocast() -> None:
    # the recomputation in backward must run under the forward's autocast state: watch a Linear's output dtype
    plain, reversible = make_pair(torch.float32)
    seen: list[tuple[torch.dtype, bool]] = []
    linear = reversible.subnet1.level2.blocks[0].pwconv1
    linear.register_forward_hook(lambda m, i, o: seen.append((o.dtype, torch.is_grad_enabled())))
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 64, 64, generator=gen)
    weights = [torch.randn(2, c, 64 // s, 64 // s, generator=gen) for c, s in zip(MINI.channels, STRIDES, strict=True)]
    results = []
    for model in (plain, reversible):
        results.append(run_train_step(model, x, weights, seed=11, bf16_forward=True))
    assert seen == [(torch.bfloat16, False), (torch.bfloat16, True)]  # forward (no graph), then the recomputation
    (ys_p, gx_p, g_p), (ys_r, gx_r, g_r) = results
    for a, b in zip(ys_p, ys_r, strict=True):
        assert torch.equal(a, b)
    # gradients agree to bf16 precision (the rebuilt columns differ from the stored ones by fp32 rounding, which
    # bf16 casts then amplify): compare whole-vector relative errors
    flat_p = torch.cat([g.flatten() for g in g_p.values()])
    flat_r = torch.cat([g_r[k].flatten() for k in g_p])
    assert ((flat_r - flat_p).norm() / flat_p.norm()).item() < 2e-2
    assert ((gx_r - gx_p).norm() / gx_p.norm()).item() < 2e-2


# --------------------------------------------------------------------------------------------------- alpha clamp


@pytest.mark.parametrize(
    ("value", "effective"),
    [(1e-5, 1e-3), (-1e-5, -1e-3), (0.0, 1e-3), (-0.7, -0.7)],
    ids=["+1e-5", "-1e-5", "0", "-0.7"],
)
def test_alpha_clamp(value: float, effective: float) -> None:
    torch.manual_seed(0)
    model = RevCol(3, RevColConfig((8, 16, 32, 64), (1, 1, 1, 1), 2, 0.0)).double().eval()
    randomize(model)
    column = model.subnet1  # a column with a previous column, so alpha * prev matters
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 8, 16, 16, generator=gen, dtype=torch.float64)  # a stem output
    prev = [
        torch.randn(1, c, 16 // 2**i, 16 // 2**i, generator=gen, dtype=torch.float64)
        for i, c in enumerate(MINI.channels)
    ]
    with torch.no_grad():
        column.alpha1.fill_(value)
        c0, c1, _, _ = column(x, *prev)
        expected = effective * prev[1] + column.level1(c0, prev[2])  # the level itself does not use alpha
    torch.testing.assert_close(c1, expected, rtol=0, atol=1e-12)
    assert torch.equal(column.alpha1, torch.full_like(column.alpha1, effective))
    if value != effective:  # the check can fail: the unclamped value gives a visibly different output
        assert (c1 - (expected - (effective - value) * prev[1])).abs().max() > 1e-6


# ------------------------------------------------------------------------------------------- drop-path schedule


@pytest.mark.parametrize(
    ("size", "override"), [("tiny", None), ("base", None), ("large", 0.25)], ids=["tiny", "base", "large-dp0.25"]
)
def test_drop_path_schedule(size: str, override: float | None) -> None:
    with torch.device("meta"):
        model = RevCol(3, size, drop_path=override)
    cfg = REVCOL_SIZES[size]
    rate = cfg.drop_path if override is None else override
    expected = torch.linspace(0, rate, sum(cfg.layers), dtype=torch.float64)
    columns = [getattr(model, f"subnet{i}") for i in range(cfg.num_subnet)]
    assert len(columns) == cfg.num_subnet
    for column in columns:
        torch.testing.assert_close(torch.tensor(block_rates(column), dtype=torch.float64), expected, rtol=0, atol=1e-6)
    assert block_rates(columns[0])[0] == 0.0
    assert isinstance(columns[-1].level0.blocks[0].drop_path, nn.Identity)  # rate 0: no DropPath at all


# ---------------------------------------------------------------------------------------------------------- init


def test_init(tiny: RevCol) -> None:
    weights = []
    for name, m in tiny.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert torch.count_nonzero(m.bias) == 0, name
            w = m.weight.detach().flatten()
            weights.append(w)
            if w.numel() >= 4096:
                assert 0.018 < w.std().item() < 0.022, name
    pooled = torch.cat(weights)
    assert abs(pooled.std().item() - 0.02) < 5e-4
    assert abs(pooled.mean().item()) < 1e-3
    # nothing beyond 10 std: timm's sampler sets ~2 weights of `tiny` to exactly -2 (100 std), which RevCol zeroes
    assert pooled.abs().max().item() < 0.2
    for name, p in tiny.named_parameters():
        if ".alpha" in name:
            assert torch.all(p == 0.5), name
        elif name.endswith("gamma"):
            assert torch.all(p == 1e-6), name


# ------------------------------------------------------------------------------------- eval, inference, Ultralytics


def test_inference_mode_and_save_memory_in_eval() -> None:
    torch.manual_seed(0)
    plain = RevCol(3, MINI, save_memory=False)
    randomize(plain)
    reversible = RevCol(3, MINI, save_memory=True)
    reversible.load_state_dict(plain.state_dict())
    plain.eval()
    reversible.eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        ys_p = plain(x)
        ys_r = reversible(x)
    with torch.no_grad():
        ys_ng = plain(x)
    ys_grad = reversible(x)  # eval with grad enabled: still the plain path, so autograd sees ordinary ops
    assert ys_grad[3].grad_fn is not None and "ReverseColumn" not in type(ys_grad[3].grad_fn).__name__
    for a, b, c, d in zip(ys_p, ys_r, ys_ng, ys_grad, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d.detach())


def test_train_without_grad_takes_plain_path() -> None:
    plain, reversible = make_pair(torch.float32)
    x = torch.randn(1, 3, 32, 32)
    outs = []
    for model in (plain, reversible):
        model.train()
        torch.manual_seed(9)
        with torch.no_grad():
            outs.append(model(x))
    for a, b in zip(*outs, strict=True):
        assert torch.equal(a, b)


def test_ultralytics_fuse_and_deepcopy() -> None:
    from ultralytics.nn.tasks import BaseModel

    torch.manual_seed(0)
    wrapper = BaseModel()
    wrapper.model = nn.Sequential(RevCol(3, MINI))
    wrapper.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        before = wrapper.model(x)
    wrapper.fuse(verbose=False)  # finds nothing of ours to fuse and must leave the backbone working
    ema = copy.deepcopy(wrapper.model)  # Ultralytics' ModelEMA deep-copies the model
    with torch.inference_mode():
        after = wrapper.model(x)
        copied = ema(x)
    for a, b, c in zip(before, after, copied, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


# --------------------------------------------------------------------------------------------------------------------
# choosing the reversible path per variant


def test_rev_suffix_selects_the_reversible_path_and_records_it() -> None:
    from yoloab.models import get_base_model
    from yoloab.profiling import ProfileSettings, profile_variants
    from yoloab.registry import recorded_attributes
    from yoloab.variants import build, make_variant

    base = get_base_model("yolov8n")
    rev, plain = make_variant(base, "RevCol-tiny-rev"), make_variant(base, "RevCol-tiny")
    assert (rev.name, rev.module) == ("yolov8n-RevCol-tiny-rev", "RevCol-tiny-rev")
    assert rev.config["backbone"][0] == [-1, 1, "RevCol", ["tiny", True]]
    assert plain.config["backbone"][0] == [-1, 1, "RevCol", ["tiny"]]
    assert recorded_attributes(build(plain)) == {"save_memory": False}
    (record,) = profile_variants([rev], ProfileSettings(imgsz=64, latency=False))
    assert record["save_memory"] is True
    model = build(rev)
    assert all(column.save_memory for column in model.model[0].columns)


def test_yaml_argument_selects_the_reversible_path(tmp_path) -> None:
    from yoloab.registry import recorded_attributes
    from yoloab.variants import build, from_yaml

    path = tmp_path / "revcol.yaml"
    path.write_text(
        "nc: 2\nbackbone:\n  - [-1, 1, RevCol, [tiny, True]]\n  - [0, 1, Index, [128, 1]]\n"
        "  - [0, 1, Index, [256, 2]]\n  - [0, 1, Index, [512, 3]]\nhead:\n  - [[1, 2, 3], 1, Detect, [nc]]\n"
    )
    assert recorded_attributes(build(from_yaml(path))) == {"save_memory": True}


def test_unknown_option_names_the_known_ones() -> None:
    from yoloab.errors import UnknownModuleError
    from yoloab.registry import MODULES

    with pytest.raises(UnknownModuleError, match="RevCol has no option 'reversible'; options: rev"):
        MODULES.get("RevCol-tiny-reversible")
