"""Attention kernels: RIB's concatenation is exact, RPB backends agree, `none` is plain SDPA, bad pairs fail."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from suite.models import build_model
from suite.models.attention import (
    PAD_MULTIPLE,
    WindowAttention,
    dot_product_attention,
    resolve_backend,
    rpb_attention,
    rpb_score_mod,
)
from suite.models.options import check_pair
from suite.models.positional import RelativePositionBias

TOL = dict(atol=1e-5, rtol=1e-5)


pytestmark = pytest.mark.usefixtures("one_torch_thread")
# (head dim D, rank R): 16 + 8 = 24 needs no padding; 12 + 5 = 17 is padded to 24; base's 30 + 18 = 48.
DIMS = [(16, 8), (12, 5), (30, 18)]
BACKENDS_HERE = ["math", "sdpa", "flash"]  # on CPU `flash` is SDPA restricted to its flash kernel


@functools.cache
def flex_problem() -> str | None:
    """Why FlexAttention cannot compile here (None where it can): one plain compiled forward, no grad.

    It uses the shapes of the RIB flex case below, so that test reuses this compilation.
    """
    from torch.nn.attention.flex_attention import flex_attention

    q = torch.randn(2, 2, 64, 24)
    try:
        torch.compile(flex_attention)(q, q, q, scale=1.0)
    except Exception as err:  # noqa: BLE001 - a compiler failure may be of any type
        return f"{type(err).__name__}: {err}"
    return None


def skip_without_flex() -> None:
    problem = flex_problem()
    if problem is not None:
        pytest.skip(f"FlexAttention does not compile on CPU here (torch {torch.__version__}): {problem[:300]}")


def explicit_rib(q, k, v, q_pos, k_pos):
    """softmax(q k^T / sqrt(D) + Q_p K_p^T / sqrt(R)) v, written out in float64."""
    q, k, v, q_pos, k_pos = (t.double() for t in (q, k, v, q_pos, k_pos))
    logits = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5 + q_pos @ k_pos.transpose(-2, -1) / q_pos.shape[-1] ** 0.5
    return logits.softmax(-1) @ v


def rib_layer_case(head_dim: int, rank: int, backend: str = "auto", windows: int = 3, heads: int = 2, seed: int = 0):
    """A RIB layer at an 8x8 window (N = 64) with order-one factors, window tokens, and its q, k, v, Q_p, K_p."""
    torch.manual_seed(seed)
    layer = WindowAttention(heads * head_dim, heads, 8, bias="rib", rank=rank, backend=backend)
    with torch.no_grad():  # order one, so the positional term moves the softmax as much as the content term
        layer.rib.to_q.weight.normal_(std=0.5)
        layer.rib.to_k.weight.normal_(std=0.5)
    tokens = torch.randn(windows, 64, heads * head_dim, generator=torch.Generator().manual_seed(seed))
    q, k, v = layer.qkv(tokens).detach().view(windows, 64, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q_pos, k_pos = (t.detach() for t in layer.rib(8, 8, tokens.device))
    return layer, tokens, (q, k, v, q_pos, k_pos)


@pytest.mark.parametrize("head_dim,rank", DIMS)
def test_rib_layer_pads_q_k_v_to_a_multiple_of_eight(head_dim, rank):
    layer = WindowAttention(2 * head_dim, 2, 8, bias="rib", rank=rank)
    width = layer.extra_channels
    assert (head_dim + width) % PAD_MULTIPLE == 0 and rank <= width < rank + PAD_MULTIPLE
    none = WindowAttention(2 * head_dim, 2, 8, bias="none")
    assert (head_dim + none.extra_channels) % PAD_MULTIPLE == 0 and none.extra_channels < PAD_MULTIPLE


@pytest.mark.parametrize("backend", BACKENDS_HERE)
@pytest.mark.parametrize("head_dim,rank", DIMS)
def test_rib_concatenation_equals_explicit_bias(backend, head_dim, rank):
    layer, tokens, reference = rib_layer_case(head_dim, rank, backend)
    for training in (True, False):  # factors computed afresh, and from the eval-mode cache
        layer.train(training)
        with torch.no_grad():
            out = layer.attend(tokens, 8, 8)
        assert out.shape == reference[0].shape and out.dtype == torch.float32
        torch.testing.assert_close(out.double(), explicit_rib(*reference), **TOL)


def test_rib_concatenation_through_flex_equals_explicit_bias():
    skip_without_flex()
    layer, tokens, reference = rib_layer_case(12, 5, "flex", windows=2)  # D + R = 17, padded to 24
    with torch.no_grad():  # torch implements FlexAttention's backward on CUDA only
        out = layer.attend(tokens, 8, 8)
    torch.testing.assert_close(out.double(), explicit_rib(*reference), **TOL)


def test_rib_on_cpu_runs_the_flash_kernel_for_sdpa():
    """On CPU, `sdpa` for RIB is the flash kernel (nothing N x N), not a math fallback."""
    from torch.profiler import ProfilerActivity, profile

    layer, tokens, _ = rib_layer_case(30, 18, "sdpa")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        layer.attend(tokens.requires_grad_(), 8, 8).sum().backward()
    names = {event.name for event in prof.events()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names
    assert "aten::_scaled_dot_product_attention_math" not in names


def relative_bias_reference(table: torch.Tensor, window: int) -> torch.Tensor:
    """`B[h, i, j] = T[h, (dy + w - 1) * (2w - 1) + dx + w - 1]` from explicit loops: (heads, N, N)."""
    n = window * window
    bias = torch.empty(table.shape[0], n, n, dtype=table.dtype)
    for i in range(n):
        for j in range(n):
            dy, dx = i // window - j // window, i % window - j % window
            bias[:, i, j] = table[:, (dy + window - 1) * (2 * window - 1) + dx + window - 1]
    return bias


@pytest.fixture(scope="module")
def rpb_case():
    torch.manual_seed(0)
    window, heads, head_dim = 6, 3, 16
    rpb = RelativePositionBias(heads, window)
    with torch.no_grad():
        rpb.table.normal_()  # order-one bias, so a wrong index would show
    q, k, v = (torch.randn(4, heads, window * window, head_dim) for _ in range(3))
    bias = relative_bias_reference(rpb.table.detach().double(), window)
    qd, kd, vd = (t.double() for t in (q, k, v))
    expected = ((qd @ kd.transpose(-2, -1)) / head_dim**0.5 + bias).softmax(-1) @ vd
    return rpb, q, k, v, expected


def test_rpb_gathered_bias_matches_explicit_index(rpb_case):
    rpb = rpb_case[0]
    torch.testing.assert_close(rpb()[0].double(), relative_bias_reference(rpb.table.detach().double(), rpb.window))


@pytest.mark.parametrize("backend", ["math", "sdpa"])
def test_rpb_backends_agree(rpb_case, backend):
    rpb, q, k, v, expected = rpb_case
    out = rpb_attention(q, k, v, rpb, backend)
    torch.testing.assert_close(out.double(), expected, **TOL)


def test_rpb_flex_agrees_with_math(rpb_case, recwarn):
    skip_without_flex()
    rpb, q, k, v, expected = rpb_case
    with torch.no_grad():
        out = rpb_attention(q, k, v, rpb, "flex")
    assert not [w for w in recwarn if "FlexAttention" in str(w.message)], "flex fell back to SDPA"
    torch.testing.assert_close(out.double(), expected, **TOL)
    # The score_mod itself, without the fallback wrapper, gives the same numbers.
    with torch.no_grad():
        score_mod = rpb_score_mod(rpb.table, rpb.window)
        direct = dot_product_attention(q, k, v, q.shape[-1] ** -0.5, "flex", score_mod=score_mod)
    torch.testing.assert_close(direct.double(), expected, **TOL)


def table_gradient(rpb: RelativePositionBias, q, k, v, backend: str) -> torch.Tensor:
    rpb.zero_grad()
    grad_out = torch.linspace(-1, 1, q.numel()).view_as(q)
    (rpb_attention(q, k, v, rpb, backend) * grad_out).sum().backward()
    return rpb.table.grad.clone()


def test_rpb_table_gradient_agrees_between_math_and_sdpa(rpb_case):
    rpb, q, k, v, _ = rpb_case
    grad_math = table_gradient(rpb, q, k, v, "math")
    assert grad_math.abs().sum() > 0
    torch.testing.assert_close(table_gradient(rpb, q, k, v, "sdpa"), grad_math, **TOL)


def test_rpb_table_gradient_through_flex(rpb_case):
    rpb, q, k, v, _ = rpb_case
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    from torch.nn.attention.flex_attention import flex_attention

    try:  # torch refuses before compiling where it has no FlexAttention backward
        flex_attention(q, k, v, score_mod=rpb_score_mod(rpb.table, rpb.window))
    except NotImplementedError as err:
        pytest.skip(f"torch {torch.__version__} has no FlexAttention backward on CPU: {err}")
    skip_without_flex()
    rpb.zero_grad()
    out = dot_product_attention(q, k, v, q.shape[-1] ** -0.5, "flex", score_mod=rpb_score_mod(rpb.table, rpb.window))
    grad_out = torch.linspace(-1, 1, q.numel()).view_as(q)
    (out * grad_out).sum().backward()
    torch.testing.assert_close(rpb.table.grad, table_gradient(rpb, q.detach(), k.detach(), v.detach(), "math"), **TOL)


def test_flex_fallback_warns_and_uses_sdpa_on_cpu_backward(rpb_case):
    """RPB with `flex` where it cannot run (CPU backward): a warning naming FlexAttention, SDPA's numbers."""
    rpb, q, k, v, expected = rpb_case
    q = q.clone().requires_grad_()
    with pytest.warns(UserWarning, match="FlexAttention failed to compile or run on cpu"):
        out = rpb_attention(q, k, v, rpb, "flex")
    torch.testing.assert_close(out.detach().double(), expected, **TOL)


@pytest.mark.parametrize("backend", BACKENDS_HERE)
def test_none_equals_unmasked_sdpa(backend):
    torch.manual_seed(1)
    q, k, v = (torch.randn(3, 2, 49, 20) for _ in range(3))
    expected = F.scaled_dot_product_attention(q, k, v)  # default scale 1/sqrt(d), no mask
    torch.testing.assert_close(dot_product_attention(q, k, v, 20**-0.5, backend), expected, **TOL)


@pytest.mark.parametrize(
    "make",
    [
        lambda: check_pair("rpb", "flash"),
        lambda: WindowAttention(16, 2, 8, bias="rpb", backend="flash"),
        lambda: build_model("tiny", bias="rpb", backend="flash"),
    ],
    ids=["check_pair", "WindowAttention", "build_model"],
)
def test_rpb_with_flash_is_refused_naming_the_pair(make):
    with pytest.raises(ValueError, match=r"bias 'rpb' with backend 'flash' is invalid: .*additive"):
        make()


@pytest.mark.parametrize(
    "bias,backend,named",
    [("alibi", "sdpa", "unknown bias 'alibi'"), ("rib", "triton", "unknown attention backend 'triton'")],
)
def test_unknown_bias_or_backend_is_named(bias, backend, named):
    with pytest.raises(ValueError, match=named):
        check_pair(bias, backend)
    field = "bias" if bias not in ("rpb", "rib", "none") else "backend"
    with pytest.raises(ValueError, match=f"model field {field} = '{bias if field == 'bias' else backend}'"):
        build_model("tiny", bias=bias, backend=backend)


def test_auto_picks_a_backend_that_runs_for_the_device_dtype_and_gradient():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # resolving needs no CUDA device
    assert resolve_backend("rib", "auto", cpu) == resolve_backend("none", "auto", cpu) == "sdpa"
    assert resolve_backend("rpb", "auto", cpu, torch.float32, needs_grad=False) == "sdpa"
    assert resolve_backend("rpb", "auto", cpu, torch.float32, needs_grad=True) == "math"
    assert resolve_backend("rib", "auto", cuda, torch.bfloat16) == "flash"
    assert resolve_backend("rib", "auto", cuda, torch.float32) == "sdpa"  # flash kernels have no fp32
    assert resolve_backend("rpb", "math", cuda) == "math"
    with pytest.raises(ValueError, match="bias 'rpb' with backend 'flash'"):
        resolve_backend("rpb", "flash", cpu)


def test_explain_backend_gives_the_choice_of_auto_and_its_reason(monkeypatch):
    import suite.models.attention as attention

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    cases = [
        ("rib", cpu, None, False),
        ("rpb", cpu, torch.float32, True),
        ("rpb", cpu, torch.float32, False),
        ("none", cuda, torch.bfloat16, False),
        ("rib", cuda, torch.float32, False),
        ("rpb", cuda, None, True),
    ]
    for bias, device, dtype, grad in cases:
        backend, reason = attention.explain_backend(bias, device, dtype, grad)
        assert backend == resolve_backend(bias, "auto", device, dtype, grad)
        assert reason.startswith(device.type.upper()) and backend in reason.lower().replace("flexattention", "flex")
    assert "slower math path" in attention.explain_backend("rpb", cpu, torch.float32, True)[1]
    assert "need fp16/bf16" in attention.explain_backend("rib", cuda, torch.float32)[1]
    monkeypatch.setitem(attention._flex_unavailable, "cuda", "no triton")
    assert attention.explain_backend("rpb", cuda) == (
        "sdpa",
        "CUDA, RPB: FlexAttention failed to compile here (no triton): SDPA with a dense mask",
    )
