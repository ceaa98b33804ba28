"""Any timm model as a YOLO backbone: `--module timm-<model_name>`, built with `features_only=True`.

Paper: Wightman, "PyTorch Image Models" (timm), https://github.com/huggingface/pytorch-image-models (2019-), the
library that ships the architectures; each model's own paper is named in timm's model file. The four families of the
`article` preset: FasterNet (Chen et al., "Run, Don't Walk: Chasing Higher FLOPS for Faster Neural Networks",
CVPR 2023, arXiv:2303.03667), StarNet (Ma et al., "Rewrite the Stars", CVPR 2024, arXiv:2403.19967), RepViT (Wang
et al., "RepViT: Revisiting Mobile CNN From ViT Perspective", CVPR 2024, arXiv:2307.09283) and EfficientViT (Cai et
al., "EfficientViT: Multi-Scale Linear Attention for High-Resolution Dense Prediction", ICCV 2023,
arXiv:2205.14756).

What the reference does: `timm.create_model(name, features_only=True, out_indices=...)` wraps a classification
model into a feature extractor (`FeatureListNet`, or the model's own `*Features` class, or `FeatureGetterNet` around
`forward_intermediates`) whose `feature_info` lists the channels and reduction (stride) of every tap. This module is
that extractor, unchanged: the architecture, the parameter names and the initialisation are timm's, so the backbone
is faithful by construction. yoloab only chooses the taps: for each of the strides 8, 16 and 32 the deepest
`feature_info` entry with that reduction, and passes nothing else (`pretrained=False` always: nothing is downloaded).

Kept from timm: every module and its init; its `feature_info` channels (no dummy forward at construction).
Differences, on purpose:
- Models whose features come out channels-last (`output_fmt='NHWC'`, MambaOut for one) are permuted to NCHW, the
  layout Ultralytics' rows read.
- The extractor's `feature_info` (a plain timm object, not a module) is kept as plain lists on this module
  (`out_channels`, `strides`) and removed from the extractor, so that a checkpoint holds only modules and loads
  with the safe unpickler.

In YOLO (`yoloab.roles.backbone`): the three maps replace the base backbone's P3/P4/P5 outputs; the base model's
SPPF (and C2PSA) tail and its head are kept, the head's `from` remapped. The yaml row names the model and its taps,
`[-1, 1, timm, [fasternet_t0, [1, 2, 3]]]`, so the file rebuilds the same model in a fresh process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ModelConfigError, UnknownModuleError, nearest
from ..registry import register_module

__all__ = [
    "ARTICLE_MODELS",
    "STRIDES",
    "TimmBackbone",
    "TimmProbe",
    "check_model",
    "list_backbones",
    "probe",
]

STRIDES = (8, 16, 32)  # the P3/P4/P5 maps a YOLO neck reads
PROBE_SIZE = 256  # Ultralytics' stride probe runs the model at 256x256: a model must run there to build
# the smallest size of the four backbone families the field's catalogs use most; the first is the default
ARTICLE_MODELS = ("fasternet_t0", "starnet_s050", "repvit_m0_9", "efficientvit_b0")


@dataclass(frozen=True)
class TimmProbe:
    """What a timm model offers as a YOLO backbone, read on the meta device (nothing allocated, nothing run).

    Attributes:
        name: the timm model name.
        out_indices: the `feature_info` indices tapped, for strides 8, 16 and 32.
        channels: the channels of the three maps.
        strides: 8, 16, 32.
        params: parameters of the `features_only` extractor with these taps.
    """

    name: str
    out_indices: tuple[int, ...]
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    params: int


def _create(name: str, c1: int = 3, **kwargs: Any) -> nn.Module:
    import timm

    if c1 != 3:
        kwargs["in_chans"] = c1
    return timm.create_model(name, pretrained=False, **kwargs)


def _why_not(name: str) -> tuple[str, TimmProbe | None]:
    """Why a timm model cannot serve as a backbone ('' when it can), and its probe."""
    try:  # timm holds no class-level tensors that a first import on meta would spoil (`yoloab.meta_device`)
        with torch.device("meta"):
            feats = _create(name, features_only=True)
    except Exception as err:  # timm raises anything from a model that has no features_only path
        first = (str(err).strip().splitlines() or [""])[0][:160]
        return f"timm cannot build it with features_only=True ({type(err).__name__}: {first})", None
    reductions = [int(r) for r in feats.feature_info.reduction()]
    missing = [s for s in STRIDES if s not in reductions]
    if missing:
        return f"its features are at reductions {reductions}; a YOLO backbone needs 8, 16 and 32", None
    # the deepest tap of each reduction (a stage's output, not its first block)
    indices = tuple(max(i for i, r in enumerate(reductions) if r == s) for s in STRIDES)
    try:
        with torch.device("meta"):
            feats = _create(name, features_only=True, out_indices=indices)
            nhwc = str(getattr(feats, "output_fmt", "NCHW")).endswith("NHWC")
            outs = feats(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:160]
        return f"it does not run at {PROBE_SIZE}x{PROBE_SIZE} ({type(err).__name__}: {first})", None
    channels = tuple(int(c) for c in feats.feature_info.channels())
    shapes = [tuple(o.shape[1:]) for o in outs]
    expected = [
        (PROBE_SIZE // s, PROBE_SIZE // s, c) if nhwc else (c, PROBE_SIZE // s, PROBE_SIZE // s)
        for s, c in zip(STRIDES, channels, strict=True)
    ]
    if shapes != expected:
        return f"its maps at {PROBE_SIZE}x{PROBE_SIZE} are {shapes}, not the {expected} feature_info declares", None
    params = sum(p.numel() for p in feats.parameters())
    return "", TimmProbe(name, indices, channels, STRIDES, params)


@functools.cache
def _probe_cached(name: str) -> tuple[str, TimmProbe | None]:
    return _why_not(name)


def _all_models() -> list[str]:
    import timm

    return timm.list_models()


def _nearest_working(name: str, n: int = 3) -> list[str]:
    """Up to n timm models closest to `name` that can serve as a backbone (each checked on the meta device)."""
    found = []
    for candidate in nearest(name, _all_models(), n=12):
        if candidate != name and _probe_cached(candidate)[1] is not None:
            found.append(candidate)
            if len(found) == n:
                break
    return found


def _nearest_text(name: str) -> str:
    hits = _nearest_working(name)
    if hits:
        return f"nearest that work: {', '.join(hits)}"
    return f"e.g. {', '.join(ARTICLE_MODELS)} (yoloab list --backbones 'PATTERN*')"


def probe(name: str) -> TimmProbe:
    """The taps, channels and parameters of a timm model as a YOLO backbone (cached per process).

    Raises:
        UnknownModuleError: timm has no model of that name; names the nearest ones that work.
        ModelConfigError: timm cannot build it with `features_only`, it lacks a stride-8, 16 or 32 map, or it does
            not run at 256x256; names the nearest ones that work.
    """
    import timm

    if not timm.is_model(name):
        raise UnknownModuleError(f"timm has no model '{name}'; {_nearest_text(name)}")
    why, found = _probe_cached(name)
    if found is None:
        raise ModelConfigError(f"timm model '{name}' cannot be a YOLO backbone: {why}; {_nearest_text(name)}")
    return found


def check_model(name: str) -> None:
    """The registry's size check of the `timm` family: `timm-<name>` is valid when `probe(name)` succeeds."""
    probe(name)


def list_backbones(pattern: str = "*") -> list[TimmProbe]:
    """The timm models matching a `timm.list_models` pattern that can serve as a YOLO backbone.

    Each is built on the meta device (no memory, no weights) and run there once at 256x256, so a pattern such as
    `fasternet*` answers in about a second.
    """
    import timm

    found = []
    for name in timm.list_models(pattern):
        _, result = _probe_cached(name)
        if result is not None:
            found.append(result)
    return found


def _flattened_names(model: nn.Module) -> dict[str, str]:
    """Child names of top-level Sequentials as timm's feature wrappers spell them (`stages_0`) -> `stages.0`."""
    names = {}
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential):
            for sub, _ in child.named_children():
                names[f"{name}_{sub}"] = f"{name}.{sub}"
    return names


def _fasternet_classes() -> dict[tuple[type, str], type]:
    """FasterNet's partial conv as classes whose forward is a class attribute (see `_class_forwards`)."""
    try:
        from timm.models.fasternet import Partial_conv3
    except ImportError:  # a timm without FasterNet
        return {}
    global PartialConv3SplitCat, PartialConv3Slicing

    class PartialConv3SplitCat(Partial_conv3):
        """timm's `Partial_conv3(forward='split_cat')`, its forward bound on the class (same code, same weights)."""

        forward = Partial_conv3.forward_split_cat

    class PartialConv3Slicing(Partial_conv3):
        """timm's `Partial_conv3(forward='slicing')`, its forward bound on the class (same code, same weights)."""

        forward = Partial_conv3.forward_slicing

    for klass in (PartialConv3SplitCat, PartialConv3Slicing):
        klass.__qualname__ = klass.__name__  # pickled by this module-level name
    return {
        (Partial_conv3, "forward_split_cat"): PartialConv3SplitCat,
        (Partial_conv3, "forward_slicing"): PartialConv3Slicing,
    }


_BOUND_FORWARDS = _fasternet_classes()


def _class_forwards(module: nn.Module) -> None:
    """Replace per-instance `self.forward = self.forward_x` bindings (timm's FasterNet) by a class with that forward.

    A bound method in an instance's dict pickles as `builtins.getattr(obj, name)`, which the safe unpickler refuses
    (it could call anything); the subclass runs the same method and holds the same parameters.
    """
    for m in module.modules():
        bound = vars(m).get("forward")
        if bound is None or getattr(bound, "__self__", None) is not m:
            continue
        klass = _BOUND_FORWARDS.get((type(m), bound.__func__.__name__))
        if klass is not None:
            del m.forward
            m.__class__ = klass


@register_module(
    name="timm",
    role="backbone",
    channels="input",
    paper="timm (Wightman, PyTorch Image Models), features_only=True; each model's paper in its timm file",
    sizes=ARTICLE_MODELS,
    check_size=check_model,
)
class TimmBackbone(nn.Module):
    """A timm model's `features_only` extractor returning its maps at strides 8, 16 and 32.

    Args:
        c1: input channels.
        model_name: a timm model name (`timm.list_models()`).
        out_indices: the `feature_info` indices to return; None: the deepest tap at each of strides 8, 16 and 32.

    Attributes:
        model_name: the timm model name.
        out_indices: the taps returned.
        out_channels: channels of the returned maps (timm's `feature_info`).
        strides: strides of the returned maps.
        body: timm's feature extractor.
    """

    def __init__(self, c1: int = 3, model_name: str = ARTICLE_MODELS[0], out_indices: list | None = None) -> None:
        super().__init__()
        if not isinstance(model_name, str):
            raise ModelConfigError(f"timm backbone: model_name {model_name!r} is not a timm model name")
        found = probe(model_name)
        indices = tuple(int(i) for i in out_indices) if out_indices is not None else found.out_indices
        try:
            body = _create(model_name, c1, features_only=True, out_indices=indices)
        except Exception as err:
            raise ModelConfigError(f"timm model '{model_name}' with out_indices {list(indices)}: {err}") from err
        info = body.feature_info
        self.model_name = model_name
        self.out_indices = list(indices)
        self.out_channels = [int(c) for c in info.channels()]
        self.strides = tuple(int(r) for r in info.reduction())
        self.nhwc = str(getattr(body, "output_fmt", "NCHW")).endswith("NHWC")
        # a checkpoint holds only modules and plain data, so that the safe unpickler loads it: timm's FeatureInfo
        # (forward does not read it) goes, its Format enum becomes the plain string it stands for
        vars(body).pop("feature_info", None)
        fmt = vars(body).get("output_fmt")
        if fmt is not None:
            body.output_fmt = str(getattr(fmt, "value", fmt))
        _class_forwards(body)
        self.body = body

    @staticmethod
    def row_args(size: str) -> list:
        """The yaml row of `timm-<size>`: the model and its taps at strides 8, 16, 32 (`[fasternet_t0, [1, 2, 3]]`)."""
        return [size, list(probe(size).out_indices)]

    def forward(self, x: Tensor) -> list[Tensor]:
        """The maps at `strides`, NCHW."""
        outs = self.body(x)
        outs = list(outs.values()) if isinstance(outs, dict) else list(outs)
        return [o.permute(0, 3, 1, 2) for o in outs] if self.nhwc else outs

    def timm_names(self) -> dict[str, str]:
        """Each tensor of this module's state_dict under the name it has in `timm.create_model(model_name)`.

        timm's feature wrappers keep the classification model's modules but may rename their prefixes (`stages_0`
        for `stages.0`, `model.` in front): the full model is built on the meta device and each tensor is matched by
        name and shape.

        Returns:
            timm name -> name in this module's state_dict, in this module's order.

        Raises:
            ModelConfigError: a tensor of the extractor has no counterpart in the full model.
        """
        with torch.device("meta"):
            full = _create(self.model_name, self.body_in_chans)
        shapes = {k: tuple(v.shape) for k, v in full.state_dict().items()}
        flat = _flattened_names(full)
        names = {}
        for key, value in self.body.state_dict().items():
            head, _, rest = key.partition(".")
            candidates = [key, key.removeprefix("model.")]
            if head in flat:
                candidates.append(f"{flat[head]}.{rest}")
            match = next((c for c in candidates if shapes.get(c) == tuple(value.shape)), None)
            if match is None:
                raise ModelConfigError(
                    f"timm model '{self.model_name}': tensor body.{key} of its features_only extractor has no "
                    "counterpart in the full model; --backbone-weights cannot seed it"
                )
            names[match] = f"body.{key}"
        return names

    @property
    def body_in_chans(self) -> int:
        """Input channels of the extractor (its first conv's)."""
        first = next((m for m in self.body.modules() if isinstance(m, nn.Conv2d)), None)
        return int(first.in_channels) if first is not None else 3
