"""Window attention layers against an explicit per-window reference; RIB builds nothing N x N; RIB fits RPB."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from suite.models.attention import WindowAttention
from suite.models.positional import ImplicitNeuralBias, window_coordinates

TOL = dict(atol=1e-5, rtol=1e-5)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pad_reference(x: torch.Tensor, win_h: int, win_w: int) -> torch.Tensor:
    """Bottom/right padding of (B, H, W, C) to window multiples, by index: reflect, repeatedly where the
    pad reaches the side (each round mirrors what is there so far), edge replication for a side of 1."""

    def indices(size: int, padded: int) -> torch.Tensor:
        idx = torch.arange(size)
        while len(idx) < padded:
            step = min(padded - len(idx), len(idx) - 1)
            idx = torch.cat([idx, idx[-2 - torch.arange(step)]]) if step else idx[[0] * padded]
        return idx

    height, width = x.shape[1:3]
    rows = indices(height, -(-height // win_h) * win_h)
    cols = indices(width, -(-width // win_w) * win_w)
    return x[:, rows][:, :, cols]


def reference_layer(layer: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """The layer's output recomputed window by window in float64 with an explicit (N, N) bias."""
    batch, height, width, dim = x.shape
    heads, head_dim = layer.heads, layer.head_dim
    win_h, win_w = layer.window_shape(height, width)
    n = win_h * win_w
    if layer.rib is not None:
        bias = layer.rib.dense_bias(win_h, win_w, x.device)[0].double()  # (heads, N, N)
    elif layer.rpb is not None:
        bias = layer.rpb()[0].double()
    else:
        bias = torch.zeros(heads, n, n, dtype=torch.float64)
    qkv = x.double() @ layer.qkv.weight.double().T + layer.qkv.bias.double()
    qkv = pad_reference(qkv, win_h, win_w)
    shift = (win_h // 2, win_w // 2) if layer.shift else (0, 0)
    qkv = torch.roll(qkv, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    out = torch.empty(*qkv.shape[:3], dim, dtype=torch.float64)
    for top in range(0, qkv.shape[1], win_h):
        for left in range(0, qkv.shape[2], win_w):
            tokens = qkv[:, top : top + win_h, left : left + win_w].reshape(batch, n, 3, heads, head_dim)
            q, k, v = tokens.permute(2, 0, 3, 1, 4)  # (B, heads, N, d)
            attn = (q @ k.transpose(-2, -1) / head_dim**0.5 + bias).softmax(-1) @ v
            out[:, top : top + win_h, left : left + win_w] = attn.transpose(1, 2).reshape(batch, win_h, win_w, dim)
    out = torch.roll(out, shifts=shift, dims=(1, 2))[:, :height, :width]
    return out @ layer.proj.weight.double().T + layer.proj.bias.double()


def make_layer(
    bias: str, window: int, shift: bool = False, backend: str = "auto", large_windows: str = "clamp"
) -> WindowAttention:
    torch.manual_seed(0)
    layer = WindowAttention(  # D=12, D+R=17 -> 24
        24, 2, window, bias=bias, rank=5, backend=backend, shift=shift, large_windows=large_windows
    )
    if layer.rib is not None:
        with torch.no_grad():  # order-one factors, so the positional term matters
            layer.rib.to_q.weight.normal_(std=0.5)
            layer.rib.to_k.weight.normal_(std=0.5)
    if layer.rpb is not None:
        with torch.no_grad():
            layer.rpb.table.normal_()
    return layer


# (map height, width): windows fit exactly; reflect padding; a map smaller than the window (RPB, and RIB
# or none with large_windows="pad", pad it up by reflection); one so small that the reflection repeats;
# a side of one.
SHAPES = [(16, 16), (13, 19), (5, 7), (3, 7), (1, 2)]


@pytest.mark.parametrize("large_windows", ["clamp", "pad"])
@pytest.mark.parametrize("bias", ["rib", "rpb", "none"])
@pytest.mark.parametrize("shift", [False, True], ids=["plain", "shifted"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_layer_equals_per_window_reference(bias, shift, shape, large_windows):
    layer = make_layer(bias, window=8, shift=shift, large_windows=large_windows)
    x = torch.randn(2, *shape, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = layer(x)
        torch.testing.assert_close(out.double(), reference_layer(layer, x), **TOL)


@pytest.mark.parametrize("bias", ["rib", "rpb"])
def test_layer_backends_agree_under_gradient(bias):
    """math and sdpa give the same outputs and parameter gradients (RPB's sdpa takes a grad-requiring mask)."""
    x = torch.randn(1, 13, 19, 24, generator=torch.Generator().manual_seed(2))
    results = []
    for backend in ("math", "sdpa"):
        layer = make_layer(bias, window=8, backend=backend)
        out = layer(x)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), {name: p.grad for name, p in layer.named_parameters()}))
    (out_a, grads_a), (out_b, grads_b) = results
    torch.testing.assert_close(out_a, out_b, **TOL)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], **TOL, msg=lambda m, name=name: f"{name}: {m}")


def largest_operand_numels(bias: str, window: int) -> list[tuple[str, list[int]]]:
    """(operator, input shape) for every profiled input of one forward at `window`, largest first."""
    torch.manual_seed(0)
    layer = WindowAttention(32, 2, window, bias=bias, rank=8)
    x = torch.randn(1, window, window, 32)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        layer(x)
    operands = [(e.name, list(shape)) for e in prof.events() for shape in e.input_shapes if shape]
    return sorted(operands, key=lambda op: -torch.Size(op[1]).numel())


def test_rib_builds_no_n_by_n_tensor_while_rpb_does():
    window = 64
    n = window * window  # 4096 tokens: one head's N x N is 16.8 M elements
    rib_ops = largest_operand_numels("rib", window)
    assert rib_ops, "the profiler recorded no input shapes"
    name, shape = rib_ops[0]
    assert torch.Size(shape).numel() < n * n, f"RIB has an N x N operand: {name} {shape}"
    assert any(name.startswith("aten::_scaled_dot_product_flash_attention") for name, _ in rib_ops)
    rpb_ops = largest_operand_numels("rpb", window)
    assert any(shape[-2:] == [n, n] for _, shape in rpb_ops), f"RPB shows no (N, N) operand: {rpb_ops[:3]}"


def test_rib_can_stand_in_for_a_smooth_relative_bias():
    """Fitting RIB's factors to a Gaussian of relative distance: the error falls as the rank rises."""
    window, sigma = 8, 0.3
    coords = window_coordinates(window, window)  # (N, 2) in [-1, 1]
    target = torch.exp(-(torch.cdist(coords, coords) ** 2) / (2 * sigma**2))  # (N, N), a function of p_i - p_j
    cpu = torch.device("cpu")
    errors = {}
    for rank in (4, 8, 16, 32):
        torch.manual_seed(0)
        rib = ImplicitNeuralBias(heads=1, rank=rank)
        optimizer = torch.optim.Adam(rib.parameters(), lr=1e-2)
        for _ in range(250):
            loss = (rib.dense_bias(window, window, cpu)[0, 0] - target).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            errors[rank] = ((rib.dense_bias(window, window, cpu)[0, 0] - target).norm() / target.norm()).item()
    ranks = sorted(errors)
    for low, high in zip(ranks, ranks[1:]):
        assert errors[high] < 0.9 * errors[low], f"relative error did not fall from rank {low} to {high}: {errors}"
    assert errors[32] < 0.25, errors
    # A rank-4 RIB bias has rank <= 4, so it cannot beat the best rank-4 approximation (Eckart-Young).
    best_rank4 = torch.linalg.eigvalsh(target).flip(0)[4:].square().sum().sqrt() / target.norm()
    assert errors[4] >= best_rank4.item() - 1e-4


def test_rib_factor_cache_never_goes_stale():
    """Eval-mode factors are reused, and recomputed after an in-place update, a state_dict load, a dtype
    change, or in training mode; with autograd on they are computed afresh so gradients flow."""
    layer = make_layer("rib", window=8).eval()
    x = torch.randn(1, 16, 16, 24, generator=torch.Generator().manual_seed(3))

    def fresh() -> torch.Tensor:  # the same layer with nothing cached
        clone = make_layer("rib", window=8).eval()
        clone.load_state_dict(layer.state_dict())
        with torch.no_grad():
            return clone.to(x.dtype)(x)

    with torch.no_grad():
        first = layer(x)
        assert set(layer._cache) == {"qkv", "rib8x8"}
        assert torch.equal(layer(x), first)
        one_window = x[:, :8, :8]  # the projection must not write into the cached rows it starts from
        assert torch.equal(layer(one_window), layer(one_window))
        layer.rib.to_q.weight.mul_(2.0)  # in place, as an optimizer step
        assert torch.equal(layer(x), fresh()) and not torch.allclose(layer(x), first)
        layer.qkv.bias.add_(0.1)
        assert torch.equal(layer(x), fresh())
    other = make_layer("rib", window=8)
    with torch.no_grad():
        other.rib.mlp[0].weight.normal_()
    layer.load_state_dict(other.state_dict())
    with torch.no_grad():
        assert torch.equal(layer(x), fresh())
        layer.double()
        x = x.double()
        assert layer(x).dtype == torch.float64
        assert torch.equal(layer(x), fresh())
    layer.train()
    layer(x).sum().backward()
    assert layer.rib.to_k.weight.grad is not None and layer.rib.to_k.weight.grad.abs().sum() > 0
    layer.eval()
    layer.rib.to_k.weight.grad = None
    layer(x).sum().backward()  # eval mode with autograd: no cached constant in the graph
    assert layer.rib.to_k.weight.grad is not None and layer.rib.to_k.weight.grad.abs().sum() > 0


def test_attention_bf16_casts_only_the_kernel_inputs(monkeypatch):
    from suite.models import attention

    seen = []
    real = attention.dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype))
        return real(q, k, v, *args, **kwargs)

    monkeypatch.setattr(attention, "dot_product_attention", spy)
    layer = make_layer("rib", window=8).eval()
    x = torch.randn(1, 16, 16, 24, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = layer(x)
        assert attention.apply_precision(layer, "attention-bf16") is None
        half = layer(x)
        assert attention.apply_precision(layer, "autocast-bf16") == torch.bfloat16
        assert layer.attention_dtype is None
    assert seen == [(torch.float32,) * 3, (torch.bfloat16,) * 3]
    assert half.dtype == torch.float32 and not torch.equal(half, full)
    torch.testing.assert_close(half, full, atol=5e-2, rtol=5e-2)
    with pytest.raises(ValueError, match="precision = 'bf16' must be one of fp32, autocast-bf16, attention-bf16"):
        attention.apply_precision(layer, "bf16")
