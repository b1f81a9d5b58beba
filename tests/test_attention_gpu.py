"""CUDA only (marked `gpu`, skipped without a CUDA device): flash-only SDPA runs RIB and refuses RPB; bf16 autocast."""

from __future__ import annotations

import pytest
import torch

from suite.models import build_model
from suite.models.attention import WindowAttention

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


@pytest.mark.parametrize("only", ["FLASH_ATTENTION", "CUDNN_ATTENTION"])
def test_rib_runs_with_sdpa_restricted_to_one_flash_kernel_and_rpb_refuses(only):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    x = torch.randn(2, 64, 64, 180, device=CUDA, requires_grad=True)
    rib = WindowAttention(180, 6, 32, bias="rib", rank=18, backend="sdpa").to(CUDA)
    rpb = WindowAttention(180, 6, 32, bias="rpb", backend="sdpa").to(CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16), sdpa_kernel([getattr(SDPBackend, only)]):
        try:
            out = rib(x)
        except RuntimeError as err:
            if only == "CUDNN_ATTENTION":
                pytest.skip(f"this GPU/torch build has no cuDNN attention for these shapes: {err}")
            raise
        out.float().square().mean().backward()
        assert rib.rib.to_q.weight.grad.abs().sum() > 0
        with pytest.raises(RuntimeError, match="No available kernel"):
            rpb(x)


@pytest.mark.parametrize("bias", ["rib", "rpb", "none"])
def test_bf16_autocast_forward_and_backward(bias):
    torch.manual_seed(0)
    model = build_model("tiny", bias=bias).to(CUDA)
    with torch.no_grad():
        model.to_pixels.weight.normal_(std=0.02)
    x = torch.rand(2, 3, 48, 40, device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (2, 3, 96, 80) and torch.isfinite(out).all()
    out.float().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if bias == "rib":
        with torch.autocast("cuda", dtype=torch.bfloat16):  # the factors stay float32 (SPEC section 2)
            q_pos, k_pos = model.attention_layers()[0].rib(32, 32, CUDA)
        assert q_pos.dtype == k_pos.dtype == torch.float32
    if bias == "rpb":
        assert model.attention_layers()[0].rpb.table.grad.abs().sum() > 0


@pytest.mark.parametrize("bias,backend", [("rpb", "sdpa"), ("rpb", "flex"), ("rib", "flash"), ("none", "flash")])
def test_profiled_kernels_match_the_bias_under_attention_bf16(tmp_path, bias, backend):
    # What the GPU check relies on, on a real GPU: the trace names a kernel family, RPB never a flash
    # kernel, RIB and none on the flash backend always one (flash-attn, SDPA flash or cuDNN).
    from suite.profiling import kernels
    from suite.profiling.measure import PointSpec, measure

    spec = PointSpec(
        preset="tiny",
        bias=bias,
        backend=backend,
        phase="train",
        window=16,
        patch=32,
        batch=2,
        precision="attention-bf16",
        device="cuda",
        warmup=1,
        steps=2,
        profile_active=1,
    )
    row = measure(spec, tmp_path / "traces")
    assert row["status"] in ("ok", "fallback") and row["precision"] == "attention-bf16"
    assert row["attention_kernels"], row["attention_ops"]
    assert kernels.kernel_violation(bias, row["backend_resolved"], "cuda", row["attention_kernels"]) is None
