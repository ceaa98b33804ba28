"""FLOP counts of a built model: Ultralytics' thop number, FlopCounterMode, multiply-adds, as trained and deployed.

- `gflops`: Ultralytics' own number (thop through `get_flops`).
- `gflops_aten`: `torch.utils.flop_counter.FlopCounterMode` at the real input size (2 FLOPs per multiply-add),
  which also sees functional convolutions (timm's CondConv2d calls `F.conv2d`, invisible to thop) and attention
  matmuls. The model runs on the meta device (its tensors swapped for storage-less ones for the count, then put back),
  so it costs no arithmetic, and repeated ops are served from a cache of their output shapes; where a model cannot run
  on meta it falls back to a real forward pass.
- `gmacs`: multiply-adds, `gflops_aten / 2` (FlopCounterMode counts only products: convs, matmuls, attention).
- `gflops_published`: the fused model counted as published tables count it (Ultralytics' docs, the YOLOv10 paper):
  convolutions and linear layers, no attention matmuls (`PUBLISHED_OPS`), plus the per-element cost that the thop of
  those tables gave `nn.Upsample` (`THOP_UPSAMPLE_OPS`); where attention matmuls are more than `ATTENTION_TOLERANCE`
  of the count, `attention_note` says by how much and which rows hold them.
- Where the two differ by more than `FLOP_TOLERANCE`, the row is flagged and the layers responsible are named.
- These count the model as trained; `*_fused` count it after `fuse()` (BatchNorm folded, RepVGG branches merged; for
  YOLOv10/YOLO26 one detection branch dropped, which `fuse_note` says).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ._ultralytics import fuse_drops
from .meta_device import meta_device
from .variants import count_params

FLOP_TOLERANCE = 0.05
ATTENTION_TOLERANCE = 0.01
"""`attention_note` is set where attention matmuls are more than this share of `gflops_aten_fused`."""
DEPLOYED_KEYS = (
    "params_fused", "gflops_fused", "gflops_fused_error", "gflops_aten_fused", "gmacs_fused",
    "gflops_published", "attention_note",
)  # fmt: skip
_aten = torch.ops.aten
PUBLISHED_OPS = frozenset({
    _aten.convolution, _aten._convolution, _aten.convolution_overrideable, _aten.cudnn_convolution,
    _aten._slow_conv2d_forward, _aten.mm, _aten.addmm, _aten._scaled_mm,
})  # fmt: skip
"""The ops FlopCounterMode counts that published FLOP tables count too: every convolution (`nn.Conv*`, `F.conv*`) and
every 2-D matrix product, which is what `nn.Linear`/`F.linear` become (a linear layer on a 3-D or 4-D input is folded
into one `mm`). Left out are the batched products (`bmm`, `baddbmm`) and the scaled-dot-product/flash/flex attention
kernels: the products of activations with activations that attention computes (YOLOv10's PSA, YOLO11's C2PSA, YOLO12's
A2C2f, EMA's matmul). docs/flops-conventions.md checks the rule against the published tables."""
THOP_UPSAMPLE_OPS = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 259}
"""Ops per output element that thop gave an `nn.Upsample` of each mode until ultralytics/thop#148 (July 2026) made
nearest free; `get_flops` doubles them like every thop count. Every published table was made with that rule: without
it yolov8l counts 165.148 and yolo12m 67.446, published 165.2 and 67.5 (docs/flops-conventions.md). Interpolation
done functionally (`F.interpolate`, DySample's `grid_sample`) was invisible to thop and is not counted."""


def model_stride(model: nn.Module) -> int:
    """The largest stride of a detection model (at least 32, as Ultralytics assumes)."""
    return max(int(model.stride.max()), 32) if hasattr(model, "stride") else 32


@contextmanager
def on_meta(model: nn.Module) -> Iterator[nn.Module]:
    """Run a model on the meta device for a while: same structure and shapes, no storage, no arithmetic.

    Every parameter, buffer and tensor attribute is swapped for an empty meta tensor of the same shape, in place, and
    everything is put back on exit, including module attributes that a forward pass sets (Detect caches its anchors):
    no copy of the model is made (a deepcopy of RevCol-tiny alone takes ~70 ms). Tensor attributes named `stride`
    stay on the host, as in a meta copy by `model.to("meta")`: Detect builds its anchors from Python scalars of them.

    Yields:
        The model itself, on meta until the block ends.
    """
    saved = []
    try:
        for m in model.modules():
            saved.append((m, dict(m.__dict__), dict(m._parameters), dict(m._buffers)))
            for k, p in m._parameters.items():
                if p is not None:
                    m._parameters[k] = nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
            for k, b in m._buffers.items():
                if b is not None:
                    m._buffers[k] = torch.empty_like(b, device="meta")
            for k, v in m.__dict__.items():
                if isinstance(v, torch.Tensor) and k != "stride":
                    m.__dict__[k] = torch.empty_like(v, device="meta")
        yield model
    finally:
        for m, attrs, params, buffers in reversed(saved):
            m._parameters.clear()
            m._parameters.update(params)
            m._buffers.clear()
            m._buffers.update(buffers)
            m.__dict__.clear()
            m.__dict__.update(attrs)


class _HostData(TorchFunctionMode):
    """Under `torch.device("meta")`, keep tensors made from data (`torch.tensor(...)`) on the host, values and all."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.tensor and kwargs.get("device") is None:
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)


@contextmanager
def building_on_meta() -> Iterator[None]:
    """Build (and fuse) models on the meta device: the same modules and shapes, no storage, no arithmetic.

    Every parameter and buffer a model allocates in the block is a storage-less meta tensor, so a large model's
    parameters and FLOPs (`count_params`, `aten_count`) are counted in a fraction of its real build time (Ultralytics'
    build runs a forward pass at 256 px to find the strides: 26 s for yolov8x on a busy 2-core CPU, 1 s on meta).
    Tensors made from data, `torch.tensor(...)`, stay on the host: Ultralytics builds a Detect head's strides that way
    and then reads them. For counting only: the weights have no values, and a module whose construction reads tensor
    values (`.item()`) cannot be built in the block.

    Example:
        >>> with building_on_meta():
        ...     fused = build(baseline(base_models()["yolo12s"])).fuse(verbose=False)
        >>> round(aten_count(fused, 640).published, 2)  # Ultralytics' docs: 21.4
        21.38
    """
    with meta_device(), _HostData(), _MetaMemo():  # the memo serves the stride pass's and fuse()'s repeats
        yield


_MetaOutputs = tuple[tuple[tuple[int, ...], tuple[int, ...], torch.dtype], ...]


def _meta_key(value: Any) -> Any:
    """A hashable stand-in for an op argument: tensors by their metadata, sequences element-wise."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.stride(), value.dtype, value.device.type)
    if isinstance(value, (list, tuple)):
        return tuple(_meta_key(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _meta_key(v)) for k, v in sorted(value.items()))
    return value


class _MetaMemo(TorchDispatchMode):
    """Serve repeated ops on meta tensors from a cache of their outputs' metadata.

    A meta forward computes nothing, yet many meta kernels are Python (decompositions of batch/layer norm, addmm,
    GELU, upsampling, elementwise refs) and, with FlopCounterMode's own per-op work, they are the whole time of a
    counted forward. The output metadata of a functional op (not mutating, returning fresh tensors, not views) whose
    tensor inputs are all on meta is a pure function of those inputs' metadata and the other arguments, so a later call
    with the same key gets fresh empty meta tensors with the recorded shapes, strides and dtypes instead of running the
    op again. Values never enter: meta tensors have none, and calls with any non-meta tensor input are passed through.

    Two places, two caches:
    - below FlopCounterMode (entered before it, `counter=None`) it serves ops the counter has already seen and counted
      from their shapes, so the counts cannot change;
    - above it (`counter` given) it serves only keys whose first call, watched through the counter, added no FLOPs
      and is not an op the counter has a formula for (norms, activations, concatenations): later calls with the same
      key would run the same ops and add nothing either, so they skip the counter.
    A test checks that the counts are identical with and without the memo.

    Args:
        counter: the FlopCounterMode this instance sits above, if any.
    """

    _below: dict[Any, _MetaOutputs] = {}  # shared by every use: variants of one base model repeat most keys
    _above: dict[Any, _MetaOutputs] = {}
    _functional: dict[Any, bool] = {}

    def __init__(self, counter: FlopCounterMode | None = None) -> None:
        super().__init__()
        self.counter = counter
        self.cache = self._below if counter is None else self._above

    @classmethod
    def clear(cls) -> None:
        """Forget every cached op (tests)."""
        cls._below.clear()
        cls._above.clear()

    @classmethod
    def _is_functional(cls, func: Any) -> bool:
        known = cls._functional.get(func)
        if known is None:
            schema = func._schema
            known = not schema.is_mutable and all(
                r.alias_info is None and isinstance(r.type, torch.TensorType) for r in schema.returns
            )
            cls._functional[func] = known
        return known

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if not self._is_functional(func):
            return func(*args, **kwargs)
        flat = [a for a in (*args, *kwargs.values()) for a in (a if isinstance(a, (list, tuple)) else (a,))]
        tensors = [a for a in flat if isinstance(a, torch.Tensor)]
        if not tensors or any(t.device.type != "meta" for t in tensors):
            return func(*args, **kwargs)
        key = (func, _meta_key(args), _meta_key(kwargs))
        try:
            hit = self.cache.get(key)
        except TypeError:  # an unhashable argument: not worth a cache entry
            return func(*args, **kwargs)
        if hit is not None:
            # made with Python dispatch off: through the modes below (the counter) an empty tensor costs ~100x more
            with torch._C._DisableTorchDispatch():
                outs = tuple(torch.empty_strided(size, stride, dtype=dt, device="meta") for size, stride, dt in hit)
            return outs if len(func._schema.returns) != 1 else outs[0]
        counted = self.counter.get_total_flops() if self.counter is not None else 0
        out = func(*args, **kwargs)
        outs = out if isinstance(out, tuple) else (out,)
        if self.counter is not None and (
            func._overloadpacket in self.counter.flop_registry or self.counter.get_total_flops() != counted
        ):
            return out  # counted: every call must reach the counter
        if all(isinstance(o, torch.Tensor) and o.device.type == "meta" and o.storage_offset() == 0 for o in outs):
            if len(self.cache) > 65536:  # bounded: a long session profiling many sizes must not grow without end
                self.cache.clear()
            self.cache[key] = tuple((tuple(o.shape), o.stride(), o.dtype) for o in outs)
        return out


class _TopLayers:
    """What FlopCounterMode needs of its module tracker (`parents`), following only a model's top-level layers.

    FlopCounterMode's own tracker hooks every module call and walks its outputs; yoloab reads only the total and the
    count of each top-level layer (`model.model[i]`), under the same names ("Global", "DetectionModel.model.3"), so
    hooks on those layers give the same counts in about 70% of the time (tested on the catalog, trained and fused).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.parents = {"Global"}
        self._hooks: list[Any] = []

    def __enter__(self) -> _TopLayers:
        layers = getattr(self.model, "model", None)
        if isinstance(layers, nn.Sequential):
            prefix = f"{type(self.model).__name__}.model."
            for i, layer in enumerate(layers):
                name = f"{prefix}{i}"
                self._hooks.append(layer.register_forward_pre_hook(lambda m, a, n=name: self.parents.add(n)))
                self._hooks.append(layer.register_forward_hook(lambda m, a, o, n=name: self.parents.discard(n)))
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()


def _count_on_meta(model: nn.Module, imgsz: int, memo: bool) -> FlopCounterMode:
    x = torch.zeros(1, 3, imgsz, imgsz, device="meta")
    counter = FlopCounterMode(display=False)
    below, above = (_MetaMemo(), _MetaMemo(counter)) if memo else (nullcontext(), nullcontext())
    with on_meta(model) as target:
        if memo and hasattr(counter, "mod_tracker"):  # private, like the memo: the plain count is the fallback
            counter.mod_tracker = _TopLayers(target)
        with torch.no_grad(), below, counter, above:
            target(x)
    return counter


@dataclass(frozen=True)
class AtenCount:
    """One FlopCounterMode count of a model, in GFLOPs: every product, and the part published tables count.

    Attributes:
        total: every op FlopCounterMode counts (convolutions, matrix products, attention).
        per_layer: `total` per top-level layer index.
        published: the ops of `PUBLISHED_OPS` (convolutions and linear layers, no attention matmuls), plus `upsample`.
        published_per_layer: the `PUBLISHED_OPS` part of `per_layer` (the upsample term is not split by layer).
        upsample: thop's old cost of the `nn.Upsample` layers (`THOP_UPSAMPLE_OPS`, 2 FLOPs per op), part of
            `published` only: FlopCounterMode counts no interpolation.
    """

    total: float
    per_layer: dict[int, float]
    published: float
    published_per_layer: dict[int, float]
    upsample: float = 0.0


def aten_flops(model: nn.Module, imgsz: int, memo: bool = True) -> tuple[float, dict[int, float]]:
    """Count FLOPs with FlopCounterMode at the real input size, in eval mode.

    Args:
        model: the model (put in eval mode).
        imgsz: square input size.
        memo: serve repeated meta ops from `_MetaMemo` (same counts, less time; off only to test exactly that).

    Returns:
        Total GFLOPs and GFLOPs per top-level layer index.
    """
    count = aten_count(model, imgsz, memo)
    return count.total, count.per_layer


def aten_count(model: nn.Module, imgsz: int, memo: bool = True) -> AtenCount:
    """`aten_flops` with the published convention's count (`PUBLISHED_OPS`, `THOP_UPSAMPLE_OPS`) from one forward pass.

    Args:
        model: the model (put in eval mode).
        imgsz: square input size.
        memo: serve repeated meta ops from `_MetaMemo` (same counts, less time; off only to test exactly that).
    """
    model = model.eval()
    upsample: dict[str, float] = {}
    prefix = f"{type(model).__name__}.model."
    hooks = [m.register_forward_hook(_upsample_hook(upsample, name)) for name, m in model.named_modules()
             if isinstance(m, nn.Upsample) and m.mode in THOP_UPSAMPLE_OPS]  # fmt: skip
    try:
        counter = _count(model, imgsz, memo, upsample)
    finally:
        for hook in hooks:
            hook.remove()
    per_layer, published_per_layer = {}, {}
    by_module = counter.get_flop_counts()
    for key, counts in by_module.items():
        rest = key[len(prefix) :] if key.startswith(prefix) else ""
        if rest.isdigit():
            per_layer[int(rest)] = sum(counts.values()) / 1e9
            published_per_layer[int(rest)] = sum(n for op, n in counts.items() if op in PUBLISHED_OPS) / 1e9
    upsampled = sum(upsample.values())
    published = sum(n for op, n in by_module.get("Global", {}).items() if op in PUBLISHED_OPS) / 1e9 + upsampled
    return AtenCount(counter.get_total_flops() / 1e9, per_layer, published, published_per_layer, upsampled)


def _upsample_hook(into: dict[str, float], name: str) -> Any:
    def hook(module: nn.Upsample, args: Any, out: torch.Tensor) -> None:
        into[name] = into.get(name, 0.0) + 2 * THOP_UPSAMPLE_OPS[module.mode] * out.numel() / 1e9

    return hook


def _count(model: nn.Module, imgsz: int, memo: bool, upsample: dict[str, float]) -> FlopCounterMode:
    """One FlopCounterMode pass: on meta with the memo, on meta without it, or on real tensors as a last resort.

    `upsample` (filled by `_upsample_hook`) is emptied before each try, so a failed one leaves nothing in it.
    """
    counter = None
    if memo:
        upsample.clear()
        try:
            counter = _count_on_meta(model, imgsz, memo=True)
        except Exception:  # the memo leans on torch internals: a torch that changed them still gets the plain count
            counter = None
    if counter is None:
        try:
            upsample.clear()
            counter = _count_on_meta(model, imgsz, memo=False)
        except (RuntimeError, NotImplementedError):  # an op without a meta kernel: count on real tensors
            upsample.clear()
            p = next(model.parameters())
            x = torch.zeros(1, 3, imgsz, imgsz, device=p.device, dtype=p.dtype)
            with torch.inference_mode(), FlopCounterMode(display=False) as counter:
                model(x)
    return counter


def ultralytics_flops(model: nn.Module, imgsz: int) -> float:
    """Ultralytics' own GFLOPs (thop, stride-aware extrapolation), as its model summary prints them.

    Raises:
        RuntimeError: thop is missing or failed (Ultralytics would print 0.0; yoloab stores the error instead).
    """
    import thop
    from ultralytics.utils.torch_utils import get_flops

    if not hasattr(thop, "profile"):
        raise RuntimeError("the installed 'thop' has no profile(); install ultralytics-thop, not PyPI thop")
    value = get_flops(model, imgsz)
    if not value:
        raise RuntimeError("Ultralytics get_flops returned 0.0 (thop failed or is the PyPI 'thop' package)")
    return value


def thop_per_layer(model: nn.Module, imgsz: int) -> dict[int, float]:
    """Per-layer GFLOPs as thop counts them at a given size (to explain a disagreement)."""
    import thop

    p = next(model.parameters())
    x = torch.zeros(1, 3, imgsz, imgsz, device=p.device, dtype=p.dtype)
    # no copy: thop removes its hooks and counters and restores every module's mode (Ultralytics' get_flops relies on
    # that too), and at the probe size a real pass costs less than a meta one
    _, _, info = thop.profile(model, inputs=[x], verbose=False, ret_layer_info=True)
    layers = info.get("model", (0, 0, {}))[2]
    return {int(k): 2 * v[0] / 1e9 for k, v in layers.items() if str(k).isdigit()}


def flop_disagreement(model: nn.Module) -> str:
    """Name the layers where thop and FlopCounterMode disagree, with thop's share of aten's count there.

    Both are counted at a small stride-aligned probe size, like the proxies that Ultralytics' stride-aware `get_flops`
    extrapolates from: the shares, not the totals, say what thop misses (a direct thop run at full size also misses
    attention products that the extrapolation recovers).
    """
    probe = 2 * model_stride(model)
    thop_layers = thop_per_layer(model, probe)
    _, aten_layers = aten_flops(model, probe)
    gaps = []
    for i, aten in aten_layers.items():
        seen = thop_layers.get(i, 0.0)
        if abs(aten - seen) > 0.5 * max(aten, 1e-12):  # thop adds a little for BN and activations: ignore that
            gaps.append((i, type(model.model[i]).__name__, seen, aten))
    if not gaps:
        return "thop's counting rules differ from aten's across many layers (normalisation, activations)"
    kinds = sorted({g[1] for g in gaps})
    share = sum(g[2] for g in gaps) / sum(g[3] for g in gaps)
    hint = ""
    if {"DynamicConv", "DynamicBnAct"} & set(kinds):
        hint = "; CondConv2d convolves with F.conv2d, which thop does not see"
    rows = ", ".join(str(g[0]) for g in gaps)
    return f"rows {rows} ({', '.join(kinds)}): thop sees {share:.0%} of the FLOPs aten counts there{hint}"


def flop_counts(model: nn.Module, imgsz: int) -> dict[str, Any]:
    """Both GFLOPs counts of a model and their agreement, as record fields.

    Returns:
        `gflops` (Ultralytics; None with `gflops_error` when it fails, never 0.0), `gflops_aten`, `gmacs`,
        `flops_flag` (they differ by more than `FLOP_TOLERANCE`) and `flops_note` (the rows responsible, when flagged).
    """
    out, _ = _costs(model, imgsz)
    gap = None if out["gflops"] is None else abs(out["gflops"] - out["gflops_aten"]) / max(out["gflops_aten"], 1e-9)
    out["flops_flag"] = bool(gap is not None and gap > FLOP_TOLERANCE)
    out["flops_note"] = flop_disagreement(model) if out["flops_flag"] else None
    return out


def deployed_counts(fused: nn.Module, imgsz: int) -> dict[str, Any]:
    """The `DEPLOYED_KEYS` of a model after `fuse()`: params and the GFLOPs counts of what is deployed.

    Besides both counts of `_costs`, `gflops_published` (the published tables' convention, `PUBLISHED_OPS`) and
    `attention_note` (`attention_note`), both from the same FlopCounterMode pass as `gflops_aten_fused`.
    """
    costs, count = _costs(fused, imgsz, "_fused")
    out = {"params_fused": count_params(fused), **costs}
    out.update(gflops_published=count.published, attention_note=attention_note(fused, count))
    return out


def attention_note(model: nn.Module, count: AtenCount) -> str | None:
    """Say how much of a count is attention matmuls, and in which rows, where that exceeds `ATTENTION_TOLERANCE`.

    Published tables leave those products out (`PUBLISHED_OPS`), so a count that includes them is not comparable with
    a table's figure: e.g. 'attention matmuls are 8.4% of the fused count (gflops_aten_fused 23.34, gflops_published
    21.38; published tables quote the latter), rows 6, 8 (A2C2f)'. None when they are a smaller share or absent.
    """
    left_out = count.total - (count.published - count.upsample)
    if count.total <= 0 or left_out <= ATTENTION_TOLERANCE * count.total:
        return None
    rows = [i for i, n in sorted(count.per_layer.items()) if n - count.published_per_layer.get(i, 0.0) > 0]
    layers = getattr(model, "model", None)
    kinds = sorted({type(layers[i]).__name__ for i in rows if isinstance(layers, nn.Sequential) and i < len(layers)})
    where = f", row{'s' * (len(rows) > 1)} {', '.join(map(str, rows))}" if rows else ""
    return (
        f"attention matmuls are {left_out / count.total:.1%} of the fused count (gflops_aten_fused "
        f"{count.total:.2f}, gflops_published {count.published:.2f}; published tables quote the latter){where}"
        + (f" ({', '.join(kinds)})" if kinds and rows else "")
    )


def _costs(model: nn.Module, imgsz: int, suffix: str = "") -> tuple[dict[str, Any], AtenCount]:
    """`gflops` (None with `gflops_error` when thop fails, never 0.0), `gflops_aten` and `gmacs`, keys + `suffix`.

    Returns:
        The keys, and the FlopCounterMode count `gflops_aten` comes from.
    """
    out: dict[str, Any] = {}
    try:
        out[f"gflops{suffix}"], out[f"gflops{suffix}_error"] = ultralytics_flops(model, imgsz), None
    except Exception as err:  # stored, never printed as 0.0
        out[f"gflops{suffix}"], out[f"gflops{suffix}_error"] = None, f"{type(err).__name__}: {err}"
    count = aten_count(model, imgsz)
    out[f"gflops_aten{suffix}"] = count.total
    out[f"gmacs{suffix}"] = count.total / 2
    return out, count


def fuse_note(model: nn.Module) -> str | None:
    """Say which count a paper quotes when `fuse()` drops a detection branch (call before fusing); else None."""
    drops = fuse_drops(model)
    if not drops:
        return None
    heads = ", ".join(f"the {branch} branch of row {row} ({kind})" for row, kind, branch in drops)
    return (
        f"params, gflops and gflops_aten count both detection branches, as trained; fuse() drops {heads} "
        "(both have the same shape); papers (YOLOv10's) and Ultralytics' docs quote the deployed model "
        "(params_fused, gflops_fused) without its attention matmuls: params_fused, gflops_published"
    )
