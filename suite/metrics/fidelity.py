"""PSNR and SSIM as SR papers report them, computed by pyiqa's functions with every option named.

Common to both protocols (SPEC section 6): RGB in [0, 1] -> Y of BT.601 YCbCr (`color_space='ycbcr'`;
pyiqa's default for `test_y_channel` is YIQ, which matches no paper), `crop_border = scale` pixels
shaved per side, Gaussian 11x11 (sigma 1.5) 'valid' SSIM. Inputs are taken to float64 so that the
metric adds no rounding of its own.

- `basicsr-y` (default, the paper's protocol): BasicSR's `calculate_psnr` / `calculate_ssim` with
  `test_y_channel=True`. Y stays an unrounded float; PSNR adds nothing to the MSE (pyiqa's `psnr`
  adds eps = 1e-8 unless told otherwise, which moves PSNR by 2e-4 dB at 37 dB).
- `pyiqa-rounded-y`: pyiqa's SSIM module, which rounds Y to integers in [16, 235] as the MATLAB SSIM
  code does (about 0.001 lower SSIM on Set5 x2 bicubic); PSNR as pyiqa's module computes it (eps 1e-8).

pyiqa's SSIM clamps negative contrast-structure values at 0, which BasicSR does not (up to 1.1e-4 on
Set5 bicubic); `basicsr-y` therefore evaluates the same formula with pyiqa's window and filter, unclamped.
"""

from __future__ import annotations

import torch

from suite.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOL_DESCRIPTIONS, PROTOCOLS


class SRMetrics:
    """`metrics(sr, hr) -> {"psnr": dB, "ssim": float}` for float (1, 3, H, W) tensors in [0, 1]."""

    def __init__(self, scale: int, device: str | torch.device = "cpu", protocol: str = DEFAULT_PROTOCOL) -> None:
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown metric protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        import pyiqa  # slow to import; only when metrics are really computed

        self.scale = scale
        self.protocol = protocol
        self.device = torch.device(device)
        self._pyiqa_version = getattr(pyiqa, "__version__", "unknown")
        if protocol == "pyiqa-rounded-y":
            options = {"test_y_channel": True, "color_space": "ycbcr", "crop_border": scale}
            self._psnr_module = pyiqa.create_metric("psnr", device=self.device, **options)
            self._ssim_module = pyiqa.create_metric("ssim", device=self.device, **options)

    @property
    def options(self) -> dict:
        """The protocol's name and every option it fixes (recorded beside every result)."""
        rounded = self.protocol == "pyiqa-rounded-y"
        return {
            "protocol": self.protocol,
            "description": PROTOCOL_DESCRIPTIONS[self.protocol],
            "library": "pyiqa",
            "pyiqa_version": self._pyiqa_version,
            "input": "RGB float64 in [0, 1]; SR and HR quantised to uint8 before scoring",
            "averaging": "mean over images of per-image values",
            "psnr": {
                "test_y_channel": True,
                "color_space": "ycbcr",
                "crop_border": self.scale,
                "data_range": 1.0,
                "eps": 1e-8 if rounded else 0.0,
                "y_rounded": False,
            },
            "ssim": {
                "test_y_channel": True,
                "color_space": "ycbcr",
                "crop_border": self.scale,
                "data_range": 255.0,
                "downsample": False,
                "window": "gaussian 11x11, sigma 1.5, valid",
                "cs_clamped_at_zero": rounded,  # pyiqa's SSIM module clamps; BasicSR does not
                "y_rounded": rounded,
            },
        }

    def _check(self, label: str, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim != 4 or x.shape[:2] != (1, 3):
            raise ValueError(
                f"{label} must be a float tensor of shape (1, 3, H, W), got "
                f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}"
            )
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{label} values must lie in [0, 1], got min {lo:.4f} max {hi:.4f}")
        if min(x.shape[-2:]) <= 2 * self.scale:
            raise ValueError(f"{label} of {x.shape[-1]}x{x.shape[-2]} is too small to shave {self.scale} border pixels")
        return x.to(device=self.device, dtype=torch.float64)

    @torch.no_grad()
    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        sr, hr = self._check("sr", sr), self._check("hr", hr)
        if sr.shape != hr.shape:
            raise ValueError(f"sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ in shape")
        if self.protocol == "pyiqa-rounded-y":
            return {"psnr": float(self._psnr_module(sr, hr)), "ssim": float(self._ssim_module(sr, hr))}
        return self._basicsr_y(sr, hr)

    def _basicsr_y(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        from pyiqa.archs.psnr_arch import psnr
        from pyiqa.utils.color_util import to_y_channel

        b = self.scale
        # out_data_range 1.0: to_y_channel rounds only when asked for a 255 range.
        y_sr = to_y_channel(sr[..., b:-b, b:-b], 1.0, "ycbcr")
        y_hr = to_y_channel(hr[..., b:-b, b:-b], 1.0, "ycbcr")
        # Y is already one channel, so psnr's own test_y_channel conversion is skipped.
        score_psnr = psnr(y_sr, y_hr, test_y_channel=False, data_range=1.0, eps=0.0)
        return {"psnr": float(score_psnr), "ssim": _ssim_unclamped(y_sr * 255.0, y_hr * 255.0)}


SSIM_WINDOW, SSIM_SIGMA = 11, 1.5


def gaussian_taps(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype=torch.float64) -> torch.Tensor:
    """The 1-D Gaussian whose outer product with itself is MATLAB's `fspecial('gaussian', size, sigma)`
    (BasicSR: `cv2.getGaussianKernel(11, 1.5)` times its transpose), normalised to sum 1. (size,)"""
    offsets = torch.arange(size, dtype=dtype) - (size - 1) / 2.0
    taps = torch.exp(-(offsets**2) / (2.0 * sigma * sigma))
    return taps / taps.sum()


def gaussian_filter_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """The 2-D Gaussian window's 'valid' filter of every channel, as two 1-D passes (rows, then columns).
    (N, C, H, W) -> (N, C, H - k + 1, W - k + 1). The window is separable, so this is the same filter as one
    k x k correlation, with k multiply-adds per output pixel and pass instead of k^2. Each pass is a sum of
    k shifted slices: a CPU convolution in float64 unfolds its input k times (gigabytes on a large image),
    and the slices need two image-sized buffers."""
    k, (height, width) = taps.numel(), x.shape[-2:]
    weights = taps.tolist()
    # In-place multiply-adds (`add_` with alpha): no temporary per tap.
    rows = x[..., 0 : height - k + 1, :] * weights[0]  # (N, C, H - k + 1, W)
    for tap in range(1, k):
        rows.add_(x[..., tap : height - k + 1 + tap, :], alpha=weights[tap])
    out = rows[..., 0 : width - k + 1] * weights[0]  # (N, C, H - k + 1, W - k + 1)
    for tap in range(1, k):
        out.add_(rows[..., tap : width - k + 1 + tap], alpha=weights[tap])
    return out


def _ssim_unclamped(x: torch.Tensor, y: torch.Tensor) -> float:
    """BasicSR's `_ssim` on Y in 0..255 ((1, 1, H, W) float64): its formula, 11x11 Gaussian window (sigma 1.5)
    and 'valid' filter, without the clamp of the contrast-structure map at 0 that pyiqa's `ssim` applies
    (F.relu), and with the window applied as two 1-D passes (`gaussian_filter_valid`).

    Why not pyiqa's `ssim` itself: the clamp moves Set5 x4 butterfly (bicubic) from BasicSR's 0.73744
    to 0.73755, beyond the 1e-4 the paper protocol's reference test allows; and its 11x11 convolution
    takes gigabytes of memory on a large image.
    """
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    taps = gaussian_taps(dtype=x.dtype).to(x.device)
    # One map at a time (means, then second and cross moments): a few Y-sized buffers live at once.
    mu_x, mu_y = gaussian_filter_valid(x, taps), gaussian_filter_valid(y, taps)
    var_x = gaussian_filter_valid(x * x, taps) - mu_x**2
    var_y = gaussian_filter_valid(y * y, taps) - mu_y**2
    cov = gaussian_filter_valid(x * y, taps) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
    return float((luminance * contrast_structure).mean())
