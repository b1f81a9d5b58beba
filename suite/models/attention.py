"""Window self-attention with an interchangeable positional bias (`rpb`, `rib`, `none`) and kernel backend.

Kernels work on `(batch*windows, heads, N, d)` tensors. Backends:
- `math`: explicit `softmax(q k^T * scale + B) v`.
- `sdpa`: `torch.nn.functional.scaled_dot_product_attention` (a dense mask for RPB).
- `flex`: FlexAttention; RPB reads its table inside a compiled `score_mod`, nothing N x N is built.
- `flash`: the flash-attn package when it imports (CUDA, fp16/bf16), else SDPA restricted to the
  FLASH_ATTENTION and CUDNN_ATTENTION backends. No additive bias: RPB cannot use it.
- `auto`: the fastest valid backend for the bias and the device (resolved per call).
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from suite.models.positional import ImplicitNeuralBias, RelativePositionBias

BIASES = ("rpb", "rib", "none")
BACKENDS = ("auto", "math", "sdpa", "flex", "flash")
PAD_MULTIPLE = 8  # flash kernels want head dims that are multiples of 8


def check_pair(bias: str, backend: str) -> None:
    """Raise ValueError for an unknown bias or backend, or a pair that cannot run."""
    if bias not in BIASES:
        raise ValueError(f"unknown bias {bias!r}; expected one of {', '.join(BIASES)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if bias == "rpb" and backend == "flash":
        raise ValueError(
            "bias 'rpb' with backend 'flash' is invalid: FlashAttention kernels accept no additive "
            "N x N bias, which RPB needs; use backend 'sdpa', 'math' or 'flex', or bias 'rib'"
        )


@functools.cache
def flash_attn_func() -> Callable | None:
    """`flash_attn.flash_attn_func` when the optional package imports, else None."""
    try:
        from flash_attn import flash_attn_func as func
    except ImportError:
        return None
    return func


@functools.cache
def flex_attention_compiled() -> Callable:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


_flex_failed: set[str] = set()  # device types where compiling FlexAttention failed once


def resolve_backend(bias: str, backend: str, device: torch.device) -> str:
    """Turn `auto` into a concrete backend for this bias on this device."""
    check_pair(bias, backend)
    if backend != "auto":
        return backend
    if device.type == "cuda":
        if bias == "rpb":
            return "sdpa" if "cuda" in _flex_failed else "flex"
        return "flash"
    return "sdpa"


def rpb_score_mod(table: torch.Tensor, window: int) -> Callable:
    """FlexAttention `score_mod` adding `table[h, rel(q, kv)]` for a square window; table (heads, (2w-1)^2)."""
    span = 2 * window - 1

    def score_mod(score, b, h, q_idx, kv_idx):
        dy = q_idx // window - kv_idx // window + window - 1
        dx = q_idx % window - kv_idx % window + window - 1
        return score + table[h, dy * span + dx].to(score.dtype)

    return score_mod


def dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    backend: str,
    bias: torch.Tensor | None = None,
    score_mod: Callable | None = None,
) -> torch.Tensor:
    """`softmax(q k^T * scale + bias) v` on (B, heads, N, d) through one backend; returns (B, heads, N, d)."""
    if backend == "math":
        logits = (q @ k.transpose(-2, -1)) * scale  # (B, heads, N, N)
        if bias is not None:
            logits = logits + bias
        return logits.softmax(dim=-1) @ v
    if backend == "sdpa":
        mask = None if bias is None else bias.to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    if backend == "flex":
        return flex_attention_compiled()(q, k, v, score_mod=score_mod, scale=scale)
    if backend == "flash":
        if bias is not None or score_mod is not None:
            raise ValueError("backend 'flash' cannot add a positional bias")
        func = flash_attn_func()
        if func is not None and q.is_cuda:
            # flash-attn takes (B, N, heads, d).
            out = func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), softmax_scale=scale)
            return out.transpose(1, 2)
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION]):
            return F.scaled_dot_product_attention(q, k, v, scale=scale)
    raise ValueError(f"unknown attention backend {backend!r}")


def rpb_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rpb: RelativePositionBias, backend: str
) -> torch.Tensor:
    """Attention with the relative position table added to the logits; q, k, v (B, heads, N, d)."""
    scale = q.shape[-1] ** -0.5
    if backend == "flex":
        try:
            return dot_product_attention(q, k, v, scale, "flex", score_mod=rpb_score_mod(rpb.table, rpb.window))
        except Exception as err:  # noqa: BLE001 - compile errors come in many types
            if q.device.type in _flex_failed:
                raise
            _flex_failed.add(q.device.type)
            warnings.warn(f"FlexAttention failed to compile on {q.device.type} ({err}); RPB falls back to SDPA")
            backend = "sdpa"
    return dot_product_attention(q, k, v, scale, backend, bias=rpb())


def rib_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor, backend: str
) -> torch.Tensor:
    """RIB by concatenation: `softmax(q k^T / sqrt(D) + Q_p K_p^T / sqrt(R)) v` as one plain dot product.

    q, k, v: (B, heads, N, D); q_pos, k_pos: (heads, N, R) shared by every window. Returns (B, heads, N, D).
    """
    batch, heads, n, head_dim = q.shape
    rank = q_pos.shape[-1]
    pad = -(head_dim + rank) % PAD_MULTIPLE
    zeros = q.new_zeros(batch, heads, n, pad)
    q_pos = (q_pos * rank**-0.5).to(q.dtype).expand(batch, -1, -1, -1)  # (B, heads, N, R)
    k_pos = k_pos.to(k.dtype).expand(batch, -1, -1, -1)
    q_cat = torch.cat([q * head_dim**-0.5, q_pos, zeros], dim=-1)  # (B, heads, N, D+R+pad)
    k_cat = torch.cat([k, k_pos, zeros], dim=-1)
    v_cat = torch.cat([v, v.new_zeros(batch, heads, n, rank + pad)], dim=-1)
    out = dot_product_attention(q_cat, k_cat, v_cat, 1.0, backend)
    return out[..., :head_dim]


def pad_to_multiple(x: torch.Tensor, mult_h: int, mult_w: int) -> torch.Tensor:
    """Reflect-pad (B, H, W, C) at the bottom/right to multiples of (mult_h, mult_w)."""
    height, width = x.shape[1:3]
    pad_h, pad_w = -height % mult_h, -width % mult_w
    if pad_h == 0 and pad_w == 0:
        return x
    # Reflection needs the pad to be shorter than the side; a map smaller than an RPB window is not.
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x.permute(0, 3, 1, 2), (0, pad_w, 0, pad_h), mode=mode).permute(0, 2, 3, 1)


def window_partition(x: torch.Tensor, win_h: int, win_w: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, win_h * win_w, C); H, W multiples of the window."""
    batch, height, width, channels = x.shape
    x = x.reshape(batch, height // win_h, win_h, width // win_w, win_w, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, win_h * win_w, channels)


def window_merge(windows: torch.Tensor, win_h: int, win_w: int, height: int, width: int) -> torch.Tensor:
    """(B * windows, win_h * win_w, C) -> (B, H, W, C); inverse of `window_partition`."""
    channels = windows.shape[-1]
    x = windows.reshape(-1, height // win_h, width // win_w, win_h, win_w, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows of a (B, H, W, C) map.

    The map is reflect-padded to a multiple of the window and cropped back. A RIB or `none` window
    larger than the map is clamped to it; an RPB map is padded up to its window (its table fixes w).
    `shift` rolls the map by half a window (no mask) for blocks whose windows are all equal.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int,
        bias: str = "rib",
        rank: int = 16,
        backend: str = "auto",
        shift: bool = False,
        fourier_levels: int = 10,
        mlp_hidden: int = 32,
    ) -> None:
        super().__init__()
        check_pair(bias, backend)
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        if bias == "rib" and rank <= 0:
            raise ValueError(f"RIB rank must be positive, got {rank}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.bias_kind, self.backend, self.shift = bias, backend, shift
        self._window = window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rpb = RelativePositionBias(heads, window) if bias == "rpb" else None
        self.rib = ImplicitNeuralBias(heads, rank, fourier_levels, mlp_hidden) if bias == "rib" else None

    @property
    def window(self) -> int:
        return self._window

    @window.setter
    def window(self, size: int) -> None:
        if self.rpb is not None and size != self.rpb.window:
            raise ValueError(
                f"an RPB layer trained at window {self.rpb.window} cannot run at window {size}: its "
                f"relative-position table holds (2*{self.rpb.window}-1)^2 entries; only RIB can change window"
            )
        if size <= 0:
            raise ValueError(f"window must be positive, got {size}")
        self._window = size

    def window_shape(self, height: int, width: int) -> tuple[int, int]:
        if self.rpb is not None:
            return self._window, self._window
        return min(self._window, height), min(self._window, width)

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, H, W, C); gate: optional (B, H, W, C) multiplying the output before projection."""
        batch, height, width, channels = x.shape
        win_h, win_w = self.window_shape(height, width)
        # Padding after the qkv projection equals projecting the padded map (it is per token) and is cheaper.
        qkv = pad_to_multiple(self.qkv(x), win_h, win_w)  # (B, Hp, Wp, 3C)
        padded_h, padded_w = qkv.shape[1:3]
        if self.shift:
            qkv = torch.roll(qkv, shifts=(-(win_h // 2), -(win_w // 2)), dims=(1, 2))
        windows = window_partition(qkv, win_h, win_w)  # (B*nW, N, 3C)
        n = win_h * win_w
        q, k, v = windows.view(-1, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B*nW, h, N, d)
        out = self.attend(q, k, v, win_h, win_w)  # (B*nW, h, N, d)
        out = window_merge(out.transpose(1, 2).reshape(-1, n, channels), win_h, win_w, padded_h, padded_w)
        if self.shift:
            out = torch.roll(out, shifts=(win_h // 2, win_w // 2), dims=(1, 2))
        out = out[:, :height, :width]
        if gate is not None:
            out = out * gate
        return self.proj(out)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, win_h: int, win_w: int) -> torch.Tensor:
        backend = resolve_backend(self.bias_kind, self.backend, q.device)
        if self.rpb is not None:
            return rpb_attention(q, k, v, self.rpb, backend)
        if self.rib is not None:
            q_pos, k_pos = self.rib(win_h, win_w, q.device)  # once per forward, shared by all windows
            return rib_attention(q, k, v, q_pos, k_pos, backend)
        return dot_product_attention(q, k, v, self.head_dim**-0.5, backend)
