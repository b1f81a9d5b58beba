"""tools/gpu-check.sh without a GPU: its plan (--dry-run) and the kernel attribution it relies on, per
kernel family, on trace events with the CUDA kernel names each family emits."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from suite.profiling import kernels

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_lists_plan_points_and_budget(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_OUT": str(tmp_path / "out")}
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu-check.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "pip install -r requirements/test.txt" in out and "pytest -q -m gpu tests" in out
    assert "35 tasks on cuda, preset base, precision attention-bf16" in out
    assert "no new task starts after 330 s" in out
    assert out.count("rpb  backend") == 8 and "window  96 patch  96 batch  8 rpb" not in out
    for bias in ("rope", "flashbias"):  # the official code's other flash-compatible encodings, at every window
        assert all(f"window {w:>3} patch {p:>3} batch  8 {bias} backend flash" in out for w, p in ((32, 64), (96, 96)))
    assert not (tmp_path / "out").exists() and not (ROOT / ".venv-gpu-never").exists()
    bad = subprocess.run(["bash", str(ROOT / "tools" / "gpu-check.sh"), "--fast"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument --fast" in bad.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_stops_before_measuring(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_OUT": str(tmp_path / "out")}
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu-check.sh"), "--no-venv"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 1 and "sees no CUDA device: nothing to check" in done.stderr
    assert "environment ready" in done.stdout and "pytest -m gpu: exit" not in done.stdout
    assert not (tmp_path / "out").exists()


def trace(tmp_path: Path, operators: list[str], device_kernels: list[str]) -> Path:
    """A trace file as torch.profiler's tensorboard_trace_handler writes it (gzipped Chrome trace)."""
    events = [{"ph": "X", "cat": "cpu_op", "name": name, "ts": i, "dur": 1} for i, name in enumerate(operators)]
    events += [{"ph": "X", "cat": "kernel", "name": name, "ts": i, "dur": 1} for i, name in enumerate(device_kernels)]
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    path = run / "host_1.1.pt.trace.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump({"traceEvents": events}, handle)
    return run


GEMM = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_kernel"
FAMILIES = {
    "flash-attn FA2": (
        ["flash_attn::_flash_attn_forward", "flash_attn::_flash_attn_backward"],
        [
            "void flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 64, 4, false, false, "
            "cutlass::bfloat16_t, Flash_kernel_traits<64, 128, 64, 4, cutlass::bfloat16_t> >, false>"
            "(Flash_fwd_params)",
            "void flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<Flash_bwd_kernel_traits<64> >(Flash_bwd_params)",
        ],
        "flash",
    ),
    "flash-attn FA3": (
        [],
        [
            "void cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<"
            "flash::CollectiveMainloopFwdSm90<2, cute::tuple<cute::C<1>, cute::C<1>, cute::C<1> >, "
            "cute::tuple<cute::C<128>, cute::C<176>, cute::C<64> > > > > >(...)"
        ],
        "flash",
    ),
    "SDPA flash": (
        ["aten::_scaled_dot_product_flash_attention", "aten::_flash_attention_forward"],
        [
            "void pytorch_flash::flash_fwd_kernel<pytorch_flash::Flash_fwd_kernel_traits<64, 128, 128, 4, "
            "false, false, cutlass::bfloat16_t> >(pytorch_flash::Flash_fwd_params)"
        ],
        "flash",
    ),
    "SDPA memory-efficient": (
        ["aten::_scaled_dot_product_efficient_attention", "aten::_efficient_attention_forward"],
        [
            "fmha_cutlassF_bf16_aligned_64x128_rf_sm80(PyTorchMemEffAttention::AttentionKernel"
            "<cutlass::bfloat16_t, cutlass::arch::Sm80, true, 64, 128, 64, true, true>::Params)",
            "fmha_cutlassB_bf16_aligned_64x64_k64_sm80(...)",
        ],
        "efficient",
    ),
    "SDPA cuDNN": (
        ["aten::_scaled_dot_product_cudnn_attention"],
        [
            "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x128_4x1x1_kernel0_0",
            "cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_2_64x64x64_4x1x1_kernel0_0",
        ],
        "cudnn",
    ),
    "FlexAttention": (
        ["CompiledFxGraph"],
        [
            "triton_tem_fused_flex_attention_0",
            "triton_tem_fused_flex_attention_backward_2",
            "triton_per_fused_flex_attention_backward_0",
        ],
        "flex",
    ),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_kernel_family_from_recorded_trace(tmp_path, family):
    operators, device_kernels, expected = FAMILIES[family]
    run = trace(tmp_path, ["aten::addmm", "aten::linear", *operators], [GEMM, *device_kernels])
    found = kernels.attribute_run(run)
    assert found["families"] == [expected]
    # Kernel names alone are enough (a trace without operator names, e.g. a compiled model's).
    assert kernels.attribute([], device_kernels, compiled_model=True)["families"] == [expected]


def test_rpb_never_ran_a_flash_kernel():
    # RPB on SDPA runs memory-efficient or cuDNN kernels (cuDNN's names contain "flash"), never flash.
    for family in ("SDPA memory-efficient", "SDPA cuDNN", "FlexAttention"):
        found = kernels.attribute(*FAMILIES[family][:2])["families"]
        assert kernels.kernel_violation("rpb", "sdpa", "cuda", found) is None
    flash = kernels.attribute(*FAMILIES["SDPA flash"][:2])["families"]
    assert "RPB ran a flash kernel" in kernels.kernel_violation("rpb", "sdpa", "cuda", flash)
    # RIB and none on the flash backend must show a flash (or cuDNN) kernel.
    assert kernels.kernel_violation("rib", "flash", "cuda", flash) is None
    efficient = kernels.attribute(*FAMILIES["SDPA memory-efficient"][:2])["families"]
    assert "not a flash kernel" in kernels.kernel_violation("rib", "flash", "cuda:0", efficient)
    assert kernels.kernel_violation("rpb", "sdpa", "cpu", ["flash"]) is None  # CUDA rows only
