"""Measure one setting: timed steps on `suite.profiling.timing` (warm-up, device sync, median/IQR),
peak memory, then a short `torch.profiler` run whose trace `tensorboard_trace_handler` writes to
`<traces>/<name>/`, read back for the attention kernel family and the top operators.

Timing runs without the profiler attached, so its overhead is not in `ms_median`; memory is measured
over the warm-up and timed steps (see `suite.profiling.memory`).
"""

from __future__ import annotations

import math
import os
import platform
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

from suite.env import device_name, run_record
from suite.files import take_committed_name
from suite.models import build_model, count_parameters, resolve_backend
from suite.models.presets import resolve_model_config
from suite.overrides import format_override
from suite.profiling import kernels, timing
from suite.profiling.flops import step_flops
from suite.profiling.memory import PeakMemory
from suite.profiling.precision import check_precision, compute_dtype, precision_scope

PHASES = ("train", "infer")
TOP_OPS = 8


@dataclass
class PointSpec:
    """One profiled setting; `suite profile run` flags map one to one onto these fields."""

    preset: str
    bias: str
    phase: str
    window: int
    patch: int
    batch: int
    backend: str = "auto"
    precision: str = "fp32"
    compile: bool = False
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
        """Raise ValueError naming the field; the model fields go through `resolve_model_config`."""
        if self.phase not in PHASES:
            raise ValueError(f"phase {self.phase!r} is not one of {', '.join(PHASES)}")
        check_precision(self.precision)
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be true or false, got {self.compile!r}")
        for key in ("window", "patch", "batch", "scale", "steps", "profile_active"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        for key in ("warmup", "profile_warmup", "seed"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be a positive integer, got {self.threads!r}")
        if "window_sizes" in self.overrides:
            raise ValueError("window_sizes cannot be overridden: the point's window sets the window of every layer")
        if "backend" in self.overrides:
            raise ValueError("backend cannot be overridden: it is the point's own field")
        try:
            device = torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"device {self.device!r} is not a torch device ({timing.first_line(str(err))})") from None
        self.model_config()  # preset, bias, backend and overrides, validated in one place
        resolve_backend(self.bias, self.backend, device)

    def model_config(self) -> dict[str, Any]:
        base = resolve_model_config(self.preset, self.bias, self.scale, self.overrides)
        overrides = {**self.overrides, "window_sizes": [self.window] * len(base["ranks"]), "backend": self.backend}
        return resolve_model_config(self.preset, self.bias, self.scale, overrides)

    @property
    def resolved_backend(self) -> str:
        """The backend `auto` becomes for this bias, device, precision and phase (as the model resolves it)."""
        return resolve_backend(
            self.bias, self.backend, torch.device(self.device), compute_dtype(self.precision), self.phase == "train"
        )

    @property
    def variant(self) -> str:
        """`rib`, `none` or `rpb-<backend>`: the label of a row (tables group by `bias`, not by this)."""
        return self.bias if self.backend == "auto" else f"{self.bias}-{self.backend}"

    @property
    def name(self) -> str:
        """Run name: the trace directory and the row key, e.g. `rib-train-w32-p64-b2-sdpa-fp32-tiny`."""
        compiled = "-compiled" if self.compile else ""
        return (
            f"{self.bias}-{self.phase}-w{self.window}-p{self.patch}-b{self.batch}-"
            f"{self.resolved_backend}-{self.precision}{compiled}-{self.preset}"
        )

    def command(self, out_dir: str = "DIR") -> str:
        """The `suite profile run` command that measures this setting alone."""
        args = [
            "suite",
            "profile",
            "run",
            "--preset",
            self.preset,
            "--bias",
            self.bias,
            "--phase",
            self.phase,
            "--window",
            str(self.window),
            "--patch",
            str(self.patch),
            "--batch",
            str(self.batch),
            "--backend",
            self.backend,
            "--precision",
            self.precision,
            "--device",
            self.device,
            "--scale",
            str(self.scale),
            "--warmup",
            str(self.warmup),
            "--steps",
            str(self.steps),
            "--profile-warmup",
            str(self.profile_warmup),
            "--profile-active",
            str(self.profile_active),
            "--seed",
            str(self.seed),
        ]
        if self.compile:
            args.append("--compile")
        if self.threads is not None:
            args += ["--threads", str(self.threads)]
        if self.overrides:
            args += ["--override", *(format_override(key, value) for key, value in self.overrides.items())]
        return shlex.join(args + ["--out", out_dir])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def host_load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def spec_columns(spec: PointSpec, command: str) -> dict[str, Any]:
    """The identity columns of a row, known without touching the device."""
    return {
        "name": spec.name,
        "status": "",
        "error": "",
        "preset": spec.preset,
        "variant": spec.variant,
        "bias": spec.bias,
        "backend": spec.backend,
        "backend_resolved": spec.resolved_backend,
        "phase": spec.phase,
        "window": spec.window,
        "patch": spec.patch,
        "batch": spec.batch,
        "scale": spec.scale,
        "precision": spec.precision,
        "compile": spec.compile,
        "device": spec.device,
        "threads": spec.threads,
        "warmup": spec.warmup,
        "steps": spec.steps,
        "seed": spec.seed,
        "overrides": ";".join(format_override(k, v) for k, v in spec.overrides.items()),
        "ms_median": None,
        "peak_mem_mb": None,
        "attention_kernels": [],
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "",
        "python_version": platform.python_version(),
        "command": command,
        "point_command": spec.command(),
    }


def describe(spec: PointSpec, command: str) -> dict[str, Any]:
    """Identity columns plus what the running process knows: device name, threads, commit, load, time."""
    row = spec_columns(spec, command)
    record = run_record(spec.device)
    commit = record.get("git_commit")
    row.update(
        device_name=device_name(torch.device(spec.device)),
        threads=torch.get_num_threads(),
        git_commit=f"{commit}{'-dirty' if record.get('git_dirty') else ''}" if commit else None,
        host_load_1min=host_load(),
        timestamp=record.get("created_utc"),
    )
    return row


def build_step(spec: PointSpec, device: torch.device) -> tuple[Callable[[], None], nn.Module]:
    """The iteration to time (a training step or an inference forward) and the model it runs."""
    torch.manual_seed(spec.seed)
    model = build_model(**spec.model_config()).to(device)
    scope = precision_scope(model, spec.precision, device)
    network = torch.compile(model) if spec.compile else model
    lr = torch.rand(spec.batch, 3, spec.patch, spec.patch, device=device)  # (B, 3, p, p)

    if spec.phase == "infer":
        model.eval()

        def infer_step() -> None:
            with torch.inference_mode(), scope():
                network(lr)

        return infer_step, model

    model.train()
    hr = torch.rand(spec.batch, 3, spec.patch * spec.scale, spec.patch * spec.scale, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step() -> None:
        with scope():
            sr = network(lr)
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
            timing.synchronize(device)
            prof.step()
    # The profiler names its trace after host, pid and time: a re-run over a committed sweep takes the
    # committed trace's name, so git shows it modified rather than one deleted and one new file per point.
    take_committed_name(run_dir, {path.name for path in kernels.trace_files(run_dir)}, kernels.is_trace_file)
    found = kernels.attribute_run(run_dir, compiled_model=spec.compile)
    return {
        "attention_kernels": found["families"],
        "attention_ops": found["names"],
        "top_ops": top_operators(prof, device, spec.profile_active),
        "trace_files": [p.name for p in kernels.trace_files(run_dir)],
    }


def measure(spec: PointSpec, trace_root: Path, process: str = "shared", command: str | None = None) -> dict[str, Any]:
    """Profile one setting; returns its row. Status (the rules of suite.profiling.timing): `ok`; `oom`
    (out of memory: no timings); `fallback` (RPB's FlexAttention fell back to SDPA: timed, but no ratio
    uses it). Other errors raise. `process` says how fresh this process is for memory: "worker",
    "single" or "shared" (see memory.py)."""
    spec.validate()
    device = timing.prepare_device(spec.device, spec.threads)
    row = describe(spec, command if command is not None else shlex.join(sys.argv))
    run_dir = trace_root / spec.name
    try:
        step, model = build_step(spec, device)
    except Exception as err:  # noqa: BLE001 - only out-of-memory is expected
        if not timing.is_out_of_memory(err):
            raise
        row.update(status=timing.OOM, error=timing.reason(err))
        timing.release(device)
        return row
    row["params"] = count_parameters(model)
    gflop = step_flops(model.config, spec.phase, spec.batch, spec.patch) / 1e9
    del model  # the step closure keeps what it needs
    memory = PeakMemory(device, process)
    memory.start()
    times, status = timing.time_interleaved({spec.name: step}, device, spec.warmup, spec.steps)
    row["status"], row["error"] = status[spec.name]
    if spec.name not in times:  # out of memory (or unsupported): no timings, no trace
        del step
        timing.release(device)
        return row
    stats = timing.summarise(times[spec.name], digits=3)
    stats.pop("rounds")
    row.update(stats, ms_steps=[round(ms, 3) for ms in times[spec.name]])
    median = row["ms_median"]
    row.update(
        images_per_s=round(spec.batch * 1000.0 / median, 3) if median > 0 else math.nan,
        peak_mem_mb=round(memory.peak_mib(), 1),
        mem_baseline_mb=round(memory.baseline_mib(), 1),
        memory_method=memory.method,
    )
    row.update(run_profiler(step, spec, device, run_dir))
    row.update(
        gflop_per_iter=round(gflop, 4),
        tflops=round(gflop / median, 4) if median > 0 else math.nan,
        trace_dir=str(run_dir),
    )
    del step
    timing.release(device)
    return row
