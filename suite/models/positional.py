"""Positional biases for window attention: the RPB table (Swin), the rank-factorised implicit bias (RIB)
and fixed low-rank factors (`lowrank`, e.g. an RPB table factorised by truncated SVD).

All are small modules that only produce positional terms; the attention kernels that consume them
live in `suite.models.attention`.
"""

from __future__ import annotations

import torch
from torch import nn


def relative_position_index(window: int) -> torch.Tensor:
    """Index into a `(2w-1)^2` table for every token pair of a `w x w` window.

    Returns a long tensor of shape (N, N), N = w*w, with
    `index[i, j] = (y_i - y_j + w - 1) * (2w - 1) + (x_i - x_j + w - 1)`.
    """
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()  # (N,)
    dy = ys[:, None] - ys[None, :] + window - 1  # (N, N)
    dx = xs[:, None] - xs[None, :] + window - 1  # (N, N)
    return dy * (2 * window - 1) + dx


def window_coordinates(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Token centres of a `height x width` window, normalised to [-1, 1] per axis: (N, 2) as (y, x)."""
    # 2 (c + 0.5) / w - 1, in this order as the official code computes it: (c + 0.5) * (2 / w) differs in
    # the last bit for windows that are not powers of two (48, 96), which sin(2^9 p) amplifies.
    ys = 2.0 * (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height - 1.0
    xs = 2.0 * (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width - 1.0
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_y.flatten(), grid_x.flatten()], dim=-1)


def fourier_features(coords: torch.Tensor, levels: int) -> torch.Tensor:
    """`[p, sin(2^i p), cos(2^i p)]` for i < levels: (N, 2) -> (N, 2 + 4 * levels)."""
    freqs = 2.0 ** torch.arange(levels, device=coords.device, dtype=coords.dtype)  # (L,)
    angles = (coords[:, :, None] * freqs).flatten(1)  # (N, 2L)
    return torch.cat([coords, angles.sin(), angles.cos()], dim=-1)


class RelativePositionBias(nn.Module):
    """Swin-style learned table `(heads, (2w-1)^2)` gathered to a dense `(1, heads, N, N)` bias."""

    def __init__(self, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.table = nn.Parameter(torch.empty(heads, (2 * window - 1) ** 2))
        nn.init.trunc_normal_(self.table, std=0.02)
        self.register_buffer("index", relative_position_index(window).flatten(), persistent=False)

    def forward(self) -> torch.Tensor:
        n = self.window * self.window
        # index_select, not `table[:, index]`: its backward is an index_add, several times faster on CPU
        # than the accumulating index_put that advanced indexing runs.
        return self.table.index_select(1, self.index).view(1, self.heads, n, n)  # (1, heads, N, N)


class ImplicitNeuralBias(nn.Module):
    """RIB: an MLP of Fourier-encoded window coordinates giving per-head rank-R factors Q_p, K_p.

    `B ~= Q_p K_p^T / sqrt(R)` is never formed; the factors are concatenated to q and k instead.
    """

    def __init__(self, heads: int, rank: int, fourier_levels: int = 10, hidden: int = 32) -> None:
        super().__init__()
        self.heads = heads
        self.rank = rank
        self.fourier_levels = fourier_levels
        self.mlp = nn.Sequential(nn.Linear(2 + 4 * fourier_levels, hidden), nn.ReLU())
        self.to_q = nn.Linear(hidden, heads * rank, bias=False)
        self.to_k = nn.Linear(hidden, heads * rank, bias=False)
        # Small factors: the bias starts near zero, so training begins from plain attention.
        nn.init.normal_(self.to_q.weight, std=0.05)
        nn.init.normal_(self.to_k.weight, std=0.05)

    def forward(self, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Factors for a `height x width` window: two tensors (heads, N, R), float32 (float64 for a
        float64 module)."""
        # float32 at least, even under autocast or in a bfloat16 module: high Fourier frequencies lose
        # their phase in bf16. (Casting float32 weights to float32 is free and changes nothing.)
        dtype = torch.promote_types(self.to_q.weight.dtype, torch.float32)
        linear, hidden_layer = nn.functional.linear, self.mlp[0]
        with torch.autocast(device_type=device.type, enabled=False):
            feats = fourier_features(window_coordinates(height, width, device), self.fourier_levels).to(dtype)
            hidden = torch.relu(linear(feats, hidden_layer.weight.to(dtype), hidden_layer.bias.to(dtype)))  # (N, hidden)
            n = hidden.shape[0]
            q_pos = linear(hidden, self.to_q.weight.to(dtype)).view(n, self.heads, self.rank).transpose(0, 1)
            k_pos = linear(hidden, self.to_k.weight.to(dtype)).view(n, self.heads, self.rank).transpose(0, 1)
        return q_pos, k_pos

    def dense_bias(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """The bias RIB stands for, built explicitly: (1, heads, N, N). For tests and analysis only."""
        q_pos, k_pos = self(height, width, device)
        return (q_pos @ k_pos.transpose(-2, -1) * self.rank**-0.5).unsqueeze(0)


class LowRankBias(nn.Module):
    """A learned rank-R bias `B = Q_p K_p^T` per head, stored as its factors for one fixed `w x w` window.

    The factors are plain parameters (heads, N, R), N = w*w, one row per token of the window: nothing
    computes them, so like RPB the layer is tied to its window. They carry their own scale (no 1/sqrt(R)):
    an SVD `B = U S V^T` loads as `Q_p = U_R sqrt(S_R)`, `K_p = V_R sqrt(S_R)` (suite.analysis.lowrank).
    Attention concatenates them to q and k exactly as it does RIB's, so flash kernels run and nothing
    N x N is built. Init N(0, 0.02): the bias starts near zero, so the layer also trains from scratch.
    """

    def __init__(self, heads: int, window: int, rank: int) -> None:
        super().__init__()
        tokens = window * window
        if not 0 < rank <= tokens:
            raise ValueError(f"low-rank bias rank {rank} must be in 1..{tokens} (N = {window}^2 tokens "
                             f"of a {window}x{window} window)")
        self.heads, self.window, self.rank = heads, window, rank
        self.q_factors = nn.Parameter(torch.empty(heads, tokens, rank))
        self.k_factors = nn.Parameter(torch.empty(heads, tokens, rank))
        nn.init.normal_(self.q_factors, std=0.02)
        nn.init.normal_(self.k_factors, std=0.02)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The factors Q_p, K_p: two tensors (heads, N, R)."""
        return self.q_factors, self.k_factors

    def dense_bias(self) -> torch.Tensor:
        """The bias the factors stand for, built explicitly: (1, heads, N, N). For tests and analysis only."""
        return (self.q_factors @ self.k_factors.transpose(-2, -1)).unsqueeze(0)
