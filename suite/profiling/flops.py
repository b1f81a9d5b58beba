"""Analytic FLOP count of the SR transformer from its config and the input size.

Counts what `torch.utils.flop_counter` counts (`flop_counter`) (matrix products and convolutions, 2 FLOPs per
multiply-add, no bias adds, no element-wise work) so the two agree exactly on the forward pass.
A training step is counted as 3x the forward (the backward pass as twice the forward), the usual
approximation. Attention is counted per window as `2 N^2 d` for `q k^T` plus `2 N^2 d` for the
product with `v`, with `d` the kernel's head dim: D, or D + R for the factored biases, padded to a multiple
of 8; what a bias computes besides (RIB's MLP, CPE's convolution) is its registry entry's `flops`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, addmm_flop

from suite.models.attention import PAD_MULTIPLE
from suite.models.biases import FACTORED_BIASES, FIXED_WINDOW_BIASES, REGISTRY

TRAIN_FACTOR = 3


def flop_counter() -> FlopCounterMode:
    """torch's FLOP counter, also counting the in-place `addmm_` as the `addmm` it is: the factored biases'
    q, k, v projection accumulates into its positional rows in place, which torch's registry leaves out.
    (`addmm_flop` is registered wrapped; the mapping wraps what it is given, so it takes the raw formula.)"""
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: addmm_flop.__wrapped__})


def ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def window_shape(bias: str, window: int, height: int, width: int, large_windows: str = "clamp") -> tuple[int, int]:
    """The (win_h, win_w) a layer uses on an (height, width) map, as `WindowAttention.window_shape`:
    biases whose weights fix the window, and any bias with `large_windows="pad"` (the official presets),
    pad the map up to the window; the others with "clamp" shrink the window to the map."""
    if bias in FIXED_WINDOW_BIASES or large_windows == "pad":
        return window, window
    return min(window, height), min(window, width)


def attention_head_dim(bias: str, head_dim: int, rank: int) -> int:
    """Head dim the attention kernel sees: D + R (the factored biases) or D, padded to a multiple of 8
    (every variant projects straight into that layout)."""
    return ceil_to(head_dim + (rank if bias in FACTORED_BIASES else 0), PAD_MULTIPLE)


def attention_flops(n_windows: int, heads: int, tokens: int, kernel_head_dim: int) -> int:
    """`q k^T` and `p v` over n_windows windows of `tokens` tokens: 4 N^2 d per head and window."""
    return 4 * n_windows * heads * tokens * tokens * kernel_head_dim


def forward_flops(config: dict[str, Any], batch: int, height: int, width: int) -> int:
    """FLOPs of one forward of `build_model(**config)` on a (batch, 3, height, width) input."""
    dim, heads = config["dim"], config["heads"]
    bias = config["bias"]
    head_dim = dim // heads
    hidden = int(round(dim * config["exp_ratio"]))
    tokens = batch * height * width
    total = 2 * tokens * 3 * dim * 9  # head conv 3x3
    for _ in range(config["n_blocks"]):
        for window, rank in zip(config["window_sizes"], config["ranks"], strict=True):
            win_h, win_w = window_shape(bias, window, height, width, config.get("large_windows", "clamp"))
            padded_h, padded_w = ceil_to(height, win_h), ceil_to(width, win_w)
            n_windows = batch * (padded_h // win_h) * (padded_w // win_w)
            n = win_h * win_w
            total += 2 * tokens * dim * 9 + 2 * tokens * dim * dim  # gate: depthwise 3x3, pointwise
            kernel_dim = attention_head_dim(bias, head_dim, rank)
            total += 2 * tokens_padded(batch, height, width, win_h, win_w) * dim * 3 * heads * kernel_dim  # qkv
            total += attention_flops(n_windows, heads, n, kernel_dim)
            total += REGISTRY[bias].flops(config, tokens, n, rank)  # RIB's MLP, CPE's convolution, ...
            total += 2 * tokens * dim * dim  # output projection
            total += 2 * tokens * dim * hidden * 2 + 2 * tokens * hidden * 9  # ConvFFN
        total += 2 * tokens * dim * dim * 9  # block conv 3x3
    return total + tail_flops(config, batch, height, width)


def tail_flops(config: dict[str, Any], batch: int, height: int, width: int) -> int:
    """The body tail and the upsampler (SPEC section 4): tiny's conv3x3 to pixels, or the official body
    conv3x3 and `pixelshuffle` (conv C -> I, conv I -> I*s^2, conv I -> 3 at HR) / `pixelshuffle_direct`."""
    dim, scale = config["dim"], config["scale"]
    tokens = batch * height * width
    upsampler = config.get("upsampler", "bicubic")
    if upsampler == "bicubic":
        return 2 * tokens * dim * 3 * scale * scale * 9  # to_pixels conv 3x3
    total = 2 * tokens * dim * dim * 9  # body tail conv 3x3
    if upsampler == "pixelshuffle_direct":
        return total + 2 * tokens * dim * 3 * scale * scale * 9
    inner = config["upsampler_dim"]
    total += 2 * tokens * dim * inner * 9 + 2 * tokens * inner * inner * scale * scale * 9
    return total + 2 * tokens * scale * scale * inner * 3 * 9  # final conv at HR resolution


def tokens_padded(batch: int, height: int, width: int, win_h: int, win_w: int) -> int:
    """Tokens the qkv projection sees: the map is padded to whole windows before it."""
    return batch * ceil_to(height, win_h) * ceil_to(width, win_w)


def step_flops(config: dict[str, Any], phase: str, batch: int, patch: int) -> int:
    """FLOPs of one profiled iteration: a forward (infer) or a training step (3x forward)."""
    forward = forward_flops(config, batch, patch, patch)
    return forward * TRAIN_FACTOR if phase == "train" else forward
