"""Window self-attention with an interchangeable positional bias (`rpb`, `rib`, `none`) and kernel backend.

Kernels work on `(batch*windows, heads, N, d)` tensors. Backends:
- `math`: explicit `softmax(q k^T * scale + B) v`.
- `sdpa`: `torch.nn.functional.scaled_dot_product_attention` (a dense mask for RPB).
- `flex`: FlexAttention; RPB reads its table inside a compiled `score_mod`, nothing N x N is built.
  (On CPU, torch implements its forward only.)
- `flash`: the flash-attn package when it imports (CUDA, fp16/bf16), else SDPA restricted to the
  FLASH_ATTENTION and CUDNN_ATTENTION backends. No additive bias: RPB cannot use it.
- `auto`: the fastest valid backend for the bias, the device, the dtype and whether a gradient is needed.
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
HALF_DTYPES = (torch.float16, torch.bfloat16)


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
    """FlexAttention compiled once per process; eager FlexAttention is a slow reference only."""
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention)


# Device types where FlexAttention failed to compile, with the reason; RPB uses SDPA there instead.
_flex_unavailable: dict[str, str] = {}


def resolve_backend(
    bias: str, backend: str, device: torch.device, dtype: torch.dtype | None = None, needs_grad: bool = False
) -> str:
    """Turn `auto` into a concrete backend for this bias on this device; other backends pass through.

    CUDA: RPB uses FlexAttention (SDPA where it failed to compile); RIB and `none` use flash kernels in
    fp16/bf16 (also when `dtype` is not given) and SDPA in fp32, which flash kernels lack.
    CPU: RIB and `none` use SDPA (its CPU flash kernel); RPB uses SDPA when its bias needs no gradient
    (the CPU flash kernel takes a constant mask) and `math` when it does (`needs_grad`), because SDPA
    then falls back to a math path of its own that is slower.
    """
    check_pair(bias, backend)
    if backend != "auto":
        return backend
    if device.type == "cuda":
        if bias == "rpb":
            return "sdpa" if "cuda" in _flex_unavailable else "flex"
        return "sdpa" if dtype is not None and dtype not in HALF_DTYPES else "flash"
    if bias == "rpb" and needs_grad:
        return "math"
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
    """`softmax(q k^T * scale + bias) v` on (B, heads, N, d) through one backend; returns (B, heads, N, d).

    `bias` (broadcastable to (B, heads, N, N)) serves `math` and `sdpa`; `score_mod` serves `flex`.
    """
    if backend == "math":
        logits = (q * scale) @ k.transpose(-2, -1)  # (B, heads, N, N); scaling q is N*d work, not N*N
        if bias is not None:
            logits += bias  # in place is safe: the matmul's backward keeps its inputs, not its output
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
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rpb: RelativePositionBias,
    backend: str,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention with the relative position table added to the logits; q, k, v (B, heads, N, d).

    `scale` defaults to d^-1/2; pass the unpadded head dim's when q, k, v carry zero padding.

    `flex` falls back to `sdpa` with a warning ("FlexAttention failed to compile or run on ...") where
    FlexAttention cannot run: a device where its forward failed to compile (remembered, not retried), or
    a call that needs a backward torch does not implement there (CPU).
    """
    check_pair("rpb", backend)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if backend == "flex":
        reason = _flex_unavailable.get(q.device.type)
        if reason is None:
            try:
                return dot_product_attention(q, k, v, scale, "flex", score_mod=rpb_score_mod(rpb.table, rpb.window))
            except Exception as err:  # noqa: BLE001 - compile failures come in many types
                reason = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
                # Remember forward-only failures; with a gradient the cause may be a missing backward instead.
                grads = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, rpb.table))
                if not grads:
                    _flex_unavailable[q.device.type] = reason
        warnings.warn(
            f"FlexAttention failed to compile or run on {q.device.type} ({reason}); RPB falls back to SDPA",
            stacklevel=2,
        )
        backend = "sdpa"
    return dot_product_attention(q, k, v, scale, backend, bias=rpb())


def rib_extension(
    q_pos: torch.Tensor, k_pos: torch.Tensor, head_dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The channels RIB appends to q, k and v: `[Q_p / sqrt(R), 0]`, `[K_p, 0]` and zeros, each (heads, N, P).

    q_pos, k_pos: (heads, N, R). P = R + pad, where pad makes D + P a multiple of PAD_MULTIPLE.
    """
    rank = q_pos.shape[-1]
    pad = -(head_dim + rank) % PAD_MULTIPLE
    q_ext = F.pad(q_pos * rank**-0.5, (0, pad))  # (heads, N, P)
    k_ext = F.pad(k_pos, (0, pad))
    return q_ext, k_ext, q_ext.new_zeros(q_ext.shape)


def append_channels(x: torch.Tensor, extension: torch.Tensor) -> torch.Tensor:
    """`[x, extension]` along the last dim, the extension broadcast over x's leading dims.

    x: (*lead, D) with any strides; extension: (*tail, P) where `tail` ends `lead`. One copy; returns
    a contiguous (*lead, D + P).
    """
    return torch.cat([x, extension.expand(*x.shape[:-1], extension.shape[-1])], dim=-1)


def rib_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor, backend: str
) -> torch.Tensor:
    """RIB by concatenation: `softmax(q k^T / sqrt(D) + Q_p K_p^T / sqrt(R)) v` as one plain dot product.

    q, k, v: (B, heads, N, D); q_pos, k_pos: (heads, N, R) shared by every window. Returns (B, heads, N, D).
    """
    head_dim = q.shape[-1]
    q_ext, k_ext, v_ext = (ext.to(q.dtype) for ext in rib_extension(q_pos, k_pos, head_dim))  # (heads, N, P)
    q_cat = append_channels(q * head_dim**-0.5, q_ext)  # (B, heads, N, D+P)
    k_cat = append_channels(k, k_ext)
    v_cat = append_channels(v, v_ext)
    return dot_product_attention(q_cat, k_cat, v_cat, 1.0, backend)[..., :head_dim]


def pad_to_multiple(x: torch.Tensor, mult_h: int, mult_w: int) -> torch.Tensor:
    """Reflect-pad (B, H, W, C) at the bottom/right to multiples of (mult_h, mult_w).

    Reflection needs a pad shorter than the side; an axis where it is not (a map smaller than an RPB
    window) is padded by replication instead.
    """
    height, width = x.shape[1:3]
    pad_h, pad_w = -height % mult_h, -width % mult_w
    if pad_h == 0 and pad_w == 0:
        return x
    x = x.permute(0, 3, 1, 2)  # (B, C, H, W)
    if pad_h < height and pad_w < width:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    else:
        x = F.pad(x, (0, pad_w, 0, 0), mode="reflect" if pad_w < width else "replicate")
        x = F.pad(x, (0, 0, 0, pad_h), mode="reflect" if pad_h < height else "replicate")
    return x.permute(0, 2, 3, 1)


def split_windows_heads(qkv: torch.Tensor, win_h: int, win_w: int, heads: int) -> torch.Tensor:
    """(B, H, W, 3*heads*d) -> view (3, B, H/win_h, W/win_w, win_h, win_w, heads, d); nothing is copied."""
    batch, height, width, channels = qkv.shape
    head_dim = channels // (3 * heads)
    x = qkv.view(batch, height // win_h, win_h, width // win_w, win_w, 3, heads, head_dim)
    return x.permute(5, 0, 1, 3, 2, 4, 6, 7)


def merge_windows_heads(out: torch.Tensor, batch: int, win_h: int, win_w: int, height: int, width: int) -> torch.Tensor:
    """(B*windows, heads, N, d), any strides -> (B, H, W, heads*d) in one copy; inverse of the window split."""
    _, heads, _, head_dim = out.shape
    x = out.transpose(1, 2).reshape(batch, height // win_h, width // win_w, win_h, win_w, heads, head_dim)
    return x.permute(0, 1, 3, 2, 4, 5, 6).reshape(batch, height, width, heads * head_dim)


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
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.bias_kind, self.backend, self.shift = bias, backend, shift
        self._window = window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rpb = RelativePositionBias(heads, window) if bias == "rpb" else None
        self.rib = ImplicitNeuralBias(heads, rank, fourier_levels, mlp_hidden) if bias == "rib" else None
        # RIB wants q / sqrt(D): scaling the q rows of the projection is C*C work, not N*C per window.
        qkv_scale = torch.ones(3 * dim)
        qkv_scale[:dim] = self.head_dim**-0.5
        self.register_buffer("qkv_scale", qkv_scale if bias == "rib" else None, persistent=False)

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
        if self.rib is not None:
            qkv = F.linear(x, self.qkv.weight * self.qkv_scale[:, None], self.qkv.bias * self.qkv_scale)
        else:
            qkv = self.qkv(x)
        # Padding after the qkv projection equals projecting the padded map (it is per token) and is cheaper.
        qkv = pad_to_multiple(qkv, win_h, win_w)  # (B, Hp, Wp, 3C)
        padded_h, padded_w = qkv.shape[1:3]
        if self.shift:
            qkv = torch.roll(qkv, shifts=(-(win_h // 2), -(win_w // 2)), dims=(1, 2))
        windows = split_windows_heads(qkv, win_h, win_w, self.heads)  # (3, B, nH, nW, wh, ww, heads, d) view
        out = self.attend(windows, win_h, win_w)  # (B*nH*nW, heads, N, d)
        out = merge_windows_heads(out, batch, win_h, win_w, padded_h, padded_w)  # (B, Hp, Wp, C)
        if self.shift:
            out = torch.roll(out, shifts=(win_h // 2, win_w // 2), dims=(1, 2))
        out = out[:, :height, :width]
        if gate is not None:
            out = out * gate
        return self.proj(out)

    def attend(self, windows: torch.Tensor, win_h: int, win_w: int) -> torch.Tensor:
        """Windows (3, B, nH, nW, wh, ww, heads, d) from `split_windows_heads` -> (B*nH*nW, heads, N, d).

        One concatenation per q, k and v gathers the windows and appends the extra channels: RIB's factors
        (computed once per forward, shared by all windows) and zero padding to a multiple of PAD_MULTIPLE.
        Every variant gets the padding, so `none` and RPB are not handicapped against RIB: torch's CPU flash
        kernel runs a head dim of 32 faster than one of 30 (CUDA flash kernels pad to such dims themselves).
        """
        needs_grad = torch.is_grad_enabled() and self.rpb is not None and self.rpb.table.requires_grad
        backend = resolve_backend(self.bias_kind, self.backend, windows.device, windows.dtype, needs_grad)
        if self.rib is not None:
            q_pos, k_pos = self.rib(win_h, win_w, windows.device)  # (heads, N, R) each, float32
            extensions = rib_extension(q_pos, k_pos, self.head_dim)  # (heads, N, P) each
            scale = 1.0  # q's rows of the projection were scaled by D^-1/2 already
        else:
            zeros = windows.new_zeros(self.heads, win_h * win_w, -self.head_dim % PAD_MULTIPLE)
            extensions = (zeros, zeros, zeros)
            scale = self.head_dim**-0.5
        q, k, v = (
            append_channels(part, ext.to(part.dtype).unflatten(1, (win_h, win_w)).permute(1, 2, 0, 3))
            .flatten(0, 2).flatten(1, 2).transpose(1, 2)  # (B*, heads, N, d+P), memory (B*, N, heads, d+P)
            for part, ext in zip(windows.unbind(0), extensions)
        )
        if self.rpb is not None:
            out = rpb_attention(q, k, v, self.rpb, backend, scale=scale)
        else:
            out = dot_product_attention(q, k, v, scale, backend)
        return out[..., : self.head_dim]
