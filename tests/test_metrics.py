"""SR metrics: both protocols, cross-checked by a plain numpy implementation of each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from suite.data.datasets import open_paired
from suite.data.resize import imresize
from suite.data.tensors import image_to_tensor
from suite.metrics import DEFAULT_PROTOCOL, PROTOCOLS, SRMetrics


def metric_input(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float64 (1, 3, H, W) in [0, 1], as suite.evaluate feeds the metrics."""
    return image_to_tensor(img, torch.float64)[None]


# --- plain reference implementation (only here, to cross-check pyiqa) ---------------------------


def plain_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16, 235] of uint8 RGB: Y = 16 + 65.481 R + 128.553 G + 24.966 B, RGB in [0, 1]."""
    rgb = img.astype(np.float64) / 255.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def plain_psnr(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    a, b = plain_y(sr) / 255.0, plain_y(hr) / 255.0
    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return float(10.0 * np.log10(1.0 / np.mean((a - b) ** 2)))


def _gaussian_filter_valid(x: np.ndarray) -> np.ndarray:
    """11x11 Gaussian (sigma 1.5) filtering, 'valid' region, as separable 1-D passes."""
    t = np.arange(11) - 5.0
    g = np.exp(-(t**2) / (2 * 1.5**2))
    g /= g.sum()
    rows = np.lib.stride_tricks.sliding_window_view(x, 11, axis=0) @ g
    return np.lib.stride_tricks.sliding_window_view(rows, 11, axis=1) @ g


def plain_ssim(sr: np.ndarray, hr: np.ndarray, border: int, clip_cs: bool = False, round_y: bool = True) -> float:
    """Wang et al. SSIM on Y in [0, 255], Gaussian window, K1 = 0.01, K2 = 0.03.

    clip_cs: clamp the contrast-structure term at 0 as pyiqa does (MATLAB and BasicSR do not).
    round_y: round Y to integers first (MATLAB, pyiqa's SSIM module); BasicSR keeps it a float.
    """
    rounding = np.round if round_y else (lambda y: y)
    a = rounding(plain_y(sr))[border:-border, border:-border]
    b = rounding(plain_y(hr))[border:-border, border:-border]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _gaussian_filter_valid(a), _gaussian_filter_valid(b)
    var_a = _gaussian_filter_valid(a * a) - mu_a**2
    var_b = _gaussian_filter_valid(b * b) - mu_b**2
    cov = _gaussian_filter_valid(a * b) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    if clip_cs:
        cs = np.maximum(cs, 0.0)
    return float((((2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)) * cs).mean())


# --- tests --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bicubic_pairs(mini_root):
    ds = open_paired(mini_root / "test", 3)
    return [(imresize(item["lr"], 3.0), item["hr"]) for item in (ds[i] for i in range(len(ds)))]


def test_protocols_agree_with_plain_implementation(bicubic_pairs):
    assert PROTOCOLS[0] == DEFAULT_PROTOCOL == "basicsr-y"
    basicsr = SRMetrics(3)
    for sr, hr in bicubic_pairs:
        scores = basicsr(metric_input(sr), metric_input(hr))
        # No eps in the MSE; what remains is pyiqa's BT.601 coefficients held in float32 (~2e-7 dB).
        assert abs(scores["psnr"] - plain_psnr(sr, hr, 3)) < 1e-6
        # Float Y, no clamp; pyiqa's window and coefficients are float32 (~1e-7 apart).
        assert abs(scores["ssim"] - plain_ssim(sr, hr, 3, round_y=False)) < 1e-6
        assert abs(scores["ssim"] - plain_ssim(sr, hr, 3)) > 1e-5  # rounding Y is really not applied
    metrics = SRMetrics(3, protocol="pyiqa-rounded-y")
    for sr, hr in bicubic_pairs:
        scores = metrics(metric_input(sr), metric_input(hr))
        # pyiqa adds eps = 1e-8 to the MSE: at ~20-35 dB that moves PSNR by < 5e-5 dB.
        assert abs(scores["psnr"] - plain_psnr(sr, hr, 3)) < 1e-4
        assert abs(scores["ssim"] - plain_ssim(sr, hr, 3, clip_cs=True)) < 1e-6
        # pyiqa clamps negative contrast-structure values at 0; on these images that moves SSIM by
        # at most ~1.2e-5 from the unclamped MATLAB formula, far below the 4 decimals papers print.
        assert abs(scores["ssim"] - plain_ssim(sr, hr, 3)) < 5e-5


def test_options_record_the_protocol():
    for protocol in PROTOCOLS:
        options = SRMetrics(4, protocol=protocol).options
        assert options["protocol"] == protocol
        for name in ("psnr", "ssim"):
            assert options[name]["color_space"] == "ycbcr"
            assert options[name]["test_y_channel"] is True
            assert options[name]["crop_border"] == 4
    default, rounded = SRMetrics(4).options, SRMetrics(4, protocol="pyiqa-rounded-y").options
    assert default["protocol"] == "basicsr-y"
    assert default["ssim"]["y_rounded"] is False and default["psnr"]["eps"] == 0.0
    assert rounded["ssim"]["y_rounded"] is True and rounded["psnr"]["eps"] == 1e-8
    with pytest.raises(ValueError, match="unknown metric protocol 'matlab'; choose one of basicsr-y, pyiqa-rounded-y"):
        SRMetrics(4, protocol="matlab")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_border_pixels_are_shaved(bicubic_pairs, protocol):
    sr, hr = bicubic_pairs[0]
    damaged = sr.copy()
    damaged[:2, :] = 255 - damaged[:2, :]  # only inside a 2-px border
    at2, at1 = SRMetrics(2, protocol=protocol), SRMetrics(1, protocol=protocol)
    assert at2(metric_input(damaged), metric_input(hr)) == at2(metric_input(sr), metric_input(hr))
    damaged_scores = at1(metric_input(damaged), metric_input(hr))
    clean_scores = at1(metric_input(sr), metric_input(hr))
    assert damaged_scores["psnr"] < clean_scores["psnr"] and damaged_scores["ssim"] < clean_scores["ssim"]


def test_ycbcr_is_not_pyiqa_default_yiq(bicubic_pairs):
    import pyiqa

    sr, hr = bicubic_pairs[1]
    default_y = pyiqa.create_metric("psnr", test_y_channel=True, crop_border=3, device="cpu")
    ours = SRMetrics(3, protocol="pyiqa-rounded-y")(metric_input(sr), metric_input(hr))["psnr"]
    assert abs(float(default_y(metric_input(sr), metric_input(hr))) - ours) > 1e-3


def test_identical_images_and_bad_input(bicubic_pairs):
    _, hr = bicubic_pairs[0]
    metrics = SRMetrics(2)
    same = metrics(metric_input(hr), metric_input(hr))
    # BasicSR's PSNR of identical images is infinite (no eps); pyiqa's module caps it at 80 dB.
    assert same["ssim"] == pytest.approx(1.0) and same["psnr"] == float("inf")
    assert SRMetrics(2, protocol="pyiqa-rounded-y")(metric_input(hr), metric_input(hr))["psnr"] == pytest.approx(80.0)
    x = metric_input(hr)
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        metrics(x[0], x[0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics(x * 255, x)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics(x[..., 1:], x[..., 1:, :])
    with pytest.raises(ValueError, match="uint8"):
        image_to_tensor(hr.astype(np.float32))
    with pytest.raises(ValueError, match="positive integer"):
        SRMetrics(0)
    assert torch.is_tensor(x) and x.dtype == torch.float64


def test_protocol_names_import_without_torch():
    """The CLI builds --protocol's choices from suite.metrics without loading torch."""
    import subprocess
    import sys

    code = (
        "import sys; from suite.metrics import PROTOCOLS, DEFAULT_PROTOCOL; "
        "assert 'torch' not in sys.modules; print(','.join(PROTOCOLS), DEFAULT_PROTOCOL)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["basicsr-y,pyiqa-rounded-y", "basicsr-y"]


def test_separable_ssim_window_is_the_2d_gaussian_filter() -> None:
    """The two 1-D passes are the 11x11 'valid' Gaussian filter (BasicSR's cv2 kernel: outer product of
    cv2.getGaussianKernel(11, 1.5)), to float64 rounding."""
    import cv2

    from suite.metrics.fidelity import gaussian_filter_valid, gaussian_taps

    kernel = cv2.getGaussianKernel(11, 1.5)
    assert torch.allclose(gaussian_taps(), torch.from_numpy(kernel[:, 0]), rtol=0, atol=1e-16)
    x = torch.rand(1, 3, 40, 29, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 255
    window = torch.from_numpy(kernel @ kernel.T).view(1, 1, 11, 11).expand(3, 1, 11, 11)
    full = torch.nn.functional.conv2d(x, window, groups=3)
    separable = gaussian_filter_valid(x, gaussian_taps())
    assert separable.shape == full.shape == (1, 3, 30, 19)
    assert torch.allclose(separable, full, rtol=0, atol=1e-10)
