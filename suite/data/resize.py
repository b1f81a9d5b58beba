"""MATLAB-exact bicubic resizing of uint8 images (`imresize(x, s, 'bicubic')`), the suite's only resampler.

The resampler itself is pyiqa's (`pyiqa.matlab_utils.resize`: cubic kernel a = -0.5, kernel widened
by 1/s when downscaling, symmetric borders). Two details of how it is driven here:

- `pyiqa.matlab_utils.imresize` casts every input to float32 before resampling (its dtype check is
  always true), so it is not the float64 computation MATLAB does. Its core, `resize_1d`, computes in
  the dtype it is given; we run it in float64.
- Resizing one axis is linear, so we run `resize_1d` once on an identity matrix to obtain the exact
  per-axis operator (a band of at most a few dozen taps per output sample) and apply that band to
  images. This is the same arithmetic as calling `resize_1d` on each image (equal to ~1e-13) and an
  order of magnitude faster, because pyiqa's unfold materialises every tap of every input row.

Rounding to uint8 is MATLAB's: clip to [0, 255], round half away from zero.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

# Identity columns resampled per call while building an operator; bounds the memory of pyiqa's unfold.
_IDENTITY_CHUNK = 256


def output_length(n_in: int, scale: float) -> int:
    """MATLAB's output length for a scale factor: ceil(n_in * scale)."""
    return max(1, math.ceil(n_in * scale))


def resize_matrix(n_in: int, scale: float) -> np.ndarray:
    """Dense float64 operator M (n_out, n_in) with resize(x) = M @ x along one axis of length n_in. Not cached:
    `resize_band` keeps its band (n_out x K); dense operators of every image size seen would add up to
    hundreds of megabytes on a benchmark of many sizes."""
    # Imported here: pyiqa is slow to import and only needed when a new operator is built.
    from pyiqa.matlab_utils.resize import resize_1d

    n_out = output_length(n_in, scale)
    identity = torch.eye(n_in, dtype=torch.float64)
    blocks = []
    for start in range(0, n_in, _IDENTITY_CHUNK):
        columns = identity[None, None, :, start : start + _IDENTITY_CHUNK]  # (1, 1, n_in, c)
        try:
            resized = resize_1d(
                columns,
                dim=-2,
                size=n_out,
                scale=scale,
                kernel="cubic",
                padding_type="reflect",
                antialiasing=True,
            )  # (1, 1, n_out, c)
        except IndexError as err:
            # pyiqa pads by reflecting once, so an axis shorter than the kernel's reach fails inside it.
            raise ValueError(
                f"image axis of {n_in} px is too small to resize by {scale:g} with MATLAB bicubic"
            ) from err
        blocks.append(resized[0, 0])
    matrix = torch.cat(blocks, dim=1).numpy()  # (n_out, n_in)
    matrix.setflags(write=False)
    return matrix


@lru_cache(maxsize=128)
def resize_band(n_in: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The operator of `resize_matrix` as a band: (index (n_out, K) int64, weight (n_out, K) float64)."""
    matrix = resize_matrix(n_in, scale)
    nonzero = matrix != 0
    first = nonzero.argmax(axis=1)
    last = n_in - 1 - nonzero[:, ::-1].argmax(axis=1)
    taps = int((last - first).max()) + 1
    start = np.minimum(first, n_in - taps)
    index = start[:, None] + np.arange(taps)[None, :]  # (n_out, K)
    weight = np.take_along_axis(matrix, index, axis=1)  # (n_out, K)
    index.setflags(write=False)
    weight.setflags(write=False)
    return index, weight


def _resize_axis0(x: np.ndarray, scale: float) -> np.ndarray:
    """Resize a float64 array (n, ...) along its first axis -> (n_out, ...)."""
    index, weight = resize_band(x.shape[0], scale)
    extra = (slice(None),) + (None,) * (x.ndim - 1)
    out = weight[:, 0][extra] * x[index[:, 0]]
    for tap in range(1, index.shape[1]):
        out += weight[:, tap][extra] * x[index[:, tap]]
    return out


def quantize_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB's conversion of a float result to uint8: clip, round half away from zero."""
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5).astype(np.uint8)


def imresize_float64(img: np.ndarray, scale: float) -> np.ndarray:
    """Resize one (H, W, C) image of any real dtype; float64 result (H', W', C), not rounded."""
    x = np.asarray(img, dtype=np.float64)
    y = _resize_axis0(x, scale)  # (H', W, C)
    y = _resize_axis0(np.ascontiguousarray(y.transpose(1, 0, 2)), scale)  # (W', H', C)
    return y.transpose(1, 0, 2)


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB `imresize(img, scale, 'bicubic')` on uint8 (H, W, C) or (N, H, W, C); uint8 out.

    Output size is ceil(size * scale) per axis, as in MATLAB; for a modcropped HR and scale 1/s that
    is exactly HR / s.
    """
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise ValueError(
            f"imresize expects a uint8 ndarray, got {type(img).__name__} of dtype {getattr(img, 'dtype', None)}"
        )
    if img.ndim not in (3, 4):
        raise ValueError(f"imresize expects (H, W, C) or (N, H, W, C), got shape {img.shape}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"imresize scale must be a positive number, got {scale!r}")
    scale = float(scale)
    if img.ndim == 3:
        return quantize_uint8(imresize_float64(img, scale))
    n, h, w, c = img.shape
    out = np.empty((n, output_length(h, scale), output_length(w, scale), c), dtype=np.uint8)
    for i in range(n):  # one image at a time keeps the float64 working set to one image
        out[i] = quantize_uint8(imresize_float64(img[i], scale))
    return out


def degrade(hr: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic LR of a modcropped HR image or batch: imresize(hr, 1/scale)."""
    return imresize(hr, 1.0 / scale)
