"""The SR transformer of SPEC section 4: windowed attention layers with a convolutional gate,
cyclic window sizes per block, a ConvFFN, a body tail and an upsampler over a global residual.
The network options (upsampler kind, body tail, LayerNorm eps, init, large windows) are described
in `suite.models.presets`.

The body keeps feature maps channels-last, (B, H, W, C); convolutions permute locally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from suite.models.attention import WindowAttention
from suite.models.biases import REGISTRY
from suite.models.positional import own_random_stream

LISTED = 12  # keys listed per kind of state-dict mismatch; the count says how many there are


def describe_mismatch(missing: Sequence[str], unexpected: Sequence[str], misshaped: Sequence[str]) -> str | None:
    """'missing (N): a, b ...; unexpected (M): ...; mis-shaped (K): ...' of a state dict that does not fit a
    network, or None when it fits."""
    parts = [
        f"{label} ({len(items)}): {', '.join(items[:LISTED])}" + (" ..." if len(items) > LISTED else "")
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
        if items
    ]
    return "; ".join(parts) or None


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
    """LayerNorm -> gated window attention (+res) -> LayerNorm -> ConvFFN (+res), on (B, H, W, C).

    A bias with `conv_before_attention` (CPE) first adds a depthwise 3x3 convolution of the layer's input
    to it (`x = x + cpe(x)`, as the official block does).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int,
        rank: int,
        exp_ratio: float,
        norm_eps: float,
        bias: str = "rib",
        **attn_kwargs,
    ) -> None:
        super().__init__()
        conv = REGISTRY[bias].conv_before_attention
        with own_random_stream():
            self.cpe = nn.Conv2d(dim, dim, 3, padding=1, groups=dim) if conv else None
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.gate = LocalAttentionGate(dim)
        self.attn = WindowAttention(dim, heads, window, bias=bias, rank=rank, **attn_kwargs)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.ffn = ConvFFN(dim, exp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cpe is not None:
            x = x + self.cpe(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        normed = self.norm1(x)
        x = x + self.attn(normed, gate=self.gate(normed))
        return x + self.ffn(self.norm2(x))


class ResidualBlock(nn.Module):
    """Layers with cycling window sizes, then a 3x3 conv, with a residual around the block."""

    def __init__(
        self,
        dim: int,
        heads: int,
        window_sizes: Sequence[int],
        ranks: Sequence[int],
        exp_ratio: float,
        norm_eps: float,
        **attn_kwargs,
    ) -> None:
        super().__init__()
        # Equal windows everywhere would keep every border in place: shift alternate layers instead.
        shift_alternate = len(set(window_sizes)) == 1 and len(window_sizes) > 1
        self.layers = nn.ModuleList(
            TransformerLayer(
                dim, heads, window, rank, exp_ratio, norm_eps, shift=shift_alternate and i % 2 == 1, **attn_kwargs
            )
            for i, (window, rank) in enumerate(zip(window_sizes, ranks))
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for layer in self.layers:
            y = layer(y)
        return x + self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class Upsampler(nn.Module):
    """The official upsamplers, (B, C, h, w) features and the (B, 3, h, w) input -> (B, 3, h*s, w*s).

    `pixelshuffle`: conv3x3 C -> I, LeakyReLU(0.1), conv3x3 I -> I*s^2, pixel shuffle, conv3x3 I -> 3,
    plus the input upsampled by nearest neighbour. `pixelshuffle_direct`: conv3x3 C -> 3*s^2 plus the
    input repeated s^2 times per channel (nearest neighbour before the shuffle), pixel shuffle.
    """

    def __init__(self, kind: str, dim: int, scale: int, inner: int | None = None) -> None:
        super().__init__()
        self.kind, self.scale = kind, scale
        if kind == "pixelshuffle":
            self.feature_conv = nn.Conv2d(dim, inner, 3, padding=1)
            self.up_conv = nn.Conv2d(inner, inner * scale * scale, 3, padding=1)
            self.final_conv = nn.Conv2d(inner, 3, 3, padding=1)
        elif kind == "pixelshuffle_direct":
            self.up_conv = nn.Conv2d(dim, 3 * scale * scale, 3, padding=1)
        else:
            raise ValueError(f"unknown upsampler {kind!r}; expected pixelshuffle or pixelshuffle_direct")

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if self.kind == "pixelshuffle_direct":
            out = self.up_conv(features) + image.repeat_interleave(self.scale * self.scale, dim=1)
            return F.pixel_shuffle(out, self.scale)
        out = F.leaky_relu(self.feature_conv(features), negative_slope=0.1)
        out = self.final_conv(F.pixel_shuffle(self.up_conv(out), self.scale))
        return out + F.interpolate(image, scale_factor=self.scale, mode="nearest")


def _official_init(modules: list[nn.Module]) -> None:
    """Linear and 1x1 convs trunc-normal std 0.02, zero biases; 3x3 convs keep torch's default weights."""
    for module in modules:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            if isinstance(module, nn.Linear) or module.kernel_size == (1, 1):
                nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class SRTransformer(nn.Module):
    """(B, 3, h, w) in [0, 1] -> (B, 3, h*s, w*s): conv head, residual blocks, body tail, upsampler.

    `body_tail="norm_conv"` (official): `feat + conv3x3(LayerNorm(blocks(feat)))`, then `upsampler`
    ("pixelshuffle" or "pixelshuffle_direct", nearest residual). `body_tail="norm"` with
    `upsampler="bicubic"` (the tiny preset): `LayerNorm(blocks(feat))`, a zero-initialised conv3x3 to
    3*s^2, pixel shuffle, plus the bicubic-upsampled input.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        """`config`: a resolved model config (suite.models.presets.resolve_model_config), kept as
        `self.config` so that a checkpoint can rebuild the network."""
        super().__init__()
        self.config = dict(config)
        scale, dim, bias = config["scale"], config["dim"], config["bias"]
        upsampler, body_tail, norm_eps = config["upsampler"], config["body_tail"], config["norm_eps"]
        if (upsampler == "bicubic") != (body_tail == "norm"):
            raise ValueError(
                f"upsampler {upsampler!r} and body_tail {body_tail!r} do not go together: "
                "the bicubic upsampler goes with body_tail 'norm', the official ones with 'norm_conv'"
            )
        self.scale = scale
        self.head = nn.Conv2d(3, dim, 3, padding=1)
        self.blocks = nn.ModuleList(
            ResidualBlock(
                dim,
                config["heads"],
                config["window_sizes"],
                config["ranks"],
                config["exp_ratio"],
                norm_eps,
                bias=bias,
                backend=config["backend"],
                large_windows=config["large_windows"],
                **{key: config[key] for key in REGISTRY[bias].params},
            )
            for _ in range(config["n_blocks"])
        )
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        if upsampler == "bicubic":
            self.tail_conv = None
            self.to_pixels = nn.Conv2d(dim, 3 * scale * scale, 3, padding=1)
            # Zero init: the network starts as bicubic interpolation and learns the residual.
            nn.init.zeros_(self.to_pixels.weight)
            nn.init.zeros_(self.to_pixels.bias)
            self.shuffle = nn.PixelShuffle(scale)
        else:
            self.tail_conv = nn.Conv2d(dim, dim, 3, padding=1)
            self.upsampler = Upsampler(upsampler, dim, scale, config["upsampler_dim"])
        if config["init"] == "official":
            self.official_init()

    def official_init(self) -> None:
        """The official initialisation (SPEC section 4): Linear and 1x1 convs trunc-normal std 0.02 with
        zero bias, 3x3 convs torch's default weights with zero bias, then each positional module's own
        `official_init` (RIB N(0, 0.05) with zero hidden bias, RIB-SIREN's SIREN init, the RPB table
        N(0, 1e-3), per-token factors their configured init). The positional modules draw from streams of
        their own (`own_random_stream`), so the other weights are the same whatever the bias."""
        roots = self.positional_modules()
        inside = {id(module) for root in roots for module in root.modules()}
        _official_init([module for module in self.modules() if id(module) not in inside])
        for index, root in enumerate(roots):
            with own_random_stream(salt=index):
                _official_init(list(root.modules()))
                if hasattr(root, "official_init"):
                    root.official_init()

    def attention_layers(self) -> list[WindowAttention]:
        return [layer.attn for block in self.blocks for layer in block.layers]

    def positional_modules(self) -> list[nn.Module]:
        """The positional bias's own modules: every attention layer's positional module (RPB's table, RIB's MLP,
        ...) and CPE's convolutions."""
        found = []
        for block in self.blocks:
            for layer in block.layers:
                found += [module for module in (layer.cpe, layer.attn.positional) if module is not None]
        return found

    def positional_parameters(self) -> list[nn.Parameter]:
        """The positional bias's own weights: what a recipe's `optim.positional_lr_scale` applies to."""
        return [param for module in self.positional_modules() for param in module.parameters()]

    def set_window_sizes(self, window_sizes: Sequence[int]) -> None:
        """Run every block at new window sizes (a bias tied to its window raises ValueError)."""
        for block in self.blocks:
            if len(window_sizes) != len(block.layers):
                raise ValueError(f"expected {len(block.layers)} window sizes per block, got {len(window_sizes)}")
            for layer, window in zip(block.layers, window_sizes):
                layer.attn.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x).permute(0, 2, 3, 1)  # (B, h, w, C)
        body = features
        for block in self.blocks:
            body = block(body)
        body = self.norm(body).permute(0, 3, 1, 2)  # (B, C, h, w)
        if self.tail_conv is None:
            upsampled = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
            return self.shuffle(self.to_pixels(body)) + upsampled
        features = features.permute(0, 3, 1, 2) + self.tail_conv(body)  # the long skip around the body
        return self.upsampler(features, x)
