"""Datasets of a sweep: the built-in synthetic one, generated on the machine, and users' Ultralytics data yaml files.

The built-in dataset (`--dataset builtin`) is generated deterministically on first use into a cache folder
(`$YOLOAB_CACHE_DIR`, else `~/.cache/yoloab`); nothing is downloaded, since many users' clusters are offline.
Images hold three classes of filled shapes (square, disc, triangle) in random bright colours over a dark noisy
background with clutter (thin lines that are not objects). Object sides are log-uniform from 4 px to half the image,
so many objects are small: small-object detection is what most plug-in modules claim to improve. The classes differ
only in shape, not colour, so a detector must learn shape at several scales. Labels are in YOLO format and a data
yaml points Ultralytics at the folders.

A user's data yaml is checked before anything trains: it must exist, parse, name its classes and point at `train`
and `val` folders (or list files) that exist. It is named after its root folder (the yaml's `path`, else the yaml's
folder), not after the file, which is most often `data.yaml`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from .atomic import DIR_MODE, write_atomic
from .errors import DatasetError
from .hashing import file_sha256 as sha256_of

BUILTIN = "builtin"
BUILTIN_VERSION = 1  # bump when the generator changes, so cached copies and run keys change with it
# Left-out --epochs/--imgsz/--batch: Ultralytics' own defaults, or, for the built-in dataset, what a shared 2-core CPU
# trains in a few minutes per variant (measured: README, The built-in dataset).
TRAINING_DEFAULTS = {"epochs": 100, "imgsz": 640, "batch": 16}
BUILTIN_TRAINING = {"epochs": 5, "imgsz": 128, "batch": 8}
IMAGE_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}

CLASSES = ("square", "disc", "triangle")


def _draw(img: np.ndarray, cls: int, cx: float, cy: float, size: float, colour: tuple[int, int, int]) -> None:
    h = size / 2
    if cls == 0:
        cv2.rectangle(img, (round(cx - h), round(cy - h)), (round(cx + h), round(cy + h)), colour, -1)
    elif cls == 1:
        cv2.circle(img, (round(cx), round(cy)), max(round(h), 1), colour, -1)
    else:
        pts = np.array([[cx, cy - h], [cx - h, cy + h], [cx + h, cy + h]], dtype=np.int32)
        cv2.fillPoly(img, [pts], colour)


def _image(rng: np.random.Generator, imgsz: int, max_objects: int) -> tuple[np.ndarray, list[str]]:
    img = rng.integers(0, 60, (imgsz, imgsz, 3), dtype=np.uint8)
    for _ in range(int(rng.integers(2, 6))):  # clutter: thin lines that are not objects
        p1, p2 = rng.integers(0, imgsz, 2), rng.integers(0, imgsz, 2)
        cv2.line(img, tuple(map(int, p1)), tuple(map(int, p2)), tuple(int(c) for c in rng.integers(40, 120, 3)), 1)
    labels = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        cls = int(rng.integers(0, len(CLASSES)))
        # log-uniform sizes: many small objects (4 px) up to about half the image
        size = float(np.exp(rng.uniform(np.log(4), np.log(imgsz * 0.5))))
        cx, cy = rng.uniform(size / 2, imgsz - size / 2, 2)
        colour = tuple(int(c) for c in rng.integers(130, 256, 3))
        _draw(img, cls, cx, cy, size, colour)
        labels.append(f"{cls} {cx / imgsz:.6f} {cy / imgsz:.6f} {size / imgsz:.6f} {size / imgsz:.6f}")
    return img, labels


def make_shapes_dataset(
    root: str | Path, n_train: int = 64, n_val: int = 16, imgsz: int = 64, max_objects: int = 4, seed: int = 0
) -> Path:
    """Generate the dataset under `root` (if not already there) and return its data yaml.

    Args:
        root: output folder.
        n_train: training images.
        n_val: validation images.
        imgsz: image side in pixels.
        max_objects: most objects per image.
        seed: RNG seed; the same arguments always give the same files.

    Returns:
        Path of the data yaml.
    """
    root = Path(root).resolve()
    data_yaml = root / "data.yaml"
    if data_yaml.is_file():
        return data_yaml
    # Generated beside the target and renamed into place, so that a process killed half-way never leaves a partial
    # dataset behind a data yaml; one generator at a time (a lock the OS drops with its holder), which also clears
    # what a killed one left.
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if data_yaml.is_file():  # made by the process we waited for
            return data_yaml
        for stale in root.parent.glob(f".{root.name}.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        _generate(root, n_train, n_val, imgsz, max_objects, seed)
    return data_yaml


def _generate(root: Path, n_train: int, n_val: int, imgsz: int, max_objects: int, seed: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    os.chmod(tmp, DIR_MODE)  # mkdtemp makes it private; the dataset is an ordinary folder
    try:
        rng = np.random.default_rng(seed)
        for split, n in (("train", n_train), ("val", n_val)):
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
            for k in range(n):
                img, labels = _image(rng, imgsz, max_objects)
                cv2.imwrite(str(tmp / "images" / split / f"{k:05d}.png"), img)
                (tmp / "labels" / split / f"{k:05d}.txt").write_text("\n".join(labels) + "\n")
        names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASSES))
        write_atomic(tmp / "data.yaml", f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
        os.rename(tmp, root)  # onto a missing or empty folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Dataset:
    """A dataset a sweep trains on.

    Attributes:
        name: `builtin`, or the dataset's root folder (`dataset_name`); tables and run names use it.
        yaml: absolute path of the Ultralytics data yaml.
        identity: what run keys hash: generator version and size for the built-in one, else the data yaml's stem
            and a hash of its content and location (unchanged since names came from the yaml's stem).
        names: class names.
        n_train: number of training images (for images/s).
    """

    name: str
    yaml: Path
    identity: str
    names: tuple[str, ...]
    n_train: int


def cache_dir() -> Path:
    """Where generated data lives: `$YOLOAB_CACHE_DIR`, else `~/.cache/yoloab`."""
    return Path(os.environ.get("YOLOAB_CACHE_DIR") or Path.home() / ".cache" / "yoloab")


def builtin_dataset(n_train: int = 512, n_val: int = 128, imgsz: int = 160, seed: int = 0) -> Dataset:
    """The built-in shapes dataset, generated into the cache on first use.

    Args:
        n_train: training images.
        n_val: validation images.
        imgsz: side of the generated images in pixels.
        seed: generator seed.

    Raises:
        DatasetError: a size that cannot make a dataset.
    """
    if n_train < 1 or n_val < 1 or imgsz < 32:
        raise DatasetError(
            f"built-in dataset needs at least 1 training and 1 validation image of at least 32 px; "
            f"got {n_train} / {n_val} images of {imgsz} px"
        )
    identity = f"{BUILTIN}-shapes-v{BUILTIN_VERSION}-{n_train}x{n_val}-{imgsz}px-seed{seed}"
    path = make_shapes_dataset(cache_dir() / "datasets" / identity, n_train, n_val, imgsz, max_objects=6, seed=seed)
    return Dataset(BUILTIN, path, identity, CLASSES, n_train)


def _count_images(source: Path) -> int:
    if source.is_dir():
        return sum(1 for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return sum(1 for line in source.read_text().splitlines() if line.strip())


def _dataset_root(spec: dict, yaml_path: Path) -> Path:
    from ._ultralytics import datasets_dir

    root = Path(str(spec.get("path") or yaml_path.parent))
    if root.is_absolute():
        return root
    # Ultralytics resolves a relative root against the working directory, then its datasets folder
    for candidate in (Path.cwd() / root, yaml_path.parent / root, datasets_dir() / root):
        if candidate.exists():
            return candidate.resolve()
    return (Path.cwd() / root).resolve()


def training_defaults(spec: str) -> dict[str, int]:
    """Epochs, image size and batch used where the user gives none, for the dataset `spec` (a path or 'builtin')."""
    return dict(BUILTIN_TRAINING if spec == BUILTIN else TRAINING_DEFAULTS)


def load_dataset(spec: str, builtin_images: int = 512) -> Dataset:
    """Resolve `--dataset`: `builtin`, or the path of an Ultralytics data yaml, checked before any training.

    Args:
        spec: `builtin` or a data yaml path.
        builtin_images: training images of the built-in dataset (a quarter as many validation images).

    Raises:
        DatasetError: the file is missing or unreadable, has no `names`, or its `train`/`val` sources do not exist.
    """
    if spec == BUILTIN:
        return builtin_dataset(builtin_images, max(builtin_images // 4, 1))
    path = Path(spec).expanduser()
    if not path.is_file():
        hint = "" if path.suffix in (".yaml", ".yml") else "; expected a data yaml (.yaml) or 'builtin'"
        raise DatasetError(f"dataset '{spec}' not found{hint or '; expected an existing data yaml or builtin'}")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0]
        raise DatasetError(f"dataset '{spec}' is not valid yaml: {first}") from err
    if not isinstance(data, dict):
        raise DatasetError(f"dataset '{spec}' is not a data yaml (expected a mapping with train, val, names)")
    names = data.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not names or not isinstance(names, list):
        raise DatasetError(f"dataset '{spec}' has no 'names'; expected e.g. 'names: {{0: person, 1: car}}'")
    root = _dataset_root(data, path.resolve())
    n_train = 0
    for split in ("train", "val"):
        if not data.get(split):
            raise DatasetError(f"dataset '{spec}' has no '{split}' entry; expected a folder or list file under {root}")
        for item in data[split] if isinstance(data[split], list) else [data[split]]:
            source = Path(str(item)) if Path(str(item)).is_absolute() else root / str(item)
            if not source.exists():
                raise DatasetError(f"dataset '{spec}': {split} source '{source}' does not exist")
            if split == "train":
                n_train += _count_images(source)
    digest = hashlib.sha256((text + "\0" + str(root)).encode()).hexdigest()[:12]
    # the identity keeps the yaml's stem, as before: run keys hash it, so stored runs keep their keys
    identity = f"{path.stem}-{digest}"
    return Dataset(dataset_name(root, path), path.resolve(), identity, tuple(map(str, names)), n_train)


def dataset_name(root: Path, yaml_path: Path) -> str:
    """What tables and run names call a user's dataset: its root folder (the yaml's `path`, else the yaml's folder).

    Most data yaml files are called `data.yaml`; the folder tells `coco8` from `VOC`. The file's stem stands in only
    where the root has no name (`/`).
    """
    return root.name or yaml_path.stem


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's content, '' where it cannot be read."""
    try:
        return sha256_of(path)
    except OSError:
        return ""


def _split_images(dataset: Dataset, split: str) -> list[Path]:
    """Image files of a split of a data yaml: folders walked, list files read (lines relative to the list's folder)."""
    data = yaml.safe_load(dataset.yaml.read_text(encoding="utf-8", errors="replace")) or {}
    root = _dataset_root(data, dataset.yaml)
    items = data.get(split) or []
    out: list[Path] = []
    for item in items if isinstance(items, list) else [items]:
        source = Path(str(item)) if Path(str(item)).is_absolute() else root / str(item)
        if source.is_dir():
            out += [p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        elif source.is_file():
            lines = [ln.strip() for ln in source.read_text().splitlines() if ln.strip()]
            out += [Path(ln) if Path(ln).is_absolute() else source.parent / ln for ln in lines]
    return out


def in_training_set(dataset: Dataset, val_hashes: list[str], val_files: list[str | Path]) -> list[bool]:
    """Which validation images have the same content as some training image.

    Only training files of the same byte size as a validation image are hashed, so this stays cheap on large sets.
    """
    sizes = set()
    for f in val_files:
        try:
            sizes.add(os.path.getsize(f))
        except OSError:
            continue
    train_hashes = set()
    for p in _split_images(dataset, "train"):
        try:
            if os.path.getsize(p) in sizes:
                train_hashes.add(file_sha256(p))
        except OSError:
            continue
    train_hashes.discard("")
    return [h in train_hashes for h in val_hashes]
