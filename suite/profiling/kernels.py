"""Which attention kernel family ran: read from profiler operator and device-kernel names, never assumed.

Families: `flash` (FlashAttention: PyTorch's SDPA flash backend or the flash-attn package), `cudnn`
(cuDNN fused attention), `efficient` (memory-efficient / cutlass fMHA), `math` (unfused
`softmax(q k^T) v`, through SDPA's math backend or written out), `cpu-flash` (SDPA's flash kernel
for CPU) and `flex` (compiled FlexAttention). Names come from a trace file written by
`torch.profiler.tensorboard_trace_handler` (`cpu_op` events and device `kernel` events).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterable

from suite.models.biases import REGISTRY

# Operator names (exact, forward and backward); the more specific names come first.
OPERATOR_FAMILIES: tuple[tuple[str, str], ...] = (
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "cpu-flash"),
    ("aten::_scaled_dot_product_cudnn_attention", "cudnn"),
    ("aten::_scaled_dot_product_flash_attention", "flash"),
    ("aten::_flash_attention_forward", "flash"),
    ("aten::_flash_attention_backward", "flash"),
    ("flash_attn::_flash_attn_forward", "flash"),  # the flash-attn package's registered ops
    ("flash_attn::_flash_attn_backward", "flash"),
    ("aten::_scaled_dot_product_efficient_attention", "efficient"),
    ("aten::_efficient_attention_forward", "efficient"),
    ("aten::_efficient_attention_backward", "efficient"),
    ("aten::_scaled_dot_product_attention_math", "math"),
    # Attention written out: in this network softmax appears only inside attention.
    ("aten::_softmax", "math"),
    ("aten::_safe_softmax", "math"),
)

# Substrings of CUDA kernel names, checked in order (names as the profiler records them):
# - cuDNN fused attention (SDPA's CUDNN_ATTENTION): `cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_...`,
#   `..._flash_bprop_...`; they contain "flash", so cuDNN is tested first;
# - FlexAttention (Inductor's Triton template): `triton_tem_fused_flex_attention_0`,
#   `triton_tem_fused_flex_attention_backward_2`, `triton_per_fused_flex_attention_backward_0`;
# - FlashAttention-2 vendored in PyTorch (SDPA's FLASH_ATTENTION): `pytorch_flash::flash_fwd_kernel<...>`,
#   `pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<...>`;
# - the flash-attn package: FA2 `flash::flash_fwd_kernel<...>` (older builds `flash_fwd_kernel<...>` without the
#   namespace), `flash_bwd_dot_do_o_kernel`, `flash_bwd_convert_dq_kernel`; FA3 (Hopper)
#   `cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<...>>>` and `flash::FlashAttnBwdSm90`;
#   FA4 (CuTe DSL) `kernel_cutlass_kernel_flash_attncuteflash_fwd_sm100FlashAttentionForwardSm100_...`;
# - memory-efficient attention (SDPA's EFFICIENT_ATTENTION, xFormers' cutlass kernels):
#   `fmha_cutlassF_bf16_aligned_64x128_rf_sm80(...)` (forward), `fmha_cutlassB_...` (backward).
KERNEL_FAMILIES: tuple[tuple[str, str], ...] = (
    ("cudnn", "cudnn"),
    ("flex_attention", "flex"),
    ("pytorch_flash::", "flash"),
    ("flash::", "flash"),
    ("flashattn", "flash"),
    ("flash_fwd", "flash"),
    ("flash_bwd", "flash"),
    ("fmha_cutlass", "efficient"),
)

# What each bias may run on CUDA (SPEC 3): RPB adds an N x N bias, which flash kernels cannot; RIB and
# `none` on the `flash` backend run FlashAttention (the package, or SDPA's flash or cuDNN kernel).
FLASH_FAMILIES = ("flash", "cudnn")


def operator_family(name: str, compiled_model: bool = False) -> str | None:
    """Family of one profiler operator name, or None when it is no attention kernel."""
    for prefix, family in OPERATOR_FAMILIES:
        if name == prefix or name.startswith(prefix + "_backward"):
            return family
    if "flex_attention" in name:
        return "flex"
    if "CompiledFxGraph" in name and not compiled_model:
        # A torch.compile region in an uncompiled model is FlexAttention's (its CPU kernels carry no
        # attention name; CUDA ones do). In a compiled model every region is one: no evidence.
        return "flex"
    return None


def kernel_family(name: str) -> str | None:
    """Family of one device-kernel name, or None when it is no attention kernel."""
    lowered = name.lower()
    for needle, family in KERNEL_FAMILIES:
        if needle in lowered:
            return family
    return None


def attribute(
    operators: Iterable[str], kernels: Iterable[str] = (), compiled_model: bool = False
) -> dict[str, list[str]]:
    """Families seen and the names that gave them away: {"families": [...], "names": [...]} (sorted)."""
    families: set[str] = set()
    evidence: set[str] = set()
    for name in operators:
        family = operator_family(name, compiled_model)
        if family:
            families.add(family)
            evidence.add(name)
    for name in kernels:
        family = kernel_family(name)
        if family:
            families.add(family)
            evidence.add(name if len(name) <= 120 else name[:117] + "...")
    return {"families": sorted(families), "names": sorted(evidence)}


def read_trace_names(path: Path) -> tuple[set[str], set[str]]:
    """(operator names, device-kernel names) of one Chrome trace file, plain or gzipped JSON."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        trace = json.load(handle)
    operators: set[str] = set()
    kernels: set[str] = set()
    for event in trace.get("traceEvents", []):
        category = event.get("cat")
        if category == "cpu_op":
            operators.add(event.get("name", ""))
        elif category == "kernel":
            kernels.add(event.get("name", ""))
    return operators, kernels


def trace_files(run_dir: Path) -> list[Path]:
    """Trace files `tensorboard_trace_handler` wrote into a run directory."""
    return sorted(p for p in run_dir.iterdir() if is_trace_file(p.name))


def is_trace_file(name: str) -> bool:
    return name.endswith((".pt.trace.json", ".pt.trace.json.gz"))


def attribute_run(run_dir: Path, compiled_model: bool = False) -> dict[str, list[str]]:
    """Attention kernel families in every trace file of a run directory."""
    operators: set[str] = set()
    kernels: set[str] = set()
    for path in trace_files(run_dir):
        ops, kerns = read_trace_names(path)
        operators |= ops
        kernels |= kerns
    return attribute(operators, kernels, compiled_model)


def kernel_violation(bias: str, backend: str, device: str, families: Iterable[str]) -> str | None:
    """Why a CUDA row's kernels contradict its bias and backend, or None: a bias flash kernels cannot run
    (RPB) must never run one, and every other bias on the `flash` backend must run one."""
    if not str(device).startswith("cuda"):
        return None
    found = set(families)
    spec = REGISTRY.get(bias)
    if spec is None:
        return None
    if not spec.flash and "flash" in found:
        return f"{spec.label} ran a flash kernel, which cannot add its bias: the attribution or the model is wrong"
    if spec.flash and backend == "flash" and not found & set(FLASH_FAMILIES):
        return f"{bias} on backend flash ran {', '.join(sorted(found)) or 'no attention kernel'}, not a flash kernel"
    return None
