"""Attention-layer micro-benchmark: one `WindowAttention` layer with RPB (each backend), RIB and no bias,
timed forward and forward+backward over window sizes on one device, with the ratios RPB/RIB and RIB/none
measured in the same run.

The variants run interleaved, one call each per round, so load from other processes falls on all of them
alike; each ratio is taken per round and summarised by its median and range. RPB's ratio uses its
fastest backend on this device for that window and phase, so the baseline is not handicapped. `none`
is the same layer without any positional term (head dim D, its best backend): RIB/none is what RIB adds
to a layer. Forward runs without autograd, as inference does; forward+backward runs with the layer
input requiring a gradient, as inside a network.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from suite.env import device_name
from suite.files import write_text_atomic
from suite.models.attention import PAD_MULTIPLE, WindowAttention, check_pair, resolve_backend
from suite.models.presets import PRESETS

PHASES = ("forward", "forward+backward")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TIMERS = ("wall", "cpu")


@dataclass(frozen=True)
class Variant:
    """One timed layer: `label` as printed, its bias and requested backend."""

    label: str
    bias: str
    backend: str


@dataclass
class AttentionBenchConfig:
    """What to time. dim, heads and rank default to layer `layer` of preset `preset`."""

    windows: tuple[int, ...] = (8, 16, 32, 48, 64)
    preset: str = "base"
    layer: int = 0
    dim: int | None = None
    heads: int | None = None
    rank: int | None = None
    map_size: int = 64  # side of the square feature map, rounded up to a multiple of each window
    batch: int = 1
    repeats: int = 7
    warmup: int = 2
    device: str = "auto"
    dtype: str = "float32"
    rpb_backends: tuple[str, ...] | None = None  # default: every RPB backend this device runs forward+backward
    rib_backend: str = "auto"
    none_backend: str = "auto"
    threads: int | None = None
    timer: str = "wall"
    seed: int = 0
    command: str = ""

    def resolve(self) -> None:
        """Fill defaults from the preset and the device; raise ValueError naming any bad field."""
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; expected one of {', '.join(PRESETS)}")
        preset = PRESETS[self.preset]
        if not 0 <= self.layer < len(preset["ranks"]):
            raise ValueError(f"layer {self.layer} is not in 0..{len(preset['ranks']) - 1} for preset {self.preset!r}")
        self.dim = self.dim or preset["dim"]
        self.heads = self.heads or preset["heads"]
        self.rank = self.rank or preset["ranks"][self.layer]
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        for name in ("map_size", "batch", "repeats", "rank"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if not self.windows or min(self.windows) < 1:
            raise ValueError(f"windows must be positive integers, got {self.windows}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if self.timer not in TIMERS:
            raise ValueError(f"unknown timer {self.timer!r}; expected one of {', '.join(TIMERS)}")
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested but torch {torch.__version__} sees no CUDA device")
        if self.timer == "cpu" and (device.type != "cpu" or self.threads != 1):
            raise ValueError("timer 'cpu' (this thread's CPU time) needs device cpu and threads 1")
        if self.rpb_backends is None:
            # FlexAttention has no CPU backward in torch; ask for it explicitly to time its CPU forward.
            self.rpb_backends = ("math", "sdpa", "flex") if device.type == "cuda" else ("math", "sdpa")
        for backend in self.rpb_backends:
            check_pair("rpb", backend)
        check_pair("rib", self.rib_backend)
        check_pair("none", self.none_backend)

    def variants(self) -> list[Variant]:
        rpb = [Variant(f"rpb[{backend}]", "rpb", backend) for backend in self.rpb_backends]
        return [*rpb, Variant("rib", "rib", self.rib_backend), Variant("none", "none", self.none_backend)]


def padded(head_dim: int) -> int:
    return head_dim + -head_dim % PAD_MULTIPLE


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "can't allocate memory" in str(err) or "out of memory" in str(err)


class Timer:
    """Seconds for one call: wall clock (synchronising CUDA) or this thread's CPU time."""

    def __init__(self, kind: str, device: torch.device) -> None:
        self.clock = time.thread_time if kind == "cpu" else time.perf_counter
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def __call__(self, step: Callable[[], None]) -> float:
        self.sync()
        start = self.clock()
        step()
        self.sync()
        return self.clock() - start


def make_steps(
    layer: WindowAttention, x: torch.Tensor, grad_out: torch.Tensor, dtype: torch.dtype
) -> dict[str, Callable[[], None]]:
    """The two timed calls of one layer: forward without autograd, and forward+backward."""
    autocast = (
        torch.autocast(device_type=x.device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    )
    x_grad = x.detach().clone().requires_grad_()

    def forward() -> None:
        with torch.no_grad(), autocast:
            layer(x)

    def forward_backward() -> None:
        with autocast:
            out = layer(x_grad)
        out.backward(grad_out.to(out.dtype))
        x_grad.grad = None
        for param in layer.parameters():
            param.grad = None

    return {"forward": forward, "forward+backward": forward_backward}


def first_run(step: Callable[[], None]) -> tuple[str, str]:
    """Run a step once (compiles, allocator warm-up): ("ok", "") or a status and the reason it cannot be timed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            step()
        except Exception as err:  # noqa: BLE001 - out of memory and unsupported are recorded, the sweep goes on
            reason = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
            if is_out_of_memory(err):
                return "oom", reason
            if isinstance(err, NotImplementedError):
                return "unsupported", reason
            raise
    fallbacks = [str(w.message) for w in caught if "FlexAttention failed" in str(w.message)]
    if fallbacks:  # the requested backend did not run: its time would be another backend's
        return "unsupported", fallbacks[0]
    return "ok", ""


def summarise(times: list[float]) -> dict[str, float]:
    ms = [t * 1000 for t in times]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms)}


def bench_window(config: AttentionBenchConfig, window: int, timer: Timer) -> tuple[list[dict], list[dict]]:
    """Time every variant and phase at one window: (timing rows, ratio rows)."""
    device, dtype = torch.device(config.device), DTYPES[config.dtype]
    side = math.ceil(config.map_size / window) * window
    gen = torch.Generator().manual_seed(config.seed)
    x = torch.randn(config.batch, side, side, config.dim, generator=gen).to(device)
    grad_out = torch.randn(config.batch, side, side, config.dim, generator=gen).to(device)
    steps: dict[tuple[str, str], Callable[[], None]] = {}
    status: dict[tuple[str, str], tuple[str, str]] = {}
    backends: dict[tuple[str, str], str] = {}
    layers = []
    for variant in config.variants():
        torch.manual_seed(config.seed)
        layer = WindowAttention(
            config.dim, config.heads, window, bias=variant.bias, rank=config.rank, backend=variant.backend
        )
        layers.append(layer.to(device))
        for phase, step in make_steps(layer, x, grad_out, dtype).items():
            key = (variant.label, phase)
            needs_grad = phase == "forward+backward"
            backends[key] = resolve_backend(variant.bias, variant.backend, device, dtype, needs_grad)
            status[key] = first_run(step)
            if status[key][0] == "ok":
                steps[key] = step
    times: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    for round_index in range(config.warmup + config.repeats):
        for key, step in steps.items():  # interleaved: every variant once per round
            elapsed = timer(step)
            if round_index >= config.warmup:
                times[key].append(elapsed)
    del layers, steps
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    rows = []
    for (label, phase), (state, reason) in status.items():
        variant = next(v for v in config.variants() if v.label == label)
        row = {
            "window": window, "map_side": side, "n_windows": config.batch * (side // window) ** 2,
            "tokens_per_window": window * window, "variant": label, "bias": variant.bias,
            "backend": backends[(label, phase)], "phase": phase, "status": state, "reason": reason,
            "median_ms": None, "min_ms": None, "max_ms": None, "repeats": 0,
        }
        if state == "ok":
            row.update({k: round(v, 3) for k, v in summarise(times[(label, phase)]).items()})
            row["repeats"] = len(times[(label, phase)])
        rows.append(row)
    return rows, ratio_rows(window, times)


def ratio_rows(window: int, times: dict[tuple[str, str], list[float]]) -> list[dict]:
    """Per phase: RPB (its fastest backend) / RIB and RIB / none, each taken per round."""
    rows = []
    for phase in PHASES:
        rpb = {label: t for (label, p), t in times.items() if p == phase and label.startswith("rpb[")}
        rib, none = times.get(("rib", phase)), times.get(("none", phase))
        row: dict[str, Any] = {"window": window, "phase": phase, "rpb_backend": None}
        if rpb and rib:
            best = min(rpb, key=lambda label: statistics.median(rpb[label]))
            row["rpb_backend"] = best[len("rpb[") : -1]
            row.update(ratio_summary("rpb_over_rib", rpb[best], rib))
        if rib and none:
            row.update(ratio_summary("rib_over_none", rib, none))
        rows.append(row)
    return rows


def ratio_summary(name: str, numerator: list[float], denominator: list[float]) -> dict[str, float]:
    per_round = [a / b for a, b in zip(numerator, denominator)]
    return {
        name: round(statistics.median(per_round), 3),
        f"{name}_min": round(min(per_round), 3),
        f"{name}_max": round(max(per_round), 3),
    }


def run(config: AttentionBenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark; returns {"meta", "rows", "ratios"} and logs the tables as it goes."""
    config.resolve()
    device = torch.device(config.device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    timer = Timer(config.timer, device)
    meta = {
        "benchmark": "attention-layer",
        "command": config.command,
        "device": config.device,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "dtype": config.dtype,
        "threads": torch.get_num_threads(),
        "timer": config.timer,
        "dim": config.dim, "heads": config.heads, "head_dim": config.dim // config.heads, "rank": config.rank,
        # What the kernels see: the layer zero-pads every variant's head dim to a multiple of PAD_MULTIPLE.
        "kernel_head_dim_rib": padded(config.dim // config.heads + config.rank),
        "kernel_head_dim_rpb_none": padded(config.dim // config.heads),
        "preset": config.preset, "layer": config.layer, "map_size": config.map_size, "batch": config.batch,
        "repeats": config.repeats, "warmup": config.warmup, "seed": config.seed,
        "rpb_backends": list(config.rpb_backends),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    log(header(meta))
    rows: list[dict] = []
    ratios: list[dict] = []
    for window in config.windows:
        window_rows, window_ratios = bench_window(config, window, timer)
        rows += window_rows
        ratios += window_ratios
        log(format_window(window_rows, window_ratios))
    return {"meta": meta, "rows": rows, "ratios": ratios}


def header(meta: dict[str, Any]) -> str:
    return (
        f"attention layer: dim {meta['dim']}, {meta['heads']} heads of {meta['head_dim']}, RIB rank {meta['rank']}; "
        f"kernel head dims: RIB {meta['kernel_head_dim_rib']}, RPB and none {meta['kernel_head_dim_rpb_none']}\n"
        f"map {meta['map_size']}x{meta['map_size']} rounded up to a multiple of the window, batch {meta['batch']}; "
        f"{meta['device']} ({meta['device_name']}), torch {meta['torch']}, {meta['dtype']}, {meta['threads']} "
        f"thread(s), {meta['timer']} clock; median of {meta['repeats']} interleaved rounds after {meta['warmup']} "
        f"warm-up; ratios per round: median [min, max]"
    )


def format_window(rows: list[dict], ratios: list[dict]) -> str:
    def cell(phase: str, label: str) -> str:
        row = next((r for r in rows if r["variant"] == label and r["phase"] == phase), None)
        if row is None:
            return "-"
        if row["status"] != "ok":
            return row["status"]
        return f"{row['median_ms']:.1f} [{row['min_ms']:.1f}, {row['max_ms']:.1f}]"

    labels = list(dict.fromkeys(r["variant"] for r in rows))
    window, side = rows[0]["window"], rows[0]["map_side"]
    lines = [f"\nwindow {window} (map {side}x{side}, {rows[0]['n_windows']} windows of {window * window} tokens)"]
    lines.append(f"  {'variant':<12} {'backend':<7} {'forward ms':>26} {'forward+backward ms':>26}")
    for label in labels:
        backend = next(r["backend"] for r in rows if r["variant"] == label and r["phase"] == "forward+backward")
        lines.append(f"  {label:<12} {backend:<7} {cell('forward', label):>26} {cell('forward+backward', label):>26}")
    for ratio in ratios:
        parts = [f"  {ratio['phase']:<17}"]
        if "rpb_over_rib" in ratio:
            parts.append(f"RPB/RIB {spread(ratio, 'rpb_over_rib')} (rpb[{ratio['rpb_backend']}])")
        if "rib_over_none" in ratio:
            parts.append(f"RIB/none {spread(ratio, 'rib_over_none')}")
        lines.append("  ".join(parts))
    return "\n".join(lines)


def spread(ratio: dict[str, Any], name: str) -> str:
    return f"{ratio[name]:.2f} [{ratio[name + '_min']:.2f}, {ratio[name + '_max']:.2f}]"


def to_csv(rows: list[dict], meta: dict[str, Any], meta_keys: tuple[str, ...]) -> str:
    import csv
    import io

    columns = list(dict.fromkeys(key for row in rows for key in row)) + list(meta_keys)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{key: meta[key] for key in meta_keys}})
    return out.getvalue()


def write_results(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """`attention.json` (meta, rows, ratios), `attention.csv` and `attention_ratios.csv` in out_dir."""
    meta_keys = ("device", "device_name", "torch", "dtype", "threads", "timer", "command")
    paths = [out_dir / "attention.json", out_dir / "attention.csv", out_dir / "attention_ratios.csv"]
    write_text_atomic(paths[0], json.dumps(result, indent=2) + "\n")
    write_text_atomic(paths[1], to_csv(result["rows"], result["meta"], meta_keys))
    write_text_atomic(paths[2], to_csv(result["ratios"], result["meta"], meta_keys))
    return paths

