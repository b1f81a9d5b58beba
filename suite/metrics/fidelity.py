"""PSNR and SSIM as SR papers report them, computed by pyiqa with its options named explicitly.

Protocol (SPEC section 6): RGB in [0, 1] -> Y of BT.601 YCbCr (`color_space='ycbcr'`; pyiqa's default
for `test_y_channel` is YIQ, which matches no paper), `crop_border = scale` pixels shaved per side.
pyiqa's PSNR keeps Y unrounded (data range 1); its SSIM rounds Y to integers in [16, 235] (data range
255), as the MATLAB SSIM code does, but clamps negative contrast-structure values at 0, which the
MATLAB code does not (a difference of ~1e-5 in SSIM on natural images). Inputs are taken to float64
so that the metric adds no rounding of its own.
"""

from __future__ import annotations

import numpy as np
import torch


def to_unit_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float64 (1, 3, H, W) in [0, 1]."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {getattr(img, 'dtype', type(img))} "
                         f"{getattr(img, 'shape', '')}")
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(torch.float64)[None] / 255.0


class SRMetrics:
    """`metrics(sr, hr) -> {"psnr": dB, "ssim": float}` for float (1, 3, H, W) tensors in [0, 1]."""

    def __init__(self, scale: int, device: str | torch.device = "cpu") -> None:
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        import pyiqa  # slow to import; only when metrics are really computed

        self.scale = scale
        self.device = torch.device(device)
        self._pyiqa_version = getattr(pyiqa, "__version__", "unknown")
        protocol = {"test_y_channel": True, "color_space": "ycbcr", "crop_border": scale}
        self._psnr = pyiqa.create_metric("psnr", device=self.device, **protocol)
        self._ssim = pyiqa.create_metric("ssim", device=self.device, **protocol)

    @property
    def options(self) -> dict:
        """The options pyiqa actually holds for both metrics (recorded beside every result)."""
        psnr_net, ssim_net = self._psnr.net, self._ssim.net
        psnr_kwargs = dict(psnr_net.kwargs)
        return {
            "library": "pyiqa",
            "pyiqa_version": self._pyiqa_version,
            "input": "RGB float64 in [0, 1]; SR and HR quantised to uint8 before scoring",
            "averaging": "mean over images of per-image values",
            "psnr": {
                "test_y_channel": bool(psnr_net.test_y_channel),
                "color_space": psnr_kwargs.get("color_space", "yiq"),
                "crop_border": int(psnr_net.crop_border),
                "data_range": float(psnr_kwargs.get("data_range", 1.0)),
                "eps": float(psnr_kwargs.get("eps", 1e-8)),
                "y_rounded": False,
            },
            "ssim": {
                "test_y_channel": bool(ssim_net.test_y_channel),
                "color_space": ssim_net.color_space,
                "crop_border": int(ssim_net.crop_border),
                "data_range": float(ssim_net.data_range),
                "downsample": bool(ssim_net.downsample),
                "window": "gaussian 11x11, sigma 1.5",
                "cs_clamped_at_zero": True,  # pyiqa's relu on the contrast-structure map
                "y_rounded": ssim_net.data_range >= 255,
            },
        }

    def _check(self, label: str, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim != 4 or x.shape[:2] != (1, 3):
            raise ValueError(f"{label} must be a float tensor of shape (1, 3, H, W), got "
                             f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{label} values must lie in [0, 1], got min {lo:.4f} max {hi:.4f}")
        if min(x.shape[-2:]) <= 2 * self.scale:
            raise ValueError(f"{label} of {x.shape[-1]}x{x.shape[-2]} is too small to shave "
                             f"{self.scale} border pixels")
        return x.to(device=self.device, dtype=torch.float64)

    @torch.no_grad()
    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        sr, hr = self._check("sr", sr), self._check("hr", hr)
        if sr.shape != hr.shape:
            raise ValueError(f"sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ in shape")
        return {"psnr": float(self._psnr(sr, hr)), "ssim": float(self._ssim(sr, hr))}
