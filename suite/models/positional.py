"""Positional terms for window attention: the RPB table (Swin), the rank-factorised implicit bias (RIB,
and its sine-network form RIB-SIREN), learned per-token factors (`lowrank`, `flashbias`) and the 2-D
rotary embedding (RoPE).

All are small modules that only produce positional terms; which bias uses which module, and how attention
consumes it, is declared in `suite.models.biases`; the kernels live in `suite.models.attention`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def own_random_stream(salt: int = 0) -> Iterator[None]:
    """Draw a positional module's weights from a stream of its own, seeded from the global CPU generator's state
    (and `salt`) and leaving that state as it was: the rest of the network then draws the same weights whatever
    its bias, so two biases trained with one seed differ in the bias, not in the other weights' start (common
    random numbers, which is what makes a comparison paired by seed tight)."""
    state = torch.random.get_rng_state().numpy().tobytes()
    seed = int.from_bytes(hashlib.sha256(state + salt.to_bytes(8, "little")).digest()[:8], "little")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed & (2**63 - 1))
        yield


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

    def official_init(self) -> None:
        nn.init.normal_(self.table, std=1e-3)

    def forward(self) -> torch.Tensor:
        n = self.window * self.window
        # index_select, not `table[:, index]`: its backward is an index_add, several times faster on CPU
        # than the accumulating index_put that advanced indexing runs.
        return self.table.index_select(1, self.index).view(1, self.heads, n, n)  # (1, heads, N, N)


class ImplicitNeuralBias(nn.Module):
    """RIB: an MLP of Fourier-encoded window coordinates giving per-head rank-R factors Q_p, K_p.

    `B ~= Q_p K_p^T / sqrt(R)` is never formed; the factors are concatenated to q and k instead.
    With `siren_omega` (RIB-SIREN, official `RIBSiren`) the hidden layer is `sin(omega (W p + b))` on the raw
    coordinates (`fourier_levels` 0) with the SIREN initialisation: W U(-1/2, 1/2) (1 / its 2 inputs),
    b 0, the factor maps U(-sqrt(6/hidden)/omega, +sqrt(6/hidden)/omega).
    """

    def __init__(
        self, heads: int, rank: int, fourier_levels: int = 10, hidden: int = 32, siren_omega: float | None = None
    ) -> None:
        super().__init__()
        self.heads = heads
        self.rank = rank
        self.fourier_levels = fourier_levels
        self.siren_omega = siren_omega
        self.mlp = nn.Sequential(nn.Linear(2 + 4 * fourier_levels, hidden), nn.ReLU())
        self.to_q = nn.Linear(hidden, heads * rank, bias=False)
        self.to_k = nn.Linear(hidden, heads * rank, bias=False)
        if siren_omega is not None:
            self.official_init()
        else:
            # Small factors: the bias starts near zero, so training begins from plain attention.
            nn.init.normal_(self.to_q.weight, std=0.05)
            nn.init.normal_(self.to_k.weight, std=0.05)

    def official_init(self) -> None:
        """The official initialisation: N(0, 0.05) for RIB (hidden bias 0), SIREN's for RIB-SIREN."""
        hidden_layer = self.mlp[0]
        nn.init.zeros_(hidden_layer.bias)
        if self.siren_omega is None:
            for weight in (hidden_layer.weight, self.to_q.weight, self.to_k.weight):
                nn.init.normal_(weight, std=0.05)
            return
        inputs = hidden_layer.weight.shape[1]
        nn.init.uniform_(hidden_layer.weight, -1.0 / inputs, 1.0 / inputs)
        bound = math.sqrt(6.0 / hidden_layer.weight.shape[0]) / self.siren_omega
        nn.init.uniform_(self.to_q.weight, -bound, bound)
        nn.init.uniform_(self.to_k.weight, -bound, bound)

    def forward(self, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Factors for a `height x width` window: two tensors (heads, N, R), float32 (float64 for a
        float64 module)."""
        # float32 at least, even under autocast or in a bfloat16 module: high Fourier frequencies lose
        # their phase in bf16. (Casting float32 weights to float32 is free and changes nothing.)
        dtype = torch.promote_types(self.to_q.weight.dtype, torch.float32)
        linear, hidden_layer = nn.functional.linear, self.mlp[0]
        with torch.autocast(device_type=device.type, enabled=False):
            feats = fourier_features(window_coordinates(height, width, device), self.fourier_levels).to(dtype)
            pre = linear(feats, hidden_layer.weight.to(dtype), hidden_layer.bias.to(dtype))  # (N, hidden)
            hidden = torch.relu(pre) if self.siren_omega is None else torch.sin(self.siren_omega * pre)
            n = hidden.shape[0]
            q_pos = linear(hidden, self.to_q.weight.to(dtype)).view(n, self.heads, self.rank).transpose(0, 1)
            k_pos = linear(hidden, self.to_k.weight.to(dtype)).view(n, self.heads, self.rank).transpose(0, 1)
        return q_pos, k_pos

    def dense_bias(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """The bias RIB stands for, built explicitly: (1, heads, N, N). For tests and analysis only."""
        q_pos, k_pos = self(height, width, device)
        return (q_pos @ k_pos.transpose(-2, -1) * self.rank**-0.5).unsqueeze(0)


class LowRankBias(nn.Module):
    """A learned rank-R bias per head, stored as its factors Q_p, K_p for one fixed `w x w` window.

    The factors are plain parameters (heads, N, R), N = w*w, one row per token of the window: nothing
    computes them, so like RPB the layer is tied to its window. Attention concatenates them to q and k
    exactly as it does RIB's, so flash kernels run and nothing N x N is built. Two biases use it
    (`suite.models.biases`): `lowrank`, whose factors carry their own scale (an SVD `B = U S V^T` loads as
    `Q_p = U_R sqrt(S_R)`, `K_p = V_R sqrt(S_R)`, suite.analysis.lowrank), and `flashbias` (official
    FlashBias), whose Q_p attention scales by R^-1/2.

    `init`: `normal` N(0, 0.02) for both (lowrank: the bias starts near zero and trains from scratch);
    `zero-q` Q_p = 0 and K_p N(0, 0.02) (the bias starts at exactly zero, and Q_p's gradient, which
    goes through K_p, is not zero); `zeros` both zero (the official FlashBias init: each factor's gradient
    goes through the other, so both stay zero and the layer trains as no bias).
    """

    INITS = ("normal", "zero-q", "zeros")

    def __init__(self, heads: int, window: int, rank: int, init: str = "normal") -> None:
        super().__init__()
        tokens = window * window
        if not 0 < rank <= tokens:
            raise ValueError(
                f"low-rank bias rank {rank} must be in 1..{tokens} (N = {window}^2 tokens "
                f"of a {window}x{window} window)"
            )
        if init not in self.INITS:
            raise ValueError(f"low-rank bias init {init!r} is not one of {', '.join(self.INITS)}")
        self.heads, self.window, self.rank, self.init = heads, window, rank, init
        self.q_factors = nn.Parameter(torch.empty(heads, tokens, rank))
        self.k_factors = nn.Parameter(torch.empty(heads, tokens, rank))
        self.official_init()

    def official_init(self) -> None:
        for factor, zero in ((self.q_factors, self.init != "normal"), (self.k_factors, self.init == "zeros")):
            if zero:
                nn.init.zeros_(factor)
            else:
                nn.init.normal_(factor, std=0.02)

    def forward(
        self, height: int | None = None, width: int | None = None, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The factors Q_p, K_p: two tensors (heads, N, R); the window is the one they were built for."""
        return self.q_factors, self.k_factors

    def dense_bias(self) -> torch.Tensor:
        """The bias the factors stand for, built explicitly: (1, heads, N, N). For tests and analysis only."""
        return (self.q_factors @ self.k_factors.transpose(-2, -1)).unsqueeze(0)


def rope_frequencies(heads: int, rotary_dim: int, theta: float, mixed: bool) -> torch.Tensor:
    """RoPE's 2-D frequencies (2, heads, rotary_dim / 2): [0] multiplies a token's x, [1] its y.

    Per head, magnitudes `theta^(-4i / rotary_dim)` for i < rotary_dim / 4, turned by an angle a: the first
    half of the rotation pairs along a, the second along a + pi/2. `mixed` (RoPE-Mixed) draws a uniformly
    in [0, 2 pi) per head from torch's generator; axial uses a = 0 (half the pairs turn with x, half with y).
    """
    magnitude = 1.0 / theta ** (torch.arange(0, rotary_dim, 4)[: rotary_dim // 4].float() / rotary_dim)
    freqs_x, freqs_y = [], []
    for _ in range(heads):
        angle = torch.rand(1) * 2 * torch.pi if mixed else torch.zeros(1)
        freqs_x.append(torch.cat([magnitude * torch.cos(angle), magnitude * torch.cos(torch.pi / 2 + angle)]))
        freqs_y.append(torch.cat([magnitude * torch.sin(angle), magnitude * torch.sin(torch.pi / 2 + angle)]))
    return torch.stack([torch.stack(freqs_x), torch.stack(freqs_y)])


class RotaryPositionEmbedding(nn.Module):
    """2-D rotary position embedding of q and k (official RoPEViT): channel pairs (2i, 2i+1) of each head
    turn by `x f_x + y f_y` for a token at integer window position (x, y).

    The head dim is zero-padded to a multiple of 4 for the rotation and cut back after it (the official
    code's padding). `form` `mixed`: the frequencies (2, heads, rotary_dim / 2) are learned; `axial`:
    fixed, and not saved. The angle depends only on token offsets, so the layer runs at any window.
    """

    FORMS = ("mixed", "axial")

    def __init__(self, heads: int, head_dim: int, form: str = "mixed", theta: float = 10.0) -> None:
        super().__init__()
        if form not in self.FORMS:
            raise ValueError(f"RoPE form {form!r} is not one of {', '.join(self.FORMS)}")
        self.heads, self.head_dim, self.form, self.theta = heads, head_dim, form, theta
        self.rotary_dim = head_dim + -head_dim % 4
        freqs = rope_frequencies(heads, self.rotary_dim, theta, form == "mixed")
        if form == "mixed":
            self.freqs = nn.Parameter(freqs)
        else:
            self.register_buffer("freqs", freqs, persistent=False)

    def angles(self, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of each token's angles in a `height x width` window: two (heads, N, rotary_dim / 2),
        float32 (float64 for a float64 module) whatever autocast says."""
        dtype = torch.promote_types(self.freqs.dtype, torch.float32)
        with torch.autocast(device_type=device.type, enabled=False):
            index = torch.arange(height * width, device=device)
            xs, ys = (index % width).to(dtype), torch.div(index, width, rounding_mode="floor").to(dtype)
            freqs = self.freqs.to(dtype)
            angle = xs[:, None] * freqs[0, :, None, :] + ys[:, None] * freqs[1, :, None, :]  # (heads, N, r/2)
            return angle.cos(), angle.sin()

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x (B, heads, N, C), C >= rotary_dim, channels past head_dim zero -> x with its first head_dim
        channels rotated (computed in cos's dtype, returned in x's)."""
        pairs = x[..., : self.rotary_dim].to(cos.dtype).unflatten(-1, (-1, 2))  # (B, heads, N, r/2, 2)
        first, second = pairs.unbind(-1)
        rotated = torch.stack([first * cos - second * sin, first * sin + second * cos], dim=-1).flatten(-2)
        return torch.cat([rotated[..., : self.head_dim].to(x.dtype), x[..., self.head_dim :]], dim=-1)
