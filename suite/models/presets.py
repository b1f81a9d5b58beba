"""Model presets (SPEC section 4) as a plain dict, `build_model` and a parameter count."""

from __future__ import annotations

from typing import Any

from torch import nn

from suite.models.attention import check_pair
from suite.models.network import SRTransformer

PRESETS: dict[str, dict[str, Any]] = {
    # Ours: 4 layers at a 32x32 window (alternately shifted) so RPB's N x N cost shows on a CPU,
    # small enough to train to above bicubic on 2 cores in minutes. Head dim 16 + rank 8 = 24.
    "tiny": dict(dim=32, n_blocks=2, heads=2, window_sizes=(32, 32), ranks=(8, 8), exp_ratio=2.0),
    "light": dict(dim=48, n_blocks=5, heads=3, window_sizes=(8, 16, 32, 16, 32, 64),
                  ranks=(16, 16, 16, 24, 24, 24), exp_ratio=1.5),
    "base": dict(dim=180, n_blocks=6, heads=6, window_sizes=(16, 32, 64, 16, 32, 64),
                 ranks=(18, 18, 18, 34, 34, 34), exp_ratio=1.25),
    "base+": dict(dim=180, n_blocks=6, heads=6, window_sizes=(16, 32, 48, 32, 48, 96),
                  ranks=(18, 18, 18, 34, 34, 34), exp_ratio=1.25),
    "large": dict(dim=192, n_blocks=8, heads=6, window_sizes=(16, 32, 64, 16, 32, 64),
                  ranks=(16, 16, 16, 32, 32, 32), exp_ratio=2.0),
    "large+": dict(dim=192, n_blocks=8, heads=6, window_sizes=(16, 32, 48, 32, 48, 96),
                   ranks=(16, 16, 16, 32, 32, 32), exp_ratio=2.0),
}

DEFAULTS: dict[str, Any] = dict(backend="auto", fourier_levels=10, mlp_hidden=32)
OVERRIDABLE = frozenset(PRESETS["base"]) | frozenset(DEFAULTS)


def build_model(preset: str, bias: str = "rib", scale: int = 2, **overrides: Any) -> SRTransformer:
    """Build a preset with a positional-bias variant and scale; `overrides` replace preset fields.

    `build_model(**model.config)` rebuilds the same architecture.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - OVERRIDABLE)
    if unknown:
        raise ValueError(
            f"unknown model field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(OVERRIDABLE))}"
        )
    config = {**PRESETS[preset], **DEFAULTS, **overrides}
    config["window_sizes"] = tuple(int(w) for w in config["window_sizes"])
    config["ranks"] = tuple(int(r) for r in config["ranks"])
    check_pair(bias, config["backend"])
    if not isinstance(scale, int) or scale < 2:
        raise ValueError(f"scale must be an integer >= 2, got {scale!r}")
    if len(config["ranks"]) != len(config["window_sizes"]):
        raise ValueError(
            f"ranks {config['ranks']} and window_sizes {config['window_sizes']} must have one entry per layer"
        )
    if bias == "rib" and min(config["ranks"]) <= 0:
        raise ValueError(f"every RIB rank must be positive, got ranks {config['ranks']}")
    if min(config["window_sizes"]) <= 0:
        raise ValueError(f"every window size must be positive, got {config['window_sizes']}")
    if config["dim"] % config["heads"]:
        raise ValueError(f"dim {config['dim']} is not divisible by heads {config['heads']}")
    model = SRTransformer(scale=scale, bias=bias, **config)
    model.config = {
        "preset": preset, "bias": bias, "scale": scale,
        **{key: list(value) if isinstance(value, tuple) else value for key, value in config.items()},
    }
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
