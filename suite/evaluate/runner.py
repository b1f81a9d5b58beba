"""The generic evaluation loop: `upscale(lr uint8 HWC) -> sr uint8 HWC` over a PairedDataset."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from suite.data.datasets import PairedDataset
from suite.data.io import write_png
from suite.data.tensors import image_to_tensor
from suite.env import run_record
from suite.metrics import DEFAULT_PROTOCOL, SRMetrics

Upscaler = Callable[[np.ndarray], np.ndarray]
RESULT_FIELDS = ("dataset", "scale", "method", "n_images", "psnr", "ssim", "images", "metric_options", "provenance")


def evaluate(
    upscale: Upscaler,
    dataset: PairedDataset,
    scale: int,
    method: str,
    save_images: str | Path | None = None,
    *,
    device: str = "cpu",
    extra_provenance: dict | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    on_image: Callable[[dict], None] | None = None,
) -> dict:
    """Score `upscale` on every image of `dataset` -> result dict (keys in RESULT_FIELDS).

    `save_images`: folder for the SR images as `<name>.png`. `device`: where the metrics run (and
    what provenance records). `extra_provenance`: merged into the provenance (e.g. a checkpoint).
    `protocol`: the metric protocol, one of suite.metrics.PROTOCOLS (recorded in metric_options).
    `on_image(row)`: called after each image, e.g. to print progress.
    """
    if dataset.scale != scale:
        raise ValueError(f"dataset {dataset.name} was opened at x{dataset.scale}, evaluation asks x{scale}")
    metrics = SRMetrics(scale, device=device, protocol=protocol)
    out_dir = Path(save_images) if save_images is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)  # an unusable folder fails now, not after scoring
    rows = []
    for index in range(len(dataset)):
        item = dataset[index]
        sr = upscale(item["lr"])
        hr = item["hr"]
        if not isinstance(sr, np.ndarray) or sr.dtype != np.uint8 or sr.shape != hr.shape:
            raise ValueError(
                f"{method} on {dataset.name}/{item['name']}: got SR "
                f"{getattr(sr, 'dtype', type(sr))} {getattr(sr, 'shape', '')} for LR "
                f"{item['lr'].shape}, expected uint8 {hr.shape}"
            )
        # float64 so that the metrics add no rounding of their own
        row = {
            "name": item["name"],
            **metrics(image_to_tensor(sr, torch.float64)[None], image_to_tensor(hr, torch.float64)[None]),
        }
        rows.append(row)
        if out_dir is not None:
            write_png(out_dir / f"{item['name']}.png", sr)
        if on_image is not None:
            on_image(row)
    # BasicSR scores an exact reconstruction as PSNR = inf; JSON cannot hold it, so say so instead of
    # writing a mean that is not a number.
    exact = [row["name"] for row in rows if not math.isfinite(row["psnr"])]
    if exact:
        raise ValueError(
            f"{method} on {dataset.name}: SR equals HR on the scored region of {', '.join(exact)}: "
            f"PSNR is infinite under protocol {protocol!r}, which a result file cannot record"
        )
    run = {
        "data_layout": dataset.layout,
        "lr_source": dataset.lr_source,
        "lr_degradation": "MATLAB bicubic (pyiqa resize_1d, float64, round half away from zero)",
    }
    run.update(extra_provenance or {})
    return {
        "dataset": dataset.name,
        "scale": scale,
        "method": method,
        "n_images": len(rows),
        "psnr": float(np.mean([row["psnr"] for row in rows])),
        "ssim": float(np.mean([row["ssim"] for row in rows])),
        "images": rows,
        "metric_options": metrics.options,
        "provenance": run_record(device=device, **run),
    }
