"""Measure one setting: warm-up, timed steps (CUDA-synchronised), peak memory, then a short
`torch.profiler` run on a schedule whose trace `tensorboard_trace_handler` writes to
`<traces>/<name>/`, read back for the attention kernel family and the top operators.

Timing runs without the profiler attached, so its overhead is not in `ms_median`; memory is measured
over the warm-up and timed steps (see `suite.profiling.memory`).
"""

from __future__ import annotations

import gc
import math
import os
import platform
import shlex
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

from suite.env import device_name
from suite.models import PRESETS, build_model, count_parameters, resolve_backend
from suite.profiling import kernels
from suite.profiling.flops import step_flops
from suite.profiling.memory import PeakMemory

PHASES = ("train", "infer")
DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_TAGS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
TOP_OPS = 8
FLEX_FALLBACK_WARNING = "FlexAttention failed to compile"


@dataclass
class PointSpec:
    """One profiled setting; `suite profile` flags map one to one onto these fields."""

    preset: str
    bias: str
    phase: str
    window: int
    patch: int
    batch: int
    backend: str = "auto"
    dtype: str = "float32"
    device: str = "cpu"
    scale: int = 2
    warmup: int = 3
    steps: int = 10
    profile_warmup: int = 1
    profile_active: int = 2
    threads: int | None = None
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; expected one of {', '.join(PRESETS)}")
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r}; expected one of {', '.join(PHASES)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        for key in ("window", "patch", "batch", "scale", "steps", "profile_active"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        for key in ("warmup", "profile_warmup", "seed"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be a positive integer, got {self.threads!r}")
        if "window_sizes" in self.overrides:
            raise ValueError("window_sizes cannot be overridden: --window sets the window of every layer")
        if "backend" in self.overrides:
            raise ValueError("backend cannot be overridden: use --backend")
        torch.device(self.device)  # raises on a malformed device string
        resolve_backend(self.bias, self.backend, torch.device(self.device))  # unknown bias/backend, invalid pair

    @property
    def resolved_backend(self) -> str:
        """The backend `auto` becomes for this bias, device, compute dtype and phase (as the model resolves it)."""
        dtype = DTYPES[self.dtype] or torch.float32
        return resolve_backend(self.bias, self.backend, torch.device(self.device), dtype, self.phase == "train")

    @property
    def variant(self) -> str:
        """`rib`, `none` or `rpb-<backend>`: the label of the speedup tables."""
        return self.bias if self.backend == "auto" else f"{self.bias}-{self.backend}"

    @property
    def name(self) -> str:
        """Run name: the trace directory and the row key, e.g. `rib-train-w32-p64-b2-sdpa-fp32-tiny`."""
        return (
            f"{self.bias}-{self.phase}-w{self.window}-p{self.patch}-b{self.batch}-"
            f"{self.resolved_backend}-{DTYPE_TAGS[self.dtype]}-{self.preset}"
        )

    def command(self, out_dir: str = "DIR") -> str:
        """The `suite profile` command that measures this setting alone."""
        args = [
            "suite", "profile", "--preset", self.preset, "--bias", self.bias, "--phase", self.phase,
            "--window", str(self.window), "--patch", str(self.patch), "--batch", str(self.batch),
            "--backend", self.backend, "--dtype", self.dtype, "--device", self.device, "--scale", str(self.scale),
            "--warmup", str(self.warmup), "--steps", str(self.steps), "--profile-warmup", str(self.profile_warmup),
            "--profile-active", str(self.profile_active), "--seed", str(self.seed),
        ]
        if self.threads is not None:
            args += ["--threads", str(self.threads)]
        for key, value in self.overrides.items():
            args += ["--override", f"{key}={value}"]
        return shlex.join(args + ["--out", out_dir])

    def model_overrides(self) -> dict[str, Any]:
        ranks = self.overrides.get("ranks", PRESETS[self.preset]["ranks"])
        return {**self.overrides, "window_sizes": (self.window,) * len(ranks), "backend": self.backend}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA allocator OOM, or a CPU allocation refused (a memory cap, an exhausted machine)."""
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)):  # the CUDA class is torch.OutOfMemoryError
        return True
    return isinstance(err, RuntimeError) and "can't allocate memory" in str(err)


def host_load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def spec_columns(spec: PointSpec, command: str) -> dict[str, Any]:
    """The identity columns of a row, known without touching the device."""
    return {
        "name": spec.name, "status": "", "error": "", "preset": spec.preset, "variant": spec.variant,
        "bias": spec.bias, "backend": spec.backend, "backend_resolved": spec.resolved_backend,
        "phase": spec.phase, "window": spec.window, "patch": spec.patch, "batch": spec.batch,
        "scale": spec.scale, "dtype": spec.dtype, "device": spec.device, "threads": spec.threads,
        "warmup": spec.warmup, "steps": spec.steps, "seed": spec.seed,
        "overrides": ";".join(f"{k}={v}" for k, v in spec.overrides.items()),
        "torch_version": torch.__version__, "cuda_version": torch.version.cuda or "",
        "python_version": platform.python_version(), "command": command, "point_command": spec.command(),
    }


def describe(spec: PointSpec, command: str) -> dict[str, Any]:
    """Identity columns plus what the running process knows: device name, threads, load, time."""
    row = spec_columns(spec, command)
    row.update(
        device_name=device_name(torch.device(spec.device)), threads=torch.get_num_threads(),
        host_load_1min=host_load(), timestamp=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    return row


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_step(spec: PointSpec, device: torch.device) -> tuple[Callable[[], None], nn.Module]:
    """The iteration to time (a training step or an inference forward) and the model it runs."""
    torch.manual_seed(spec.seed)
    model = build_model(spec.preset, spec.bias, spec.scale, **spec.model_overrides()).to(device)
    lr = torch.rand(spec.batch, 3, spec.patch, spec.patch, device=device)  # (B, 3, p, p)
    autocast_dtype = DTYPES[spec.dtype]

    def autocast():
        return torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)

    if spec.phase == "infer":
        model.eval()

        def infer_step() -> None:
            with torch.inference_mode(), autocast():
                model(lr)

        return infer_step, model

    model.train()
    hr = torch.rand(spec.batch, 3, spec.patch * spec.scale, spec.patch * spec.scale, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step() -> None:
        with autocast():
            sr = model(lr)
        loss = F.l1_loss(sr.float(), hr)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return train_step, model


def top_operators(prof: profile, device: torch.device, active_steps: int) -> list[dict[str, Any]]:
    """Operators (and, on GPU, kernels) with the largest self time, per iteration."""
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    averages = [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]
    averages.sort(key=lambda e: getattr(e, attr), reverse=True)
    return [
        {
            "name": e.key,
            "self_ms_per_iter": round(getattr(e, attr) / 1000.0 / active_steps, 4),
            "calls_per_iter": round(e.count / active_steps, 2),
        }
        for e in averages[:TOP_OPS]
        if getattr(e, attr) > 0
    ]


def clear_traces(run_dir: Path) -> None:
    """One run directory holds the trace of one measurement: drop traces of an earlier one."""
    if run_dir.is_dir():
        for path in kernels.trace_files(run_dir):
            path.unlink()


def run_profiler(step: Callable[[], None], spec: PointSpec, device: torch.device, run_dir: Path) -> dict[str, Any]:
    clear_traces(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(
        activities=activities,
        schedule=schedule(wait=0, warmup=spec.profile_warmup, active=spec.profile_active, repeat=1),
        on_trace_ready=tensorboard_trace_handler(str(run_dir), use_gzip=True),
    ) as prof:
        for _ in range(spec.profile_warmup + spec.profile_active):
            step()
            synchronize(device)
            prof.step()
    found = kernels.attribute_run(run_dir)
    return {
        "attention_kernels": found["families"],
        "attention_ops": found["names"],
        "top_ops": top_operators(prof, device, spec.profile_active),
        "trace_files": [p.name for p in kernels.trace_files(run_dir)],
    }


def time_steps(step: Callable[[], None], spec: PointSpec, device: torch.device, memory: PeakMemory) -> dict[str, Any]:
    memory.start()
    for _ in range(spec.warmup):
        step()
    synchronize(device)
    times_ms = []
    for _ in range(spec.steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times_ms.append((time.perf_counter() - start) * 1000.0)
    peak = memory.peak_mib()
    p25, median, p75 = np.percentile(times_ms, [25, 50, 75])
    return {
        "ms_median": round(float(median), 3), "ms_iqr": round(float(p75 - p25), 3),
        "ms_min": round(min(times_ms), 3), "ms_max": round(max(times_ms), 3),
        "images_per_s": round(spec.batch * 1000.0 / float(median), 3),
        "peak_mem_mb": round(peak, 1), "mem_baseline_mb": round(memory.baseline_mib(), 1),
        "memory_method": memory.method,
    }


def measure(spec: PointSpec, trace_root: Path, process: str = "shared", command: str | None = None) -> dict[str, Any]:
    """Profile one setting; returns its row. An out-of-memory error gives a row with status `oom`;
    a FlexAttention compile failure (RPB fell back to SDPA) gives status `fallback`; other errors raise.
    `process` says how fresh this process is for memory: "worker", "single" or "shared" (see memory.py).
    """
    spec.validate()
    device = torch.device(spec.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {spec.device!r} requested but torch {torch.__version__} sees no CUDA device")
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    row = describe(spec, command if command is not None else shlex.join(sys.argv))
    run_dir = trace_root / spec.name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            row.update(_measure(spec, device, run_dir, process))
            row["status"] = "ok"
        except Exception as err:  # noqa: BLE001 - only out-of-memory is handled here
            if not is_out_of_memory(err):
                raise
            row["status"] = "oom"
            row["error"] = f"{type(err).__name__}: {first_line(str(err))}"
        finally:
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    fallbacks = [str(w.message) for w in caught if FLEX_FALLBACK_WARNING in str(w.message)]
    if fallbacks and row["status"] == "ok":
        row["status"] = "fallback"
        row["error"] = first_line(fallbacks[0])
    if row["status"] == "ok" or row["status"] == "fallback":
        row["trace_dir"] = str(run_dir)
    return row


def _measure(spec: PointSpec, device: torch.device, run_dir: Path, process: str) -> dict[str, Any]:
    step, model = build_step(spec, device)
    result: dict[str, Any] = {"params": count_parameters(model)}
    gflop = step_flops(model.config, spec.phase, spec.batch, spec.patch) / 1e9
    del model  # the step closure keeps what it needs
    result.update(time_steps(step, spec, device, PeakMemory(device, process)))
    result.update(run_profiler(step, spec, device, run_dir))
    result["gflop_per_iter"] = round(gflop, 4)
    result["tflops"] = round(gflop / result["ms_median"], 4) if result["ms_median"] > 0 else math.nan
    return result


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0][:500] if lines else ""
