"""Window extrapolation: a trained network evaluated at its attention windows scaled by factors F.

RIB's positional bias is a function of normalised window coordinates, so a RIB model runs at any
window; RPB's table holds one window's offsets, so an RPB model refuses every factor that changes a
window (its error is the row's reason). Factor 1 (the trained windows) is always evaluated, added when
not asked: it is the reference of the PSNR/SSIM changes and the time ratios.

Per factor: PSNR/SSIM over the dataset through suite.evaluate.evaluate (the network built by
load_upscaler, exactly as `suite eval --checkpoint CKPT --window-scale F` builds it), and the inference
time of one (1, 3, h, w) forward of the first test image, all factors timed in one interleaved run of
suite.profiling.timing so that the ratios to factor 1 pair rounds that ran side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from suite.analysis.outputs import WINDOWS
from suite.analysis.variants import prepare, psnr_change_fields, time_variants, timing_record
from suite.env import run_record
from suite.evaluate import evaluate
from suite.evaluate.inference import (
    ModelUpscaler,
    WindowSizeError,
    load_upscaler,
    scaled_window_sizes,
)
from suite.metrics import DEFAULT_PROTOCOL
from suite.profiling.timing import OK
from suite.rows import render

COLUMNS = WINDOWS.table.columns
CONSOLE_COLUMNS = ("factor", "window_sizes", "status", "psnr", "ssim", "psnr_change", "ms_median", "time_ratio")
REFUSED = "refused"


def window_factors(factors: Sequence[float]) -> list[float]:
    """The factors to evaluate: sorted, duplicates dropped, 1 added when missing; each checked."""
    for factor in factors:
        scaled_window_sizes([1], factor)  # ValueError naming a non-positive or non-finite factor
    return sorted({float(factor) for factor in factors} | {1.0})


def _sizes_text(window_sizes: Sequence[int]) -> str:
    return " ".join(str(window) for window in window_sizes)


def window_table(
    checkpoint: str | Path,
    data: str | Path,
    scale: int,
    factors: Sequence[float],
    out: str | Path,
    *,
    name: str | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    device: str = "auto",
    threads: int | None = None,
    rounds: int = 3,
    warmup: int = 1,
) -> list[dict]:
    """Evaluate and time `checkpoint` at its windows times each factor -> rows (COLUMNS); writes
    out/windows.csv and out/windows.json and prints a short table.

    A factor whose windows the model refuses (RPB, or a window larger than any test image in a model that pads
    its map up to the window) gives a row with status "refused" and the error as reason; a window larger than
    any test image in a model that shrinks it to the map is evaluated, and recorded, at the longest LR side. A
    factor whose timing fails (out of memory) keeps its PSNR/SSIM, with the timing status (e.g. "oom") as
    status and its reason.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    factors = window_factors(factors)
    device, torch_device, dataset = prepare(data, scale, name, device, threads, rounds, warmup)
    largest = dataset.largest_lr_side()  # windows beyond it are fitted to it: the rows record what ran

    rows: list[dict] = []
    upscalers: dict[str, ModelUpscaler] = {}  # by _label(factor)
    results: dict[str, dict] = {}  # evaluations, by _label(factor)
    trained = provenance = None  # the checkpoint's, the same at every factor
    for factor in factors:
        row = {column: None for column in COLUMNS}
        row.update(factor=factor, status=OK, reason="")
        try:
            loaded = load_upscaler(checkpoint, torch_device, window_scale=factor, largest_input=largest)
        except WindowSizeError as err:
            row.update(status=REFUSED, reason=err.reason)  # the checkpoint is named once, in windows.json
            rows.append(row)
            continue
        if loaded.upscale.scale != scale:
            raise ValueError(f"checkpoint {checkpoint} is a x{loaded.upscale.scale} model, --scale asks x{scale}")
        provenance = loaded.provenance
        trained = provenance["model_config"]["window_sizes"]
        result = evaluate(
            loaded.upscale,
            dataset,
            scale,
            loaded.method,
            device=device,
            protocol=protocol,
            extra_provenance={"checkpoint": str(checkpoint), **provenance},
        )
        row.update(window_sizes=_sizes_text(provenance["window_sizes"]), psnr=result["psnr"], ssim=result["ssim"])
        results[_label(factor)] = result
        upscalers[_label(factor)] = loaded.upscale
        rows.append(row)
    for row in rows:
        if row["window_sizes"] is None and trained is not None:
            row["window_sizes"] = _sizes_text(scaled_window_sizes(trained, row["factor"]))

    time_variants(
        rows, lambda row: _label(row["factor"]), upscalers, _label(1.0), dataset, torch_device, rounds, warmup
    )
    reference = results.get(_label(1.0))
    for row in rows:
        if _label(row["factor"]) in results and reference is not None:
            row.update(psnr_change_fields(results[_label(row["factor"])], reference))

    document = {
        "checkpoint": str(checkpoint),
        "dataset": dataset.name,
        "data_path": str(data),
        "scale": scale,
        "protocol": protocol,
        "trained_window_sizes": trained,
        "timing": timing_record(dataset, rounds, warmup),
        "provenance": run_record(
            device=device,
            checkpoint_sha256=provenance["checkpoint_sha256"] if provenance else None,
            model_config=provenance["model_config"] if provenance else None,
        ),
    }
    written = WINDOWS.table.write(out, rows, **document)
    print(render(rows, CONSOLE_COLUMNS))
    print(*(f"factor {row['factor']:g}: {row['reason']}" for row in rows if row["reason"]), sep="\n")
    print(f"-> {', '.join(map(str, written))}")
    return rows


def _label(factor: float) -> str:
    return f"x{factor!r}"
