"""Datasets: paired LR/HR benchmark images (benchmark layout, DIV2K, HR-only) and random training patches.

Conventions (SPEC section 6): HR is modcropped to a multiple of the scale; LR is read from the
dataset's `LR_bicubic/X{s}` files when present, else made from the HR with MATLAB bicubic
(`suite.data.resize`); every stored pair is checked (LR size * s == modcropped HR size).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from suite.data.io import IMAGE_ERRORS, IMAGE_SUFFIXES, list_images, read_image
from suite.data.resize import degrade
from suite.data.tensors import image_to_tensor
from suite.files import found_instead, not_found_message

# LR rows/cols kept around a training patch when it is degraded on the fly: the x{s} bicubic kernel
# reaches 2 LR pixels, so with 3 the patch is pixel-identical to the same crop of the whole-image LR.
_ON_THE_FLY_MARGIN = 3
# Below this many bytes of image files, TrainPatches keeps decoded images in memory.
_CACHE_LIMIT_BYTES = 512 * 2**20


@dataclass(frozen=True)
class ImagePair:
    """One HR image and its stored LR (None: LR is made from the HR with MATLAB bicubic)."""

    name: str
    hr: Path
    lr: Path | None


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop (H, W, C) to (H - H % s, W - W % s), keeping the top-left corner, as MATLAB's modcrop."""
    h, w = img.shape[:2]
    if h < scale or w < scale:
        raise ValueError(f"image of {w}x{h} is smaller than the scale x{scale}")
    return img[: h - h % scale, : w - w % scale]


def check_pair_sizes(
    lr_size: tuple[int, int], hr_size: tuple[int, int], scale: int, lr_path: Path | str, hr_path: Path | str
) -> None:
    """Raise ValueError naming both files unless LR (W, H) * scale == modcropped HR (W, H)."""
    hr_w, hr_h = hr_size
    want = ((hr_w - hr_w % scale) // scale, (hr_h - hr_h % scale) // scale)
    if tuple(lr_size) != want:
        raise ValueError(
            f"LR/HR size mismatch at x{scale}: LR {lr_path} is {lr_size[0]}x{lr_size[1]}, "
            f"HR {hr_path} is {hr_w}x{hr_h} (modcropped {want[0] * scale}x{want[1] * scale}), "
            f"so the LR should be {want[0]}x{want[1]}"
        )


def image_size(path: Path) -> tuple[int, int]:
    """(W, H) from the file header, without decoding; ValueError naming the file if unreadable."""
    try:
        with Image.open(path) as img:
            return img.size
    except IMAGE_ERRORS as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


def _unique_stems(files: list[Path]) -> None:
    """Refuse two images whose names differ only in suffix or case (`a.png` beside `a.jpg`): they
    would give two result rows named `a`, one SR file written over the other, and an LR lookup by
    stem that may pair `a.jpg` with the LR of `a.png`."""
    seen: dict[str, Path] = {}
    for file in files:
        other = seen.setdefault(file.stem.casefold(), file)
        if other != file:
            raise ValueError(
                f"ambiguous image names: {other} and {file} share the name {file.stem!r}; rename or remove one of them"
            )


def _stored_lr(lr_dir: Path, hr: Path, scale: int) -> Path:
    """The LR file of `hr` in `lr_dir` (`<stem>x<s>.<ext>`); FileNotFoundError naming it if absent,
    ValueError naming both when two files (e.g. `ax2.png`, `ax2.jpg`) could be it."""
    names = [f"{hr.stem}x{scale}{hr.suffix}"]
    names += [f"{hr.stem}x{scale}{suffix}" for suffix in IMAGE_SUFFIXES if suffix != hr.suffix.lower()]
    found = [lr_dir / name for name in names if (lr_dir / name).is_file()]
    if not found:
        instead = found_instead(lr_dir / names[0])
        raise FileNotFoundError(
            f"LR image for {hr} not found: expected {lr_dir / names[0]}"
            + (f", which is {instead}, not a file" if instead else "")
        )
    if len(found) > 1:
        raise ValueError(f"ambiguous LR images for {hr}: {found[0]} and {found[1]}; remove one of them")
    return found[0]


def resolve_pairs(path: str | Path, scale: int, split: str = "valid") -> tuple[str, str, list[ImagePair]]:
    """Find the images of a dataset folder -> (dataset name, layout, pairs).

    Layouts, tried in this order:
    - benchmark: `<path>/HR/<name>.png` (+ `<path>/LR_bicubic/X{s}/<name>x{s}.png` if present);
    - DIV2K root: `<path>/DIV2K_{split}_HR/0801.png` (+ `<path>/DIV2K_{split}_LR_bicubic/X{s}/0801x{s}.png`);
    - HR-only: the images directly inside `<path>`.
    """
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(not_found_message("dataset folder", root, "a folder"))
    if (root / "HR").is_dir():
        name, layout = root.name, "benchmark"
        hr_dir, lr_dir = root / "HR", root / "LR_bicubic" / f"X{scale}"
    elif (root / f"DIV2K_{split}_HR").is_dir():
        name, layout = f"DIV2K_{split}", "div2k"
        hr_dir, lr_dir = root / f"DIV2K_{split}_HR", root / f"DIV2K_{split}_LR_bicubic" / f"X{scale}"
    else:
        name, layout = root.name, "hr-only"
        hr_dir, lr_dir = root, None
        try:
            list_images(root)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"no dataset in {root}: expected {root}/HR (benchmark layout), "
                f"{root}/DIV2K_{split}_HR (DIV2K) or image files directly inside"
            ) from err
    hr_files = list_images(hr_dir)
    _unique_stems(hr_files)
    if lr_dir is not None and found_instead(lr_dir) not in (None, "a folder"):
        # an LR folder that is there but unreadable must not silently become LR made from the HR images
        raise FileNotFoundError(not_found_message("LR folder", lr_dir, "a folder of LR images"))
    stored = lr_dir is not None and lr_dir.is_dir()
    pairs = [ImagePair(hr.stem, hr, _stored_lr(lr_dir, hr, scale) if stored else None) for hr in hr_files]
    return name, layout, pairs


class PairedDataset:
    """Benchmark pairs: `ds[i] -> {"name": str, "lr": uint8 (h, w, 3), "hr": uint8 (h*s, w*s, 3)}`."""

    def __init__(self, name: str, pairs: list[ImagePair], scale: int, layout: str = "custom") -> None:
        if not pairs:
            raise ValueError(f"dataset {name} has no images")
        self.name = name
        self.pairs = list(pairs)
        self.scale = scale
        self.layout = layout

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def lr_source(self) -> str:
        """'stored' when every LR comes from files, 'matlab-bicubic' when made from HR here."""
        kinds = {pair.lr is not None for pair in self.pairs}
        return "stored" if kinds == {True} else "matlab-bicubic" if kinds == {False} else "mixed"

    def check_sizes(self) -> None:
        """Check every stored pair from the file headers (fast: no pixel is decoded)."""
        for pair in self.pairs:
            if pair.lr is not None:
                check_pair_sizes(image_size(pair.lr), image_size(pair.hr), self.scale, pair.lr, pair.hr)

    def largest_lr_side(self) -> int:
        """The longest side, in pixels, of any LR image (from the file headers; a made LR is the modcropped HR
        over the scale): the largest input a network evaluated on this set gets."""
        sides = []
        for pair in self.pairs:
            if pair.lr is not None:
                sides.extend(image_size(pair.lr))
            else:
                sides.extend(side // self.scale for side in image_size(pair.hr))
        return max(sides)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {self.name} ({len(self)} images)")
        pair = self.pairs[index]
        hr_full = read_image(pair.hr)
        try:
            hr = modcrop(hr_full, self.scale)
        except ValueError as err:
            raise ValueError(f"{pair.hr}: {err}") from err
        if pair.lr is None:
            try:
                lr = degrade(hr, self.scale)
            except ValueError as err:
                raise ValueError(f"{pair.hr}: {err}") from None
        else:
            lr = read_image(pair.lr)
            check_pair_sizes(
                (lr.shape[1], lr.shape[0]), (hr_full.shape[1], hr_full.shape[0]), self.scale, pair.lr, pair.hr
            )
        return {"name": pair.name, "lr": lr, "hr": hr}


def open_paired(path: str | Path, scale: int, split: str = "valid") -> PairedDataset:
    """Open a benchmark folder, a DIV2K root (its `split` half) or an HR-only folder; pairs are checked."""
    name, layout, pairs = resolve_pairs(path, scale, split)
    dataset = PairedDataset(name, pairs, scale, layout)
    dataset.check_sizes()
    return dataset


def subimage_starts(side: int, size: int, step: int) -> list[int]:
    """Starts of BasicSR's sub-images along one side (scripts/data_preparation/extract_subimages.py with
    thresh_size 0): every `step` while a whole sub-image fits, then one flush with the far edge if any
    pixel is left over, so the sub-images cover the side."""
    if side < size:
        raise ValueError(f"a side of {side} is shorter than a sub-image of {size}")
    starts = list(range(0, side - size + 1, step))
    if side - (starts[-1] + size) > 0:
        starts.append(side - size)
    return starts


def _check_subimages(subimages: tuple[int, int], scale: int, lr_patch: int) -> None:
    """(size, step) in HR pixels must cut LR sub-images on whole pixels that hold an LR patch."""
    size, step = subimages
    for name, value in (("size", size), ("step", step)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"sub-image {name} must be a positive integer, got {value!r}")
    if step > size:
        raise ValueError(
            f"sub-image step {step} is larger than its size {size}: pixels between them would never be drawn"
        )
    if size % scale or step % scale:
        raise ValueError(f"sub-image size {size} and step {step} must be multiples of the scale x{scale}")
    if size // scale < lr_patch:
        raise ValueError(
            f"sub-image size {size} is {size // scale} LR pixels at x{scale}: smaller than the LR patch {lr_patch}"
        )


def _dihedral(img: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/90-degree rotations of (H, W, C): k in 0..7."""
    if k & 4:
        img = img.transpose(1, 0, 2)
    if k & 2:
        img = img[::-1]
    if k & 1:
        img = img[:, ::-1]
    return img


class TrainPatches(torch.utils.data.Dataset):
    """Random aligned LR/HR training crops with flips and 90-degree rotations.

    `ds[i] -> (lr float32 (3, p, p), hr float32 (3, p*s, p*s))`, both in [0, 1]. Sample i of epoch e
    is a pure function of (seed, e, i) -- image, crop and augmentation alike -- so resumed runs,
    any number of DataLoader workers and DDP ranks see exactly the same samples. Call `set_epoch(e)`
    at the start of every epoch.

    LR comes from the dataset's stored `LR_bicubic/X{s}` files when present, else from MATLAB bicubic
    of the whole HR image; `on_the_fly=True` degrades only the HR crop (with a margin) instead, which
    gives the same pixels without whole-image LR in memory or on disk.

    `subimages=(size, step)` samples as BasicSR's official runs do, without writing their sub-image files:
    every modcropped HR image is cut into `size` x `size` sub-images `step` apart (`subimage_starts`), an
    epoch visits all sub-images in a random order, and each crop lies inside its sub-image; so a larger
    image gives proportionally more patches. The crop is still taken from the whole image.
    None gives one sample per image per epoch, anywhere in it.
    """

    def __init__(
        self,
        root: str | Path,
        scale: int,
        lr_patch: int,
        seed: int,
        length: int | None = None,
        on_the_fly: bool = False,
        augment: bool = True,
        split: str = "train",
        cache_images: bool | None = None,
        subimages: tuple[int, int] | None = None,
    ) -> None:
        if not isinstance(lr_patch, int) or lr_patch < 1:
            raise ValueError(f"lr_patch must be a positive integer, got {lr_patch!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if length is not None and (not isinstance(length, int) or length < 1):
            raise ValueError(f"length must be a positive integer or None, got {length!r}")
        self.name, self.layout, self.pairs = resolve_pairs(root, scale, split)
        if subimages is not None:
            _check_subimages(subimages, scale, lr_patch)
        self.root = Path(root)
        self.scale = scale
        self.lr_patch = lr_patch
        self.seed = seed
        self.on_the_fly = on_the_fly
        self.augment = augment
        self.subimages = subimages
        self.epoch = 0
        self._check_sizes()
        self._subimage_index = None if subimages is None else self._index_subimages(*subimages)
        # what an epoch permutes: the images, or every sub-image of every image
        self._units = len(self.pairs) if self._subimage_index is None else len(self._subimage_index)
        self.length = length if length is not None else self._units
        self._order_cache: tuple[int, np.ndarray] | None = None
        if cache_images is None:
            total = sum(p.hr.stat().st_size + (p.lr.stat().st_size if p.lr else 0) for p in self.pairs)
            cache_images = total <= _CACHE_LIMIT_BYTES
        self.cache_images = cache_images
        self._cache: dict[tuple[int, str], np.ndarray] = {}

    def _check_sizes(self) -> None:
        """Every pair consistent and every (modcropped) image at least one HR patch large."""
        s, p = self.scale, self.lr_patch
        self._hr_sizes: list[tuple[int, int]] = []
        for pair in self.pairs:
            hr_w, hr_h = image_size(pair.hr)
            self._hr_sizes.append((hr_w, hr_h))
            if pair.lr is not None:
                check_pair_sizes(image_size(pair.lr), (hr_w, hr_h), s, pair.lr, pair.hr)
            if hr_w // s < p or hr_h // s < p:
                raise ValueError(
                    f"{pair.hr} is {hr_w}x{hr_h}: too small for an LR patch of {p} at x{s} "
                    f"(needs at least {p * s}x{p * s})"
                )

    def _index_subimages(self, size: int, step: int) -> np.ndarray:
        """(N, 3) int64 rows (image, LR top, LR left): every sub-image of every image, image by image,
        rows then columns (BasicSR's order). Starts are cut on the modcropped HR, then divided by the scale."""
        s = self.scale
        rows = []
        for image, (pair, (hr_w, hr_h)) in enumerate(zip(self.pairs, self._hr_sizes)):
            crop_w, crop_h = hr_w - hr_w % s, hr_h - hr_h % s
            if crop_w < size or crop_h < size:
                raise ValueError(
                    f"{pair.hr} is {hr_w}x{hr_h} (modcropped {crop_w}x{crop_h} at x{s}): smaller than "
                    f"a sub-image of {size}x{size}"
                )
            for top in subimage_starts(crop_h, size, step):
                for left in subimage_starts(crop_w, size, step):
                    rows.append((image, top // s, left // s))
        return np.array(rows, dtype=np.int64)

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples `__getitem__` returns."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = epoch

    def _image(self, index: int, kind: str) -> np.ndarray:
        """Decoded HR ('hr', modcropped) or whole-image LR ('lr') of pair `index`, cached if enabled."""
        key = (index, kind)
        if key in self._cache:
            return self._cache[key]
        pair = self.pairs[index]
        if kind == "hr":
            img = modcrop(read_image(pair.hr), self.scale)
        elif pair.lr is not None:
            img = read_image(pair.lr)
        else:
            try:
                img = degrade(self._image(index, "hr"), self.scale)
            except ValueError as err:
                raise ValueError(f"{pair.hr}: {err}") from None
        if self.cache_images:
            self._cache[key] = img
        return img

    def _order(self, epoch: int) -> np.ndarray:
        """A permutation of the images (or sub-images) for this epoch, so each is used equally often.
        The last epoch's is kept: a permutation of every DF2K sub-image costs milliseconds per sample."""
        if self._order_cache is None or self._order_cache[0] != epoch:
            order = np.random.default_rng([self.seed, epoch, 2**31]).permutation(self._units)
            self._order_cache = (epoch, order)
        return self._order_cache[1]

    def sample_plan(self, index: int, epoch: int | None = None) -> dict:
        """What sample `index` of `epoch` is: image, LR crop corner, dihedral transform (0..7) and the
        sub-image the corner was drawn in (LR top, left, side; None without sub-images)."""
        epoch = self.epoch if epoch is None else epoch
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range ({self.length} samples per epoch)")
        rng = np.random.default_rng([self.seed, epoch, index])
        unit = int(self._order(epoch)[index % self._units])
        if self._subimage_index is None:
            image, region_top, region_left = unit, 0, 0
        else:
            image, region_top, region_left = (int(v) for v in self._subimage_index[unit])
        hr_w, hr_h = self._hr_sizes[image]
        lr_h, lr_w = hr_h // self.scale, hr_w // self.scale
        # the corner is drawn in this LR region: the whole image, or the sub-image
        region_h, region_w = (lr_h, lr_w) if self.subimages is None else (self.subimages[0] // self.scale,) * 2
        subimage = None if self.subimages is None else (region_top, region_left, region_h)
        # uniform over the region's corners, both bounds inclusive, as BasicSR's paired_random_crop
        top = region_top + int(rng.integers(0, region_h - self.lr_patch + 1))
        left = region_left + int(rng.integers(0, region_w - self.lr_patch + 1))
        transform = int(rng.integers(0, 8)) if self.augment else 0
        return {
            "image": image,
            "top": top,
            "left": left,
            "transform": transform,
            "lr_size": (lr_h, lr_w),
            "subimage": subimage,
        }

    def _lr_on_the_fly(self, hr: np.ndarray, top: int, left: int) -> np.ndarray:
        """LR patch made by degrading only the HR crop plus a margin; equals the whole-image LR's crop."""
        s, p, m = self.scale, self.lr_patch, _ON_THE_FLY_MARGIN
        lr_h, lr_w = hr.shape[0] // s, hr.shape[1] // s
        y0, x0 = max(0, top - m), max(0, left - m)
        y1, x1 = min(lr_h, top + p + m), min(lr_w, left + p + m)
        lr_region = degrade(hr[y0 * s : y1 * s, x0 * s : x1 * s], s)  # (y1-y0, x1-x0, 3)
        return lr_region[top - y0 : top - y0 + p, left - x0 : left - x0 + p]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        plan = self.sample_plan(index)
        s, p = self.scale, self.lr_patch
        top, left = plan["top"], plan["left"]
        hr = self._image(plan["image"], "hr")
        hr_patch = hr[top * s : (top + p) * s, left * s : (left + p) * s]
        if self.on_the_fly:
            lr_patch = self._lr_on_the_fly(hr, top, left)
        else:
            lr_patch = self._image(plan["image"], "lr")[top : top + p, left : left + p]
        k = plan["transform"]
        return image_to_tensor(_dihedral(lr_patch, k)), image_to_tensor(_dihedral(hr_patch, k))


def decode_all(dataset: PairedDataset | TrainPatches) -> int:
    """Decode every HR and stored LR file of `dataset` now -> the number of files decoded.

    Run it before the first training step: a corrupt file then stops the run at once with a
    ValueError naming it, not hours later. Consumes no random numbers; a TrainPatches with
    `cache_images` keeps what it decoded, so the work is not repeated.
    """
    count = 0
    for index, pair in enumerate(dataset.pairs):
        for kind, path in (("hr", pair.hr), ("lr", pair.lr)):
            if path is None:
                continue
            if isinstance(dataset, TrainPatches):
                dataset._image(index, kind)
            else:
                read_image(path)
            count += 1
    return count
