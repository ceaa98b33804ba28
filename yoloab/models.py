"""Base models: the detection yaml families shipped with the installed Ultralytics, addressed by name and scale.

The yaml files are read from the installed package at run time and never copied into the project, so a newer
Ultralytics brings its own definitions.
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .errors import ModelConfigError, UnknownModelError, did_you_mean

# Families named by the spec: folder under ultralytics/cfg/models and the yaml stem pattern of detection models.
FAMILIES: dict[str, tuple[str, str]] = {
    "yolov5": ("v5", r"yolov5"),
    "yolov8": ("v8", r"yolov8"),
    "yolov9": ("v9", r"yolov9[tsmce]"),
    "yolov10": ("v10", r"yolov10[nsmblx]"),
    "yolo11": ("11", r"yolo11"),
    "yolo12": ("12", r"yolo12"),
    "yolo26": ("26", r"yolo26"),
}
DETECT_HEADS = {"Detect", "v10Detect"}


@dataclass(frozen=True)
class BaseModel:
    """A base detection model: a yaml of the installed Ultralytics plus the scale to build it at.

    Attributes:
        name: the usual Ultralytics name (`yolov8n`, `yolov5nu`, `yolov10s`, `yolov9t`).
        family: the family key of `FAMILIES`.
        yaml_path: the yaml file inside the installed Ultralytics package.
        scale: the scale key in the yaml's `scales`, or '' for per-size files (v9, v10).
    """

    name: str
    family: str
    yaml_path: Path
    scale: str

    def config(self) -> dict[str, Any]:
        """The model dict at this scale: `scales` reduced to this scale, so the file name no longer matters."""
        d = deepcopy(_load_yaml(self.yaml_path))
        if self.scale:
            d["scales"] = {self.scale: d["scales"][self.scale]}
            d["scale"] = self.scale
        d["yaml_file"] = f"{self.name}.yaml"
        return d


def ultralytics_cfg_dir() -> Path:
    """The folder of model yaml files inside the installed Ultralytics."""
    import ultralytics

    return Path(ultralytics.__file__).parent / "cfg" / "models"


@cache
def _load_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@cache
def base_models() -> dict[str, BaseModel]:
    """Every base detection model of the spec's families that the installed Ultralytics ships, by name."""
    found: dict[str, BaseModel] = {}
    root = ultralytics_cfg_dir()
    for family, (folder, pattern) in FAMILIES.items():
        for path in sorted((root / folder).glob("*.yaml")):
            if not re.fullmatch(pattern, path.stem):
                continue
            d = _load_yaml(path)
            if d.get("head", [[None] * 4])[-1][2] not in DETECT_HEADS:
                continue
            suffix = "u" if family == "yolov5" else ""  # Ultralytics' anchor-free YOLOv5 is called yolov5nu etc.
            scales = list(d.get("scales") or [""])
            if path.stem != family:  # one file per size (v9, v10): the name is the file name
                found[path.stem] = BaseModel(path.stem, family, path, scales[0] if len(scales) == 1 else "")
                continue
            for scale in scales:
                name = f"{path.stem}{scale}{suffix}"
                found[name] = BaseModel(name, family, path, scale)
    return found


def get_base_model(name: str) -> BaseModel:
    """Look up a base model by name.

    Raises:
        UnknownModelError: the name is not a detection model of the installed Ultralytics.
    """
    models = base_models()
    # yolo11n.pt names the same architecture as yolo11n: only the yaml is used, nothing is downloaded
    key = name.removesuffix(".yaml").removesuffix(".pt")
    if key in models:
        return models[key]
    raise UnknownModelError(
        f"unknown base model '{name}'{did_you_mean(key, models)}; expected a detection model such as "
        f"yolov8n, yolo11s, yolov10s, yolov9t, yolov5nu (see `yoloab list`) or a yaml path"
    )


def scale_gains(d: dict[str, Any]) -> list[Any]:
    """[depth, width, max_channels] of a model dict, as parse_model reads them (the first scale when none is set)."""
    scales = d.get("scales")
    if scales:
        scale = d.get("scale") if d.get("scale") in scales else next(iter(scales))
        return list(scales[scale])
    return [d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), None]


def load_model_yaml(path: str | Path) -> dict[str, Any]:
    """Read a model yaml file given by path.

    Raises:
        ModelConfigError: the file is missing, does not parse, or lacks backbone/head.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelConfigError(f"model yaml not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            d = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ModelConfigError(f"{path}: not valid yaml{at}: {getattr(err, 'problem', err)}") from err
    if not isinstance(d, dict) or "backbone" not in d or "head" not in d:
        raise ModelConfigError(f"{path}: expected a model yaml with 'backbone' and 'head' sections")
    d["yaml_file"] = str(path)
    return d
