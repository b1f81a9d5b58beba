"""The one timing helper of the suite: every timed number (`suite profile run`, sweep points, the
attention benchmark) goes through `time_interleaved`.

Rules, in one place:
- interleaved rounds: each round calls every step once, so load from other processes falls on all of
  them alike; ratios are taken per round;
- device sync before and after each timed call (CUDA work is asynchronous);
- out of memory (CUDA allocator, a refused CPU allocation, a sweep's memory cap) ends that step with
  status `oom`; the others go on;
- fallback: a step whose requested kernel did not run (FlexAttention fell back to SDPA, with its
  warning) is timed but has status `fallback`: its time is another kernel's, so no ratio uses it;
- summaries are the median and the interquartile range (with min and max) of the rounds; a ratio of two
  steps is the geometric mean of their per-round ratios with its bootstrap interval over rounds.
"""

from __future__ import annotations

import gc
import time
import warnings
from typing import Callable

import numpy as np
import torch

from suite.stats import paired_ratio

OK, OOM, FALLBACK, UNSUPPORTED = "ok", "oom", "fallback", "unsupported"
# The warning suite.models emits when FlexAttention cannot run and RPB uses SDPA instead.
FALLBACK_WARNING = "FlexAttention failed"
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}  # cpu: this thread's CPU time (1 thread only)


def prepare_device(name: str, threads: int | None) -> torch.device:
    """The device to time on, refused with a clear error where torch cannot see it; sets CPU threads."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch {torch.__version__} sees no CUDA device")
    if threads is not None:
        torch.set_num_threads(threads)
    return device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release(device: torch.device) -> None:
    """Return freed memory to the allocator (and CUDA's cache), so one step's OOM does not starve the next."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA allocator OOM, or a CPU allocation refused (a memory cap, an exhausted machine)."""
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0][:500] if lines else ""


def reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {first_line(str(err))}"


def first_run(step: Callable[[], None]) -> tuple[str, str]:
    """Run a step once (compilation, allocator warm-up): (status, reason). Status `oom` or `unsupported`
    (NotImplementedError) means it cannot be timed; `fallback` means it runs, but not on its kernel.
    Any other error is a bug and propagates."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            step()
        except Exception as err:  # noqa: BLE001 - the expected failures are recorded, the rest re-raised
            if is_out_of_memory(err):
                return OOM, reason(err)
            if isinstance(err, NotImplementedError):
                return UNSUPPORTED, reason(err)
            raise
    fallbacks = [first_line(str(w.message)) for w in caught if FALLBACK_WARNING in str(w.message)]
    return (FALLBACK, fallbacks[0]) if fallbacks else (OK, "")


def time_interleaved(
    steps: dict[str, Callable[[], None]], device: torch.device, warmup: int, rounds: int, clock: str = "wall"
) -> tuple[dict[str, list[float]], dict[str, tuple[str, str]]]:
    """Time `steps` in `warmup` untimed then `rounds` timed interleaved rounds.

    Returns (milliseconds per timed round for each step that can be timed, (status, reason) for every
    step). A step that runs out of memory mid-way drops out with status `oom` and no times."""
    timer = CLOCKS[clock]
    status: dict[str, tuple[str, str]] = {}
    live: dict[str, Callable[[], None]] = {}
    for label, step in steps.items():
        status[label] = first_run(step)
        synchronize(device)
        if status[label][0] in (OK, FALLBACK):
            live[label] = step
        else:
            release(device)
    times: dict[str, list[float]] = {label: [] for label in live}
    for round_index in range(warmup + rounds):
        for label in list(live):
            try:
                synchronize(device)
                start = timer()
                live[label]()
                synchronize(device)
                elapsed = (timer() - start) * 1000.0
            except Exception as err:  # noqa: BLE001
                if not is_out_of_memory(err):
                    raise
                status[label] = (OOM, reason(err))
                del live[label], times[label]
                release(device)
                continue
            if round_index >= warmup:
                times[label].append(elapsed)
    return times, status


def summarise(times_ms: list[float], digits: int = 4) -> dict[str, float | int]:
    """Median, interquartile range, min and max of the timed rounds (milliseconds)."""
    p25, median, p75 = np.percentile(times_ms, [25, 50, 75])
    return {
        "ms_median": round(float(median), digits),
        "ms_iqr": round(float(p75 - p25), digits),
        "ms_min": round(min(times_ms), digits),
        "ms_max": round(max(times_ms), digits),
        "rounds": len(times_ms),
    }


def ratio_fields(name: str, numerator: list[float], denominator: list[float], digits: int = 4) -> dict[str, float]:
    """`name`, `name_low`, `name_high`: the geometric mean of the per-round ratios numerator / denominator
    (rounds paired as they ran) and its 95% bootstrap interval over rounds (`suite.stats.paired_ratio`)."""
    interval = paired_ratio(numerator, denominator)
    return {
        name: round(interval.mean, digits),
        f"{name}_low": round(interval.low, digits),
        f"{name}_high": round(interval.high, digits),
    }
