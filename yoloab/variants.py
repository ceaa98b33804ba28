"""Variants: a base model plus zero or more swaps, as model dicts, yaml files and built models.

Names are stable and readable: `yolov8n` (baseline), `yolov8n-ADown-all`, `yolov8s-DynamicConv-article`,
`yolo11n-RevCol-tiny`. Generated yaml files carry a header saying what generated them, from which base, which rows
changed and the command that regenerates them, plus a machine-readable `yoloab:` key that Ultralytics ignores.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from ._ultralytics import ultralytics_version, validate_rows
from .atomic import DIR_MODE, FILE_MODE, copy_atomic, write_atomic  # noqa: F401  (re-exported)
from .errors import ModelConfigError, PlacementError, VariantNameError, YoloabError
from .models import BaseModel, base_models, get_base_model, load_model_yaml
from .placement import label, resolve, row_strides
from .registry import MODULES, ModuleEntry


@dataclass
class Variant:
    """A buildable model configuration.

    Attributes:
        name: stable variant name.
        base: base model name (or the yaml stem for user files).
        config: the Ultralytics model dict.
        module: the swapped-in module name, None for a baseline.
        placement: the placement as given, None for a baseline.
        rows: indices of the rows changed from the base; for a backbone swap, the new backbone's own rows (the
            module and its output taps), which replace every base backbone row before the kept tail (SPPF, ...);
            for an attention variant, the inserted rows.
        command: the yoloab command that regenerates this variant ('' for user files).
        path: the yaml file it came from, if any.
        row_map: base-model row -> the variant row holding the same module, where rows moved (a backbone swap: the
            kept rows only; an attention variant: every base row). None: every row kept its index.
        after: for an attention variant, the base rows each inserted row follows.
    """

    name: str
    base: str
    config: dict[str, Any]
    module: str | None = None
    placement: str | None = None
    rows: list[int] = field(default_factory=list)
    command: str = ""
    path: Path | None = None
    row_map: dict[int, int] | None = None
    after: list[int] | None = None

    @property
    def role(self) -> str | None:
        """The role of the variant's module (None for a baseline, a user yaml or a module not registered here)."""
        if self.module is None:
            return None
        try:
            return MODULES.get(self.module).role
        except YoloabError:  # a module recorded in a yaml header but not registered in this process
            return None

    @property
    def is_baseline(self) -> bool:
        """Whether the variant is its base model unchanged."""
        return self.module is None

    @property
    def is_backbone_swap(self) -> bool:
        """Whether a backbone module replaced the base backbone (rather than modules swapped into single rows)."""
        # `backbone` is also a placement of the row roles: the module's role decides
        return self.placement == "backbone" and self.role == "backbone"


def baseline(base: BaseModel) -> Variant:
    """The unchanged base model as a variant."""
    return Variant(base.name, base.name, base.config(), command=f"yoloab variants --model {base.name}")


def make_variant(base: BaseModel, module: str, placement: str = "article") -> Variant:
    """Put a registered module into a base model, the way its role says (`yoloab.roles`).

    Args:
        base: the base model.
        module: a registered module name; backbones accept a size suffix (`RevCol-small`) and then one of their
            options (`RevCol-tiny-rev`).
        placement: `article`, `all`, `backbone`, `head`, `<section>:P3,P4`, row indices, and for attention also
            `sppf` and `neck-outputs`.

    Returns:
        The variant.

    Raises:
        UnknownModuleError: the module is not registered.
        PlacementError: the placement is invalid, does not apply to the role, or selects no row.
        ModelConfigError: a backbone swap cannot be fitted to this base model.
    """
    from .roles import ROLES

    entry = MODULES.get(module)
    return ROLES[entry.role].rewriter().rewrite(base, entry, module, placement)


def row_swap_variant(
    base: BaseModel, entry: ModuleEntry, placement: str, change: Callable[[list[Any]], list[Any]]
) -> Variant:
    """A variant whose selected rows are each replaced by `change(row)`; no row moves.

    Raises:
        PlacementError: the placement is invalid or selects no row.
    """
    d = base.config()
    rows = resolve(d, placement, entry, base.name)
    every = d["backbone"] + d["head"]
    for r in rows:
        every[r][:] = change(every[r])  # in place: `every` holds the same row lists as `d`
    return Variant(
        f"{base.name}-{entry.name}-{label(placement)}",
        base.name,
        d,
        entry.name,
        placement,
        rows,
        f"yoloab variants --model {base.name} --module {entry.name} --placement {placement}",
    )


_UNSAFE = re.compile(r"[^\w.+=-]")


def safe_name(name: Any, where: str) -> str:
    """A variant name as a file name: characters other than letters, digits and `._+=-` become `_`.

    Raises:
        VariantNameError: a name that would leave its folder (a path separator, `..`) or is empty.
    """
    text = str(name).strip()
    if not text or "/" in text or "\\" in text or ".." in text or "\0" in text or text.startswith("."):
        raise VariantNameError(
            f"{where}: variant name {text!r} cannot be a file name (no '/', '\\', '..' or leading '.'); "
            "expected e.g. yolov8n-MyDown"
        )
    return _UNSAFE.sub("_", text)


def from_yaml(path: str | Path, base: str | None = None) -> Variant:
    """A variant read from a yaml file (a generated one or a user's own); its name is made a safe file name.

    A file without a yoloab header gets its base model from `base` (`--model`), else from its rows: the base model
    whose rows and scale it repeats, once inserted attention rows are set aside, else the base model its file name
    starts with (`yolov8n-cbam.yaml`). Its Δ is then taken against that base model, and its row map lets
    `--pretrained` seed it.

    Raises:
        VariantNameError: the yoloab header names the variant with a path separator or `..`.
    """
    path = Path(path)
    d = load_model_yaml(path)
    meta = d.get("yoloab") if isinstance(d.get("yoloab"), dict) else {}
    if not meta:
        return _user_variant(path, d, base)
    return Variant(
        safe_name(meta.get("name", path.stem), str(path)),
        meta.get("base", path.stem),
        d,
        meta.get("module"),
        meta.get("placement"),
        list(meta.get("rows", [])),
        meta.get("command", ""),
        path,
        {int(old): int(new) for old, new in meta["row_map"]} if meta.get("row_map") else None,
        [int(r) for r in meta["after"]] if meta.get("after") is not None else None,
    )


@dataclass(frozen=True)
class Alignment:
    """How a model dict relates to a base model's: rows inserted after base rows, rows changed in place.

    Attributes:
        row_map: base row -> the row of the dict holding the same row.
        inserted: rows of the dict that the base does not have (attention rows).
        after: for each inserted row, the base row it follows.
        changed: rows of the dict whose module or arguments differ from the base row they stand for.
    """

    row_map: dict[int, int]
    inserted: list[int]
    after: list[int]
    changed: list[int]


def _is_inserted(row: list) -> bool:
    """A row that reads the row before it and holds a registered attention module."""
    name = row[2]
    return row[0] == -1 and isinstance(name, str) and name in MODULES and MODULES.get(name).role == "attention"


def align(d: dict, base_d: dict) -> Alignment | None:
    """Align a model dict with a base model's, or None when their rows or scales do not correspond.

    The dict corresponds when, with its attention rows set aside, it has the base's rows with the same inputs (each
    input read through the inserted rows to the base row behind it) at the same scale; rows may differ in module and
    arguments (swaps).
    """
    from .models import scale_gains

    if scale_gains(d) != scale_gains(base_d):
        return None
    rows, base_rows = d["backbone"] + d["head"], base_d["backbone"] + base_d["head"]
    inserted = [i for i, r in enumerate(rows) if i > 0 and _is_inserted(r)]
    kept: list[int] = []
    base_of: dict[int, int] = {}  # row of the dict -> the base row whose output it stands for
    for i in range(len(rows)):
        if i in inserted:
            base_of[i] = base_of[i - 1]
        else:
            base_of[i] = len(kept)
            kept.append(i)
    if len(kept) != len(base_rows):
        return None

    def source(f: Any, at: int, lookup: dict[int, int] | None) -> Any:
        if isinstance(f, list):
            return [source(x, at, lookup) for x in f]
        if not isinstance(f, int):
            return f
        src = f if f >= 0 else at + f
        return lookup.get(src, src) if lookup is not None else src

    for j, i in enumerate(kept):
        if source(rows[i][0], i, base_of) != source(base_rows[j][0], j, None):
            return None
    changed = [i for j, i in enumerate(kept) if list(rows[i][1:]) != list(base_rows[j][1:])]
    return Alignment({j: i for j, i in enumerate(kept)}, inserted, [base_of[i] for i in inserted], changed)


def _user_variant(path: Path, d: dict, base: str | None) -> Variant:
    """A header-less yaml as a variant of the base model it corresponds to (see `from_yaml`)."""
    name = safe_name(path.stem, str(path))
    found: tuple[str, Alignment | None] | None = None
    names = [get_base_model(base).name] if base else list(base_models())
    for candidate in names:
        aligned = align(d, get_base_model(candidate).config())
        if aligned is not None:
            found = (candidate, aligned)
            break
    if found is None:
        by_name = [b for b in base_models() if b != path.stem and re.match(rf"{re.escape(b)}(?![0-9a-z])", path.stem)]
        chosen = base or max(by_name, key=len, default=None)
        if chosen is None:
            return Variant(name, path.stem, d, None, None, [], "", path)  # its own baseline, as any unknown model
        found = (chosen, None)
    chosen, aligned = found
    if aligned is not None and not aligned.inserted and not aligned.changed:
        return Variant(name, path.stem, d, None, None, [], "", path)  # the base model itself, under another name
    if aligned is None:
        return Variant(name, chosen, d, path.stem, "yaml", [], "", path)
    rows = d["backbone"] + d["head"]
    modules = sorted({rows[i][2] for i in aligned.inserted + aligned.changed})
    moved = aligned.row_map if aligned.inserted else None
    return Variant(
        name,
        chosen,
        d,
        "+".join(modules) or path.stem,
        "yaml",
        sorted(aligned.inserted + aligned.changed),
        "",
        path,
        moved,
        aligned.after if aligned.inserted else None,
    )


def select_request(
    models: list[str] | None, modules: list[str] | None, placement: str = "article", yamls: list[str] | None = None
) -> list[Variant]:
    """The variants of a command line, with the grammar every verb shares.

    No `--module`: the baselines only; `--module all`: every registered module (timm's models not among them: name
    one with `timm-<model>`). A model name may end in `.yaml` or
    `.pt` (the same architecture). A positional argument that is not a file on disk but names a base model yaml that
    Ultralytics ships (`yolo11n.yaml`) is that base model. No model and no yaml file: yolov8n.

    Raises:
        YoloabError: any unknown model, module or invalid placement, before anything is built.
    """
    names = list(models or [])
    files: list[str] = []
    for arg in yamls or []:
        if not Path(arg).exists() and arg.endswith(".yaml") and Path(arg).name == arg and arg[:-5] in base_models():
            names.append(arg)
        else:
            files.append(arg)
    every = "all" in (modules or [])
    chosen_modules = MODULES.catalog_names() if every else list(modules or [])
    return select(names or ([] if files else ["yolov8n"]), chosen_modules, placement, files, every)


def select(
    models: list[str],
    modules: list[str],
    placement: str = "article",
    yamls: list[str] | None = None,
    every: bool = False,
) -> list[Variant]:
    """The variants a command line asks for: each base model, then one variant per module; then yaml files.

    With `every` (`--module all`), a module whose role has no row the placement selects in a base model (DySample
    with `--placement backbone`, SPPF_LSKA on yolo12) is skipped with a warning instead of stopping the command.

    Raises:
        YoloabError: any unknown model, module or invalid placement, before anything is built.
    """
    variants: list[Variant] = []
    for name in models:
        base = get_base_model(name)
        variants.append(baseline(base))
        for module in modules:
            try:
                variants.append(make_variant(base, module, placement))
            except PlacementError as err:
                if not every:
                    raise
                logging.getLogger("yoloab").warning("--module all: skipped %s on %s: %s", module, base.name, err)
    hint = models[0] if len(models) == 1 else None  # `--model yolov8n my.yaml`: my.yaml is a yolov8n variant
    users = [from_yaml(p, hint) for p in yamls or []]
    requested = {v.name for v in variants}
    for v in users:  # a user yaml's Δ needs its base model's row: add the baseline it was matched to
        if v.base not in requested and v.module is not None and v.base in base_models() and v.name != v.base:
            variants.append(baseline(get_base_model(v.base)))
            requested.add(v.base)
    return variants + users


def with_nc(variant: Variant, nc: int | None) -> Variant:
    """The variant with `nc` classes in its config and its regeneration command; unchanged when `nc` is None.

    Its yaml file then builds exactly the model that `build(variant, nc=nc)` builds and `variants` counts.
    """
    if nc is None:
        return variant
    command = f"{variant.command} --nc {nc}" if variant.command else ""
    return replace(variant, config={**variant.config, "nc": nc}, command=command)


def build(variant: Variant, nc: int | None = None, verbose: bool = False) -> nn.Module:
    """Build a variant as an Ultralytics `DetectionModel`.

    Raises:
        UnknownModuleError: a row names an unknown module.
        ModelConfigError: the model cannot be built (one line with the cause).
    """
    from ultralytics.nn.tasks import DetectionModel

    d = deepcopy(variant.config)
    if variant.path is None:
        d["yaml_file"] = f"{variant.name}.yaml"
    if nc is not None:
        d["nc"] = nc  # set here rather than passed: Ultralytics logs an "Overriding nc" line on stdout otherwise
    validate_rows(d)
    try:
        return DetectionModel(d, ch=3, verbose=verbose)
    except YoloabError:
        raise
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ModelConfigError(f"{variant.name}: cannot build: {type(err).__name__}: {first}") from err


def check_buildable(variants: list[Variant]) -> None:
    """Build every variant once, as `profile` does, so that a sweep refuses a bad one before it trains any.

    Raises:
        YoloabError: the first variant that cannot be built (unknown module, bad row), naming its row.
    """
    for variant in variants:
        build(variant)


def build_seeded(variant: Variant, nc: int | None = None, seed: int = 0) -> nn.Module:
    """`build` with torch's global generator seeded for the call (and restored after): the same weights every time."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(variant, nc=nc)


def count_params(model: nn.Module) -> int:
    """Number of parameters, as Ultralytics' model summary prints it."""
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------------------------------
# yaml files

_PLAIN = re.compile(r"[A-Za-z_][\w.]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _flow(value: Any) -> str:
    """A value as an Ultralytics-style yaml flow item (`[-1, 1, Conv, [64, 3, 2]]`)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    return text if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS else json.dumps(text)


def to_yaml(variant: Variant) -> str:
    """Render a variant as a self-describing model yaml file."""
    d = variant.config
    strides = row_strides(d)
    src = get_base_model(variant.base) if variant.base and not variant.path else None
    lines = [f"# Generated by yoloab {__version__} (ultralytics {ultralytics_version()}); do not edit by hand."]
    if src is not None:
        rel = src.yaml_path.relative_to(src.yaml_path.parents[4])
        lines.append(f"# Base: {variant.base} = {rel}" + (f" at scale '{src.scale}'" if src.scale else ""))
    if variant.module:
        old = src.config() if src is not None else None
        if variant.is_backbone_swap:
            lines.append(_backbone_swap_line(variant, old))
        elif variant.after is not None:
            pairs = ", ".join(f"{a} -> row {n}" for a, n in zip(variant.after, variant.rows, strict=False))
            lines.append(f"# Insert: {variant.module} at placement '{variant.placement}' after base rows {pairs}")
            lines.append("# Every later input is re-indexed; rows that read a base row above read its inserted row")
        else:
            every = d["backbone"] + d["head"]
            before = {r: (old["backbone"] + old["head"])[r][2] for r in variant.rows} if old else {}
            changed = ", ".join(f"{r} ({before.get(r, '?')} -> {every[r][2]})" for r in variant.rows)
            lines.append(f"# Swap: {variant.module} at placement '{variant.placement}': rows {changed}")
    if variant.command:
        lines.append(f"# Regenerate: {variant.command} --out <dir>")
    lines.append("# Use: import yoloab; from ultralytics import YOLO; YOLO('<this file>')")
    lines.append("")
    meta = {
        "name": variant.name,
        "base": variant.base,
        "module": variant.module,
        "placement": variant.placement,
        "rows": variant.rows,
        "command": variant.command,
        "version": __version__,
    }
    if variant.after is not None:
        meta["after"] = list(variant.after)
    if variant.row_map is not None:
        meta["row_map"] = sorted(variant.row_map.items())  # [base row, variant row] pairs, for --pretrained
    lines.append("yoloab: {" + ", ".join(f"{k}: {_flow(v)}" for k, v in meta.items()) + "}")
    skip = {"backbone", "head", "scales", "yaml_file", "scale", "yoloab", "ch", "channels"}
    for key, value in d.items():
        if key not in skip:
            lines.append(f"{key}: {_flow(value)}")
    if d.get("scales"):
        lines.append("scales: # [depth, width, max_channels]")
        lines.extend(f"  {k}: {_flow(v)}" for k, v in d["scales"].items())
    nb = len(d["backbone"])
    prev = 1
    for section, rows, offset in (("backbone", d["backbone"], 0), ("head", d["head"], nb)):
        lines.append("")
        lines.append(f"{section}:")
        lines.append("  # [from, repeats, module, args]")
        for j, row in enumerate(rows):
            i = offset + j
            level = (
                f"-P{strides[i].bit_length() - 1}/{strides[i]}" if strides[i] > prev and section == "backbone" else ""
            )
            prev = max(prev, strides[i])
            lines.append(f"  - {_flow(row)} # {i}{level}")
    return "\n".join(lines) + "\n"


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _backbone_swap_line(variant: Variant, old: dict | None) -> str:
    """The header of a backbone swap: the module's row with its named args, the base rows replaced and kept."""
    d, new = variant.config, len(variant.rows)
    row = d["backbone"][0]
    entry = MODULES.get(row[2])
    names = [k for k in inspect.signature(entry.cls.__init__).parameters if k != "self"][1:]  # after c1
    call = ", ".join(f"{k}={_flow(v)}" for k, v in zip(names, row[3], strict=False))
    line = f"# Swap: {variant.module} backbone, rows {_span(0, new - 1)}; row 0 builds {entry.name}(c1, {call})"
    if old is None:
        return line
    kept = len(d["backbone"]) - new  # the tail (SPPF, C2PSA, ...) copied from the base
    replaced, total_old = len(old["backbone"]) - kept, len(old["backbone"]) + len(old["head"])
    moved = f"{_span(replaced, total_old - 1)} are rows {_span(new, new + total_old - replaced - 1)}"
    return f"{line}\n# It replaces base rows {_span(0, replaced - 1)}; base rows {moved} here, their inputs re-indexed"


def write_yaml(variant: Variant, out_dir: str | Path) -> Path:
    """Write a variant's yaml into a folder; returns the path."""
    path = Path(out_dir) / f"{variant.name}.yaml"
    write_atomic(path, to_yaml(variant))
    return path
