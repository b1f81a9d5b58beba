"""What the timed tools share: variants of one trained network (low ranks, scaled windows) timed on one
test image in a single interleaved run against a reference variant (their tables: suite.analysis.outputs).

Rows are dicts with at least `status` and `reason`; timing fills `ms_median`, `ms_iqr` and `time_ratio`
(the geometric mean of the per-round ratios to the reference, rounds paired as they ran) with its interval
`time_ratio_low`/`_high`; `psnr_change` against the reference variant carries its interval over the test images
(`psnr_change_low`/`_high`, a paired bootstrap of the per-image differences).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from suite.data.datasets import PairedDataset, open_paired
from suite.data.tensors import image_to_tensor
from suite.env import resolve_device
from suite.evaluate.inference import ModelUpscaler
from suite.profiling.timing import (
    OK,
    prepare_device,
    ratio_fields,
    summarise,
    time_interleaved,
)
from suite.stats import paired_bootstrap, paired_differences


def prepare(
    data: str | Path, scale: int, name: str | None, device: str, threads: int | None, rounds: int, warmup: int
) -> tuple[str, torch.device, PairedDataset]:
    """Check the timing settings, resolve `auto` to cuda when torch sees a GPU (else cpu), set the CPU
    threads and open the test set -> (device name, torch device, dataset)."""
    if rounds < 1 or warmup < 0:
        raise ValueError(f"rounds must be >= 1 and warmup >= 0, got rounds {rounds}, warmup {warmup}")
    device = resolve_device(device)
    torch_device = prepare_device(device, threads)
    dataset = open_paired(data, scale)
    if name:
        dataset.name = name
    return device, torch_device, dataset


def first_image(dataset: PairedDataset, device: torch.device) -> torch.Tensor:
    """The dataset's first LR image as the (1, 3, h, w) float tensor in [0, 1] the networks take."""
    lr = dataset[0]["lr"]  # uint8 (h, w, 3)
    return image_to_tensor(lr).unsqueeze(0).to(device)


def time_variants(
    rows: list[dict],
    label_of: Callable[[dict], str],
    upscalers: dict[str, ModelUpscaler],
    reference: str,
    dataset: PairedDataset,
    device: torch.device,
    rounds: int,
    warmup: int,
) -> None:
    """Time one forward of the first test image per variant in `upscalers` (label -> upscaler), interleaved,
    and fill the time columns of the row whose `label_of(row)` is that label. A variant that fails to run
    (out of memory) takes the timing status and reason; rows without an upscaler are left alone."""
    if not upscalers:
        return
    x = first_image(dataset, device)
    # ModelUpscaler.forward is the network's forward under torch.inference_mode (untiled here).
    steps = {label: (lambda upscaler=upscaler: upscaler.forward(x)) for label, upscaler in upscalers.items()}
    times, status = time_interleaved(steps, device, warmup, rounds)
    timed_reference = times.get(reference) if status.get(reference, ("",))[0] == OK else None
    for row in rows:
        label = label_of(row)
        if label not in status:
            continue
        if status[label][0] != OK:
            row.update(status=status[label][0], reason=status[label][1])
        if label in times:
            row.update({key: summarise(times[label])[key] for key in ("ms_median", "ms_iqr")})
            if timed_reference is not None and status[label][0] == OK:
                row.update(ratio_fields("time_ratio", times[label], timed_reference))


def psnr_change_fields(result: dict, reference: dict) -> dict[str, float]:
    """`psnr_change` of an evaluation (suite.evaluate.evaluate's dict) against the reference variant's, with the
    95% paired-bootstrap interval of the mean per-image difference (`suite.stats.paired_bootstrap`)."""
    per_image = [{image["name"]: image["psnr"] for image in scored["images"]} for scored in (result, reference)]
    interval = paired_bootstrap(paired_differences(*per_image))
    return {
        "psnr_change": result["psnr"] - reference["psnr"],
        "psnr_change_low": interval.low,
        "psnr_change_high": interval.high,
    }


def timing_record(dataset: PairedDataset, rounds: int, warmup: int) -> dict:
    """How the rows were timed, for the JSON beside them."""
    return {"image": dataset[0]["name"], "rounds": rounds, "warmup": warmup, "threads": torch.get_num_threads()}
