"""Image files: read any image as uint8 RGB, write PNGs atomically, list the images of a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from suite.files import atomic_write, not_found_message

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def is_image_file(path: Path) -> bool:
    """An image by its name: a known suffix and not a hidden file (e.g. macOS `._x.png`)."""
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name; other files are ignored.

    Raises FileNotFoundError naming the folder (and what is there instead) when it is missing, not a folder or
    holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(not_found_message("image folder", folder, "a folder"))
    images = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not images:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    return images


def _from_16bit(wide: np.ndarray, path: Path) -> np.ndarray:
    """16-bit samples to 8 bit the way MATLAB's im2uint8 does: round(v / 257), for grey and colour alike."""
    if wide.max(initial=0) > 65535 or wide.min(initial=0) < 0:
        raise ValueError(f"cannot read image {path}: 16-bit values outside 0..65535")
    return np.floor(wide.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)


def _is_16bit_colour(img: Image.Image) -> bool:
    """Pillow opens 16-bit RGB(A) and grey+alpha files as 8-bit modes by dropping the low byte
    (truncation, v >> 8); its decoder tile still names the 16-bit raw mode."""
    return img.mode in ("RGB", "RGBA", "LA") and any(";16" in str(tile.args) for tile in img.tile)


def _read_16bit_colour(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) of a 16-bit colour file, decoded at full depth by OpenCV and rounded."""
    import cv2  # installed with pyiqa; only this rare case needs it

    wide = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if wide is None or wide.dtype != np.uint16 or wide.ndim != 3 or wide.shape[2] not in (2, 3, 4):
        raise ValueError(f"cannot read image {path}: a 16-bit colour file OpenCV cannot decode")
    if wide.shape[2] == 2:  # grey + alpha
        wide = np.repeat(wide[:, :, :1], 3, axis=2)
    else:
        wide = wide[:, :, 2::-1]  # BGR(A) -> RGB, alpha dropped
    return _from_16bit(wide, path)


def _to_rgb(img: Image.Image, path: Path) -> np.ndarray:
    """uint8 (H, W, 3) from any PIL mode we can convert without guessing."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = _from_16bit(np.asarray(img, dtype=np.int64), path)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode in ("F", "1"):
        if img.mode == "1":
            return np.asarray(img.convert("L").convert("RGB"), dtype=np.uint8).copy()
        raise ValueError(f"cannot read image {path}: floating-point mode 'F' is not an 8-bit image")
    # L, LA, P, PA, RGBA, CMYK, YCbCr...: PIL converts; alpha is dropped (SR data are opaque).
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


# Decoding errors of damaged files; Pillow's decompression-bomb error is not an OSError.
IMAGE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) RGB; grey and RGBA are converted, 16-bit rounded.

    Raises FileNotFoundError (missing) or ValueError (unreadable, truncated, too large) naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(not_found_message("image file", path, "a file"))
    try:
        with Image.open(path) as img:
            is_16bit_colour = _is_16bit_colour(img)
            img.load()  # decode now, so a truncated file fails here and names itself
            return _read_16bit_colour(path) if is_16bit_colour else _to_rgb(img, path)
    except IMAGE_ERRORS as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


def write_png(path: str | Path, arr: np.ndarray) -> Path:
    """Write uint8 (H, W, 3) or (H, W) as PNG atomically; the bytes depend only on the pixels."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise ValueError(f"write_png {path}: expected uint8 (H, W) or (H, W, 3), got {arr.dtype} {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    image = Image.fromarray(np.ascontiguousarray(arr))
    # Fixed encoder settings and no metadata chunks: the same pixels give the same bytes.
    return atomic_write(path, lambda handle: image.save(handle, format="PNG", compress_level=6))
