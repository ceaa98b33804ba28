"""A synthetic detection dataset generated deterministically on the machine (nothing is downloaded).

Images hold three classes of filled shapes (square, disc, triangle) in random colours over a noisy, cluttered
background, from a few pixels across to a large part of the image, so that small objects are present. Labels are
in YOLO format; a data yaml points Ultralytics at the folders.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .variants import write_atomic

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
    root = Path(root)
    data_yaml = root / "data.yaml"
    if data_yaml.is_file():
        return data_yaml
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            img, labels = _image(rng, imgsz, max_objects)
            cv2.imwrite(str(root / "images" / split / f"{k:05d}.png"), img)
            (root / "labels" / split / f"{k:05d}.txt").write_text("\n".join(labels) + "\n")
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASSES))
    # written last and atomically: its presence marks a complete dataset
    write_atomic(data_yaml, f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return data_yaml
