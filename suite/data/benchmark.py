"""Timing of the degradation pipeline: MATLAB-bicubic down- and re-upscaling of many large images."""

from __future__ import annotations

import os
import time

import numpy as np

from suite.data.resize import imresize


def bench_resize(
    n_images: int = 100, height: int = 768, width: int = 1024, scales: tuple[int, ...] = (2, 4), seed: int = 0
) -> dict:
    """Degrade (1/s) and re-upscale (s) `n_images` RGB images at every scale -> timings in seconds.

    Images are seeded noise (the cost of resampling does not depend on content), made before the clock
    starts. The first call of a size builds and caches its resampling operator; that is timed too.
    """
    for scale in scales:
        if height % scale or width % scale:
            raise ValueError(f"{width}x{height} is not divisible by scale {scale}")
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_images, height, width, 3), dtype=np.uint8)
    per_scale = {}
    start = time.perf_counter()
    for scale in scales:
        t0 = time.perf_counter()
        for img in images:
            lr = imresize(img, 1.0 / scale)
            sr = imresize(lr, float(scale))
            if sr.shape != img.shape:
                raise RuntimeError(f"round trip at x{scale} gave {sr.shape}, expected {img.shape}")
        per_scale[f"x{scale}"] = time.perf_counter() - t0
    total = time.perf_counter() - start
    return {
        "n_images": n_images,
        "height": height,
        "width": width,
        "scales": list(scales),
        "seconds_total": total,
        "seconds_per_scale": per_scale,
        "images_per_second": n_images * len(scales) / total,
        "cpu_count": os.cpu_count(),
    }
