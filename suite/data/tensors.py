"""Images as the networks and the metrics take them: uint8 (H, W, 3) arrays <-> float tensors in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch


def image_to_tensor(img: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (H, W, 3) -> (3, H, W) of `dtype` in [0, 1] (float64 for metrics, so they add no rounding)."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(
            f"expected a uint8 (H, W, 3) image, got {getattr(img, 'dtype', type(img))} {getattr(img, 'shape', '')}"
        )
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(dtype).div_(255.0)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] (values outside are clamped) -> uint8 (H, W, 3), rounded to nearest."""
    pixels = tensor.clamp(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return pixels.permute(1, 2, 0).cpu().numpy()
