"""The embedded mini benchmark: scikit-image's bundled photographs as a train/test set in benchmark layout.

Why these sizes: the mini set exists so that the whole pipeline (train a tiny model, evaluate it,
tabulate) runs on 2 CPU cores in minutes with no download. Each photograph is reduced by the largest
integer factor that keeps its short side at least T (MATLAB bicubic, so JPEG noise is averaged out
as well) and centre-cropped to T x T: T = 384 for the 9 training images (plenty of random 32-48 px
LR patches), T = 240 for the 5 test images (a full test pass of a tiny model takes seconds). Both are
multiples of 12, so the HR is already modcropped at x2, x3 and x4. Train and test share no source
photograph (and only one of the two motorcycle stereo frames is used: they are near-duplicates).

Output: `DIR/{train,test}/HR/<name>.png`, `DIR/{train,test}/LR_bicubic/X{2,3,4}/<name>x{s}.png` and
`DIR/manifest.json`; identical bytes on every run with the same scikit-image and Pillow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from suite.data.io import write_png
from suite.data.resize import degrade, imresize
from suite.files import atomic_write

SCALES = (2, 3, 4)
TRAIN_SIZE = 384
TEST_SIZE = 240

# split -> [(output name, scikit-image loader name)]; disjoint by construction (checked below).
SPLITS: dict[str, list[tuple[str, str]]] = {
    "train": [
        ("rocket", "rocket"),
        ("hubble", "hubble_deep_field"),
        ("ihc", "immunohistochemistry"),
        ("retina", "retina"),
        ("motorcycle", "stereo_motorcycle"),
        ("moon", "moon"),
        ("grass", "grass"),
        ("gravel", "gravel"),
        ("brick", "brick"),
    ],
    "test": [
        ("astronaut", "astronaut"),
        ("chelsea", "chelsea"),
        ("coffee", "coffee"),
        ("camera", "camera"),
        ("coins", "coins"),
    ],
}
SPLIT_SIZE = {"train": TRAIN_SIZE, "test": TEST_SIZE}


def load_photograph(loader: str) -> np.ndarray:
    """A bundled scikit-image photograph as uint8 (H, W, 3); grey becomes RGB, a stereo pair its left frame."""
    import skimage.data

    img = getattr(skimage.data, loader)()
    if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
        img = img[0]
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"skimage.data.{loader}() is {img.dtype}, expected uint8")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def make_hr(photo: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Reduce by the largest integer factor keeping the short side >= size, centre-crop size x size."""
    h, w = photo.shape[:2]
    if min(h, w) < size:
        raise ValueError(f"photograph of {w}x{h} is smaller than the {size}x{size} crop")
    factor = min(h, w) // size
    reduced = photo if factor == 1 else imresize(photo, 1.0 / factor)
    h, w = reduced.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(reduced[top : top + size, left : left + size]), factor


def build_mini(root: str | Path, log: Callable[[str], None] = lambda _: None) -> dict:
    """Write the mini benchmark under `root` -> the manifest (also written as root/manifest.json)."""
    import PIL
    import skimage

    train_sources = {loader for _, loader in SPLITS["train"]}
    test_sources = {loader for _, loader in SPLITS["test"]}
    if train_sources & test_sources:
        raise RuntimeError(f"mini train and test share sources: {sorted(train_sources & test_sources)}")
    root = Path(root)
    manifest = {
        "name": "mini",
        "sources": "photographs bundled with scikit-image (skimage.data)",
        "skimage_version": skimage.__version__,
        "pillow_version": PIL.__version__,
        "recipe": (
            "reduce by the largest integer factor keeping the short side >= T (MATLAB bicubic), "
            "centre-crop T x T; LR = MATLAB bicubic imresize(HR, 1/s)"
        ),
        "scales": list(SCALES),
        "splits": {},
    }
    for split, entries in SPLITS.items():
        size = SPLIT_SIZE[split]
        rows = []
        for name, loader in entries:
            photo = load_photograph(loader)
            hr, factor = make_hr(photo, size)
            write_png(root / split / "HR" / f"{name}.png", hr)
            for scale in SCALES:
                write_png(root / split / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png", degrade(hr, scale))
            rows.append(
                {
                    "name": name,
                    "source": f"skimage.data.{loader}",
                    "source_size": [photo.shape[1], photo.shape[0]],
                    "reduced_by": factor,
                    "hr_size": [size, size],
                }
            )
            log(f"mini/{split}/{name}: {photo.shape[1]}x{photo.shape[0]} /{factor} -> {size}x{size}")
        manifest["splits"][split] = {"size": size, "images": rows}
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(root / "manifest.json", lambda handle: handle.write(text.encode("utf-8")))
    return manifest
