"""The SR transformer of SPEC section 4: windowed attention layers with a convolutional gate,
cyclic window sizes per block, a ConvFFN, and a pixel-shuffle upsampler over a bicubic residual.

The body keeps feature maps channels-last, (B, H, W, C); convolutions permute locally.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from suite.models.attention import WindowAttention


class LocalAttentionGate(nn.Module):
    """`sigmoid(conv1x1(dwconv3x3(x)))`: local detail that the windows lose, (B, H, W, C) -> same."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.pointwise = nn.Linear(dim, dim)  # a 1x1 conv on channels-last maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return torch.sigmoid(self.pointwise(local))


class ConvFFN(nn.Module):
    """1x1 conv up, GELU, depthwise 3x3 conv with GELU and its own residual, 1x1 conv down."""

    def __init__(self, dim: int, exp_ratio: float) -> None:
        super().__init__()
        hidden = int(round(dim * exp_ratio))
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.gelu(self.fc1(x))  # (B, H, W, hidden)
        local = F.gelu(self.dwconv(hidden.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        return self.fc2(hidden + local)


class TransformerLayer(nn.Module):
    """LayerNorm -> gated window attention (+res) -> LayerNorm -> ConvFFN (+res), on (B, H, W, C)."""

    def __init__(self, dim: int, heads: int, window: int, rank: int, exp_ratio: float, **attn_kwargs) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.gate = LocalAttentionGate(dim)
        self.attn = WindowAttention(dim, heads, window, rank=rank, **attn_kwargs)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = ConvFFN(dim, exp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(x)
        x = x + self.attn(normed, gate=self.gate(normed))
        return x + self.ffn(self.norm2(x))


class ResidualBlock(nn.Module):
    """Layers with cycling window sizes, then a 3x3 conv, with a residual around the block."""

    def __init__(
        self, dim: int, heads: int, window_sizes: Sequence[int], ranks: Sequence[int], exp_ratio: float, **attn_kwargs
    ) -> None:
        super().__init__()
        # Equal windows everywhere would keep every border in place: shift alternate layers instead.
        shift_alternate = len(set(window_sizes)) == 1 and len(window_sizes) > 1
        self.layers = nn.ModuleList(
            TransformerLayer(dim, heads, window, rank, exp_ratio, shift=shift_alternate and i % 2 == 1, **attn_kwargs)
            for i, (window, rank) in enumerate(zip(window_sizes, ranks))
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for layer in self.layers:
            y = layer(y)
        return x + self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class SRTransformer(nn.Module):
    """(B, 3, h, w) in [0, 1] -> (B, 3, h*s, w*s): conv head, residual blocks, pixel-shuffle upsampler."""

    def __init__(
        self,
        scale: int,
        dim: int,
        n_blocks: int,
        heads: int,
        window_sizes: Sequence[int],
        ranks: Sequence[int],
        exp_ratio: float,
        bias: str = "rib",
        backend: str = "auto",
        fourier_levels: int = 10,
        mlp_hidden: int = 32,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, dim, 3, padding=1)
        self.blocks = nn.ModuleList(
            ResidualBlock(
                dim, heads, window_sizes, ranks, exp_ratio,
                bias=bias, backend=backend, fourier_levels=fourier_levels, mlp_hidden=mlp_hidden,
            )
            for _ in range(n_blocks)
        )
        self.norm = nn.LayerNorm(dim)
        self.to_pixels = nn.Conv2d(dim, 3 * scale * scale, 3, padding=1)
        # Zero init: the network starts as bicubic interpolation and learns the residual.
        nn.init.zeros_(self.to_pixels.weight)
        nn.init.zeros_(self.to_pixels.bias)
        self.shuffle = nn.PixelShuffle(scale)
        self.config: dict = {}  # filled by build_model so a checkpoint can rebuild the network

    def attention_layers(self) -> list[WindowAttention]:
        return [layer.attn for block in self.blocks for layer in block.layers]

    def set_window_sizes(self, window_sizes: Sequence[int]) -> None:
        """Run every block at new window sizes (RIB and none only; RPB raises ValueError)."""
        for block in self.blocks:
            if len(window_sizes) != len(block.layers):
                raise ValueError(f"expected {len(block.layers)} window sizes per block, got {len(window_sizes)}")
            for layer, window in zip(block.layers, window_sizes):
                layer.attn.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x).permute(0, 2, 3, 1)  # (B, h, w, C)
        for block in self.blocks:
            features = block(features)
        features = self.norm(features).permute(0, 3, 1, 2)  # (B, C, h, w)
        upsampled = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.shuffle(self.to_pixels(features)) + upsampled
