"""Attention-only micro-benchmark of one sweep point: RPB (each requested backend), RIB, and `none`
at head dim D+R (padded like RIB's kernel input), the physical reference RIB can at best reach.

It calls the model's own kernels (`rpb_attention`, `rib_attention`, `dot_product_attention` of
`suite.models.attention`) on the (windows, heads, N, d) tensors one layer of the network sees at that
window and patch size. RIB's time includes its coordinate MLP, which runs once per layer and forward.
Each variant is timed forward-only (no autograd) and forward+backward, and profiled once for the
kernel family that ran.
"""

from __future__ import annotations

import gc
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from suite.models.attention import dot_product_attention, resolve_backend, rib_attention, rpb_attention
from suite.models.positional import ImplicitNeuralBias, RelativePositionBias
from suite.profiling import kernels
from suite.profiling.flops import attention_flops, attention_head_dim, windows_per_image
from suite.profiling.measure import DTYPE_TAGS, DTYPES, FLEX_FALLBACK_WARNING, first_line, is_out_of_memory, synchronize

PASSES = ("fwd", "fwd+bwd")


@dataclass
class AttentionSpec:
    """Shapes and backends of one micro-benchmark point."""

    window: int
    patch: int
    batch: int
    heads: int
    head_dim: int
    ranks: list[int]
    rpb_backends: list[str] = field(default_factory=lambda: ["sdpa"])
    rib_backend: str = "auto"
    dtype: str = "float32"
    device: str = "cpu"
    warmup: int = 2
    steps: int = 5
    threads: int | None = None
    seed: int = 0
    fourier_levels: int = 10
    mlp_hidden: int = 32

    @property
    def n_windows(self) -> int:
        return self.batch * windows_per_image(self.window, self.patch)

    @property
    def name(self) -> str:
        return f"attention-w{self.window}-p{self.patch}-b{self.batch}-{DTYPE_TAGS[self.dtype]}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _families(call: Callable[[], None], device: torch.device) -> list[str]:
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        call()
        synchronize(device)
    events = prof.events()
    operators = [e.name for e in events if e.device_type == DeviceType.CPU]
    device_kernels = [e.name for e in events if e.device_type != DeviceType.CPU]
    return kernels.attribute(operators, device_kernels)["families"]


def _variants(spec: AttentionSpec, rank: int, device: torch.device, dtype: torch.dtype, needs_grad: bool):
    """(label, bias, backend, kernel head dim, make(requires_grad) -> (call, params)) per variant;
    `auto` backends resolve as the model resolves them for this device, dtype and pass."""
    n = spec.window * spec.window
    shape = (spec.n_windows, spec.heads, n, spec.head_dim)

    def qkv(dim: int, grad: bool) -> list[torch.Tensor]:
        return [torch.randn(*shape[:-1], dim, device=device, dtype=dtype, requires_grad=grad) for _ in range(3)]

    for requested in spec.rpb_backends:
        backend = resolve_backend("rpb", requested, device, dtype, needs_grad)

        def make_rpb(grad: bool, backend: str = backend):
            table = RelativePositionBias(spec.heads, spec.window).to(device).requires_grad_(grad)
            q, k, v = qkv(spec.head_dim, grad)
            return (lambda: rpb_attention(q, k, v, table, backend)), [q, k, v, table.table]

        label = "rpb" if requested == "auto" else f"rpb-{requested}"
        yield label, "rpb", backend, spec.head_dim, make_rpb

    rib_backend = resolve_backend("rib", spec.rib_backend, device, dtype, needs_grad)

    def make_rib(grad: bool):
        inr = ImplicitNeuralBias(spec.heads, rank, spec.fourier_levels, spec.mlp_hidden).to(device).requires_grad_(grad)
        q, k, v = qkv(spec.head_dim, grad)

        def call():
            q_pos, k_pos = inr(spec.window, spec.window, device)  # (heads, N, R), once per layer and forward
            return rib_attention(q, k, v, q_pos, k_pos, rib_backend)

        return call, [q, k, v, *inr.parameters()]

    yield "rib", "rib", rib_backend, attention_head_dim("rib", spec.head_dim, rank), make_rib

    ref_dim = attention_head_dim("rib", spec.head_dim, rank)
    none_backend = resolve_backend("none", "auto", device, dtype, needs_grad)

    def make_none(grad: bool):
        q, k, v = qkv(ref_dim, grad)
        return (lambda: dot_product_attention(q, k, v, ref_dim**-0.5, none_backend)), [q, k, v]

    yield "none@D+R", "none", none_backend, ref_dim, make_none


def _oom_message(err: BaseException) -> str:
    return f"{type(err).__name__}: {first_line(str(err))}"


def _make_step(make, grad: bool) -> Callable[[], None]:
    call, params = make(grad)
    if not grad:
        def forward() -> None:
            with torch.no_grad():
                call()

        return forward
    grad_out = torch.randn_like(call().detach())

    def forward_backward() -> None:
        call().backward(grad_out)
        for param in params:
            param.grad = None

    return forward_backward


def _measure_pass(
    variants: list, pass_name: str, spec: AttentionSpec, device: torch.device
) -> dict[str, dict[str, Any]]:
    """Time every variant of one pass, interleaved step by step so that load drift on a shared
    machine hits all variants alike; a variant that runs out of memory drops out as `oom`."""
    results: dict[str, dict[str, Any]] = {}
    steps: dict[str, Callable[[], None]] = {}
    for label, _bias, _backend, _dim, make in variants:
        try:
            step = _make_step(make, pass_name == "fwd+bwd")
            for _ in range(spec.warmup):
                step()
            synchronize(device)
            steps[label] = step
        except Exception as err:  # noqa: BLE001 - only out-of-memory is expected here
            if not is_out_of_memory(err):
                raise
            results[label] = {"status": "oom", "error": _oom_message(err)}
            _release(device)
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(spec.steps):
        for label in list(steps):
            try:
                synchronize(device)
                start = time.perf_counter()
                steps[label]()
                synchronize(device)
                times[label].append((time.perf_counter() - start) * 1000.0)
            except Exception as err:  # noqa: BLE001
                if not is_out_of_memory(err):
                    raise
                results[label] = {"status": "oom", "error": _oom_message(err)}
                del steps[label]
                _release(device)
    for label, step in steps.items():
        p25, median, p75 = np.percentile(times[label], [25, 50, 75])
        results[label] = {
            "status": "ok", "ms_median": round(float(median), 4), "ms_iqr": round(float(p75 - p25), 4),
            "attention_kernels": _families(step, device),
        }
    steps.clear()
    _release(device)
    return results


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def bench(spec: AttentionSpec) -> list[dict[str, Any]]:
    """Rows (one per rank, variant and pass) with `ratio_to_none` = time / time of `none@D+R`."""
    device = torch.device(spec.device)
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    dtype = DTYPES[spec.dtype] or torch.float32
    rows: list[dict[str, Any]] = []
    for rank in spec.ranks:
        torch.manual_seed(spec.seed)
        for pass_name in PASSES:
            variants = list(_variants(spec, rank, device, dtype, needs_grad=pass_name == "fwd+bwd"))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                results = _measure_pass(variants, pass_name, spec, device)
            fallback = next((first_line(str(w.message)) for w in caught if FLEX_FALLBACK_WARNING in str(w.message)), "")
            reference = results.get("none@D+R", {})
            n = spec.window * spec.window
            for label, bias, backend, kernel_dim, _make in variants:
                result = results[label]
                if fallback and bias == "rpb" and backend == "flex" and result["status"] == "ok":
                    result = {**result, "status": "fallback", "error": fallback}
                ratio = None
                if result["status"] in ("ok", "fallback") and reference.get("status") == "ok":
                    ratio = round(result["ms_median"] / reference["ms_median"], 4)
                rows.append({
                    "name": spec.name, "window": spec.window, "patch": spec.patch, "batch": spec.batch,
                    "n_windows": spec.n_windows, "heads": spec.heads, "head_dim": spec.head_dim, "rank": rank,
                    "variant": label, "bias": bias, "backend": backend, "kernel_head_dim": kernel_dim,
                    "pass": pass_name, "dtype": spec.dtype, "device": spec.device, "error": "",
                    "ms_median": None, "ms_iqr": None, "attention_kernels": [], **result, "ratio_to_none": ratio,
                    "gflop_fwd": round(attention_flops(spec.n_windows, spec.heads, n, kernel_dim) / 1e9, 4),
                })
    return rows
