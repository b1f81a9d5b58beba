"""Window self-attention with an interchangeable positional bias (any bias of `suite.models.biases`, which
says how attention consumes it) and kernel backend. The factored biases (RIB, RIB-SIREN, `lowrank`,
`flashbias`) run through one concatenation path, so they take every backend RIB takes.

Kernels work on `(batch*windows, heads, N, d)` tensors. Backends:
- `math`: explicit `softmax(q k^T * scale + B) v`.
- `sdpa`: `torch.nn.functional.scaled_dot_product_attention` (a dense mask for RPB).
- `flex`: FlexAttention; RPB reads its table inside a compiled `score_mod`, nothing N x N is built.
  (On CPU, torch implements its forward only.)
- `flash`: the flash-attn package when it imports (CUDA, fp16/bf16), else SDPA restricted to the
  FLASH_ATTENTION and CUDNN_ATTENTION backends. No additive bias: RPB cannot use it (the factored biases
  can: their factors travel in extra channels of q and k; RoPE rotates q and k before the kernel).
- `auto`: the fastest valid backend for the bias, the device, the dtype and whether a gradient is needed.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from suite.models.biases import BIAS_PARAMS, POSITIONAL_MODULES, REGISTRY
from suite.models.options import check_pair, check_precision
from suite.models.positional import RelativePositionBias, own_random_stream

PAD_MULTIPLE = 8  # flash kernels want head dims that are multiples of 8
HALF_DTYPES = (torch.float16, torch.bfloat16)


def apply_precision(model: nn.Module, precision: str) -> torch.dtype | None:
    """Apply a precision to every WindowAttention in `model` (a network or one layer); return the dtype
    the caller runs the forward under `torch.autocast` with, or None for no autocast.

    `attention-bf16` (the official setting) makes each attention layer cast q, k, v and RIB's factors to
    bfloat16 for the kernel only, the rest staying float32; `autocast-bf16` returns torch.bfloat16;
    `fp32` undoes both.
    """
    check_precision(precision)
    for module in model.modules():
        if isinstance(module, WindowAttention):
            module.attention_dtype = torch.bfloat16 if precision == "attention-bf16" else None
    return torch.bfloat16 if precision == "autocast-bf16" else None


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


def explain_backend(
    bias: str, device: torch.device, dtype: torch.dtype | None = None, needs_grad: bool = False
) -> tuple[str, str]:
    """The backend `auto` picks for this bias, device, dtype and phase, and why, in one line.

    CUDA: RPB (an additive bias) uses FlexAttention (SDPA where it failed to compile); every bias flash
    kernels can run uses them in fp16/bf16 (also when `dtype` is not given) and SDPA in fp32, which flash
    kernels lack. CPU: those use SDPA (its CPU flash kernel); RPB uses SDPA when its bias needs no gradient
    (the CPU flash kernel takes a constant mask) and `math` when it does (`needs_grad`), because SDPA
    then falls back to a math path of its own that is slower.
    """
    check_pair(bias, "auto")
    additive = not REGISTRY[bias].flash
    where = f"{device.type.upper()}, {REGISTRY[bias].label}"
    if device.type == "cuda":
        if additive:
            failure = _flex_unavailable.get("cuda")
            if failure is not None:
                return "sdpa", f"{where}: FlexAttention failed to compile here ({failure}): SDPA with a dense mask"
            return "flex", f"{where}: FlexAttention reads the table in its score_mod (flash kernels take no bias)"
        if dtype is not None and dtype not in HALF_DTYPES:
            return "sdpa", f"{where}, {str(dtype).replace('torch.', '')}: SDPA (flash kernels need fp16/bf16)"
        source = "flash-attn" if flash_attn_func() is not None else "SDPA's FLASH/CUDNN kernels (flash-attn absent)"
        return "flash", f"{where}, half precision: flash kernels through {source}"
    if additive and needs_grad:
        return "math", f"{where} with gradient: math (SDPA would fall back to its own slower math path)"
    return (
        "sdpa",
        f"{where}: SDPA (its CPU flash kernel{f'; the {REGISTRY[bias].label} mask is constant' if additive else ''})",
    )


def resolve_backend(
    bias: str, backend: str, device: torch.device, dtype: torch.dtype | None = None, needs_grad: bool = False
) -> str:
    """Turn `auto` into a concrete backend (the rule and its reasons: `explain_backend`); others pass through."""
    check_pair(bias, backend)
    if backend != "auto":
        return backend
    return explain_backend(bias, device, dtype, needs_grad)[0]


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


def reflect_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Reflect-pad (B, H, W, C) by `pad_h` rows at the bottom and `pad_w` columns at the right.

    Where a pad reaches the side's length (a map far smaller than its window), `F.pad(mode="reflect")`
    refuses (the official code fails there); this reflects repeatedly instead, each round at most
    side - 1, so every padded value is a mirror image of one already there. A side of 1 is replicated.
    """
    if pad_h == 0 and pad_w == 0:
        return x
    x = x.permute(0, 3, 1, 2)  # (B, C, H, W)
    while pad_h > 0 or pad_w > 0:
        height, width = x.shape[2:]
        step_h = min(pad_h, max(height - 1, 0))
        step_w = min(pad_w, max(width - 1, 0))
        if step_h == 0 and step_w == 0:  # sides of length 1: nothing to mirror
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            break
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x.permute(0, 2, 3, 1)


def merge_windows_heads(out: torch.Tensor, batch: int, win_h: int, win_w: int, height: int, width: int) -> torch.Tensor:
    """(B*windows, heads, N, d), any strides -> (B, H, W, heads*d) in one copy; inverse of the window split."""
    _, heads, _, head_dim = out.shape
    x = out.transpose(1, 2).reshape(batch, height // win_h, width // win_w, win_h, win_w, heads, head_dim)
    return x.permute(0, 1, 3, 2, 4, 5, 6).reshape(batch, height, width, heads * head_dim)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows of a (B, H, W, C) map.

    The map is reflect-padded (bottom/right) to a multiple of the window and cropped back. A window
    larger than the map: biases tied to their window (RPB, `lowrank`, `flashbias`), and any bias with
    `large_windows="pad"` (the official behaviour), pad the map up to the window, and RIB's coordinates
    stay the configured window's; with `large_windows="clamp"` the window of a bias not tied to it
    shrinks to the map instead. `shift` rolls the map by half a window (no mask) for blocks whose windows
    are all equal.

    Every variant projects each window's tokens straight into a (D+P)-wide head layout, P making D+P a
    multiple of PAD_MULTIPLE (and, for the factored biases, holding the rank R): the extra channels come
    out of zero rows of the projection, and the positional factors are added into them in place, so q,
    k and v are never copied again before the kernel. `attention_dtype` (None, or torch.bfloat16 for the
    official `attention-bf16` precision) casts q, k, v (the factors included) for the kernel only.
    `bias_options` are the bias's own model fields (`BiasSpec.params`), defaults where not given.
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
        large_windows: str = "clamp",
        **bias_options,
    ) -> None:
        super().__init__()
        check_pair(bias, backend)
        spec = REGISTRY[bias]
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        if spec.uses_rank and rank <= 0:
            raise ValueError(f"{bias} rank must be positive, got {rank}")
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        if large_windows not in ("pad", "clamp"):
            raise ValueError(f"large_windows must be 'pad' or 'clamp', got {large_windows!r}")
        unknown = sorted(set(bias_options) - set(BIAS_PARAMS))
        if unknown:
            raise ValueError(f"unknown bias option(s) {', '.join(unknown)}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.bias_kind, self.backend, self.shift, self.large_windows = bias, backend, shift, large_windows
        self.spec = spec
        self._window = window
        self.attention_dtype: torch.dtype | None = None
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        for name in POSITIONAL_MODULES:  # absent ones read as None (`layer.rib is None` on an RPB layer)
            if name != spec.module:
                setattr(self, name, None)
        options = {key: bias_options.get(key, param.default) for key, param in spec.params.items()}
        if spec.build is not None:
            with own_random_stream():
                self.add_module(spec.module, spec.build(heads, self.head_dim, window, rank, options))
        if spec.kind == "rotary":  # the official RoPE runs at softmax scale 1 with q unscaled
            self.softmax_scale = 1.0 if options["rope_scale"] == "official" else self.head_dim**-0.5
        else:  # the factored biases' q rows carry D^-1/2 already (their factors unscaled): the kernel runs at 1
            self.softmax_scale = 1.0 if spec.factored else self.head_dim**-0.5
        extra = rank if spec.factored else 0
        self.extra_channels = extra + (-(self.head_dim + extra) % PAD_MULTIPLE)  # P
        # Scaling the q rows of the projection is C*C work, not N*C per window.
        qkv_scale = torch.ones(3 * dim)
        qkv_scale[:dim] = self.head_dim**-0.5
        self.register_buffer("qkv_scale", qkv_scale if spec.factored else None, persistent=False)
        self._cache: dict[str, tuple] = {}

    @property
    def positional(self) -> nn.Module | None:
        """The module computing the bias's positional term (None for `none` and `cpe`)."""
        return getattr(self, self.spec.module) if self.spec.module else None

    @property
    def window(self) -> int:
        return self._window

    @window.setter
    def window(self, size: int) -> None:
        if self.fixed_window and size != self.positional.window:
            trained = self.positional.window
            holds = (
                f"its relative-position table holds (2*{trained}-1)^2 entries"
                if self.spec.kind == "additive"
                else f"its factors hold one row per token of a {trained}x{trained} window"
            )
            free = ", ".join(name for name, spec in REGISTRY.items() if not spec.fixed_window)
            article = "an" if self.spec.label[0] in "AEIOR" else "a"
            raise ValueError(
                f"{article} {self.spec.label} layer trained at window {trained} cannot run at window {size}: "
                f"{holds}; only a bias not tied to its window can change window ({free})"
            )
        if size <= 0:
            raise ValueError(f"window must be positive, got {size}")
        self._window = size

    @property
    def fixed_window(self) -> bool:
        """Whether the bias is tied to the configured window (RPB's table, per-token factors)."""
        return self.spec.fixed_window

    def window_shape(self, height: int, width: int) -> tuple[int, int]:
        if self.fixed_window or self.large_windows == "pad":
            return self._window, self._window
        return min(self._window, height), min(self._window, width)

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, H, W, C); gate: optional (B, H, W, C) multiplying the output before projection."""
        batch, height, width, channels = x.shape
        win_h, win_w = self.window_shape(height, width)
        # Padding and rolling before the projection equal doing it after (the projection is per token),
        # and move C channels instead of 3C.
        x = reflect_pad(x, -height % win_h, -width % win_w)  # (B, Hp, Wp, C)
        padded_h, padded_w = x.shape[1:3]
        if self.shift:
            x = torch.roll(x, shifts=(-(win_h // 2), -(win_w // 2)), dims=(1, 2))
        tokens = (
            x.view(batch, padded_h // win_h, win_h, padded_w // win_w, win_w, channels)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(-1, win_h * win_w, channels)
        )  # (B*windows, N, C): one copy
        out = self.attend(tokens, win_h, win_w)  # (B*windows, heads, N, D), any strides
        out = merge_windows_heads(out, batch, win_h, win_w, padded_h, padded_w)  # (B, Hp, Wp, C)
        if self.shift:
            out = torch.roll(out, shifts=(win_h // 2, win_w // 2), dims=(1, 2))
        out = out[:, :height, :width]
        if gate is not None:
            out = out * gate
        return self.proj(out)

    def attend(self, tokens: torch.Tensor, win_h: int, win_w: int) -> torch.Tensor:
        """The attention the layer runs: window tokens (B*windows, N, C) -> (B*windows, heads, N, D).

        q, k, v projection into the (D+P)-wide layout with the bias's positional term (factors as a
        per-position projection bias, or q and k rotated), one kernel call.
        This is the method to benchmark: it is all the layer does per window besides the window
        split and merge and the output projection.
        """
        n = win_h * win_w
        kind, positional = self.spec.kind, self.positional
        weight, bias = self._cached("qkv", self._extended_projection, (self.qkv.weight, self.qkv.bias))
        if kind == "factored":
            # The factors enter as a per-position projection bias: the output starts as a copy of those rows
            # and the matmul accumulates into it, as F.linear does with its bias, so the factors cost no
            # pass of their own over the windows (results/profiles/cpu, attention rows: RIB / none@D+R at
            # window 8, forward, 1.25 with a separate add at 967ef9a, 1.05 [1.01, 1.11] at 4ed27a6).
            rows = self._cached(
                f"{self.bias_kind}{win_h}x{win_w}",
                lambda: self._positional_rows(bias, win_h, win_w, tokens.device),
                (self.qkv.weight, self.qkv.bias, *positional.parameters()),
                (tokens.device, win_h, win_w),
            )  # (N, 3*heads*(D+P))
            dtype = (
                torch.get_autocast_dtype(tokens.device.type)
                if torch.is_autocast_enabled(tokens.device.type)
                else tokens.dtype
            )
            # repeat copies the rows into a tensor of its own, even for one window: never a view of the cached
            # rows (the in-place product would write into them) nor a view at all (an in-place op on a view
            # costs autograd a copy of the whole output in the backward)
            qkv = rows.to(dtype).repeat(tokens.shape[0], 1)  # (B*windows*N, 3*heads*(D+P))
            qkv.addmm_(tokens.reshape(-1, self.dim).to(dtype), weight.t().to(dtype))
        else:
            qkv = F.linear(tokens, weight, bias)
        qkv = qkv.view(-1, n, 3, self.heads, self.head_dim + self.extra_channels)
        compute_dtype = qkv.dtype  # the activations' (bfloat16 under autocast); the output returns to it
        if kind == "rotary":
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B*, heads, N, D+P) views
            cos, sin = self._cached(
                f"rope{win_h}x{win_w}",
                lambda: positional.angles(win_h, win_w, tokens.device),
                tuple(positional.parameters()) + tuple(positional.buffers()),
                (tokens.device, win_h, win_w),
            )
            q, k = positional.rotate(q, cos, sin), positional.rotate(k, cos, sin)
            if self.attention_dtype is not None:
                q, k, v = (t.to(self.attention_dtype) for t in (q, k, v))
        else:
            if self.attention_dtype is not None:
                qkv = qkv.to(self.attention_dtype)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B*, heads, N, D+P) views, memory (B*, N, heads)
        needs_grad = torch.is_grad_enabled() and kind == "additive" and positional.table.requires_grad
        backend = resolve_backend(self.bias_kind, self.backend, q.device, q.dtype, needs_grad)
        if kind == "additive":
            out = rpb_attention(q, k, v, positional, backend, scale=self.softmax_scale)
        else:
            out = dot_product_attention(q, k, v, self.softmax_scale, backend)
        return out[..., : self.head_dim].to(compute_dtype)

    def _extended_projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        """qkv weight (3*heads*(D+P), C) and bias: the layer's, q rows scaled by D^-1/2 for the factored
        biases, with P zero rows per head."""
        weight, bias = self.qkv.weight, self.qkv.bias
        if self.qkv_scale is not None:
            weight, bias = weight * self.qkv_scale[:, None], bias * self.qkv_scale
        rows = (3, self.heads, self.head_dim)
        weight = F.pad(weight.view(*rows, self.dim), (0, 0, 0, self.extra_channels)).flatten(0, 2)
        bias = F.pad(bias.view(rows), (0, self.extra_channels)).flatten()
        return weight, bias

    def _positional_rows(self, bias: torch.Tensor, win_h: int, win_w: int, device: torch.device) -> torch.Tensor:
        """The projection's bias (3*heads*(D+P),) plus `[0, Q_p']` and `[0, K_p]` in the q and k rows of each
        head, per window position: (N, 3*heads*(D+P)). `Q_p' = Q_p / sqrt(R)` for RIB, RIB-SIREN and
        `flashbias` (float32 for RIB's MLP), `Q_p' = Q_p` for `lowrank` (its factors carry their scale)."""
        q_pos, k_pos = self.positional(win_h, win_w, device)  # (heads, N, R) each
        rank = q_pos.shape[-1]
        if self.spec.factor_scale == "rsqrt_rank":
            q_pos = q_pos * rank**-0.5
        factors = torch.stack([q_pos, k_pos, torch.zeros_like(q_pos)], dim=1)  # (heads, 3, N, R): v rows get none
        factors = F.pad(factors, (self.head_dim, self.extra_channels - rank))  # (heads, 3, N, D+P)
        return bias + factors.permute(2, 1, 0, 3).flatten(1)

    def _cached(self, name: str, compute: Callable, params: tuple[torch.Tensor, ...], extra: tuple = ()):
        """`compute()`, remembered in eval mode without autograd and recomputed whenever it could differ.

        The entry keeps detached aliases of `params`: they share storage and version counter with the
        parameters, so any in-place update (optimizer step, load_state_dict) bumps the version, and a
        moved or re-typed parameter (`.to()`, `.data = ...`) has another storage; while the entry lives
        its storage cannot be reused by another tensor. In training or with autograd on it is computed
        afresh so gradients flow.
        """
        if self.training or torch.is_grad_enabled():
            self._cache.pop(name, None)
            return compute()
        entry = self._cache.get(name)
        if entry is not None:
            aliases, versions, old_extra, value = entry
            if old_extra == extra and all(
                alias.data_ptr() == p.data_ptr()
                and alias.dtype == p.dtype
                and alias.device == p.device
                and alias.shape == p.shape
                and version == p._version
                for alias, version, p in zip(aliases, versions, params)
            ):
                return value
        value = compute()
        self._cache[name] = (tuple(p.detach() for p in params), tuple(p._version for p in params), extra, value)
        return value
