"""The positional biases of window attention, each declared once (SPEC sections 1-3 and 9).

`REGISTRY` maps a bias name (the `bias` of a model config, the `<bias>` of a run name) to its `BiasSpec`:
what the report calls it, how attention consumes it (`kind`), whether its weights tie it to the window
it was trained at, whether flash kernels can run it, whether it reads `ranks`, its own model fields with
their defaults, the module that computes it and the official code's name for it. Everything else (the
layer, the model validator, FLOPs, kernel checks, the benchmarks, the profile tables, the report's readers
and labels, the CLI choices, the workflow schema's enum) derives from this table: a new bias is one entry
here and, where it needs one, a module in `suite.models.positional`.

Kinds (how `WindowAttention.attend` uses the bias):
- `additive`: a dense `(1, heads, N, N)` term added to the logits (RPB): no flash kernel.
- `factored`: per-token factors `Q_p`, `K_p` (heads, N, R) concatenated to q and k, `q' = [q D^-1/2,
  Q_p s]`, `k' = [k, K_p]`, v zero-padded, kernel at softmax scale 1 (RIB's path; `s` is `factor_scale`).
- `rotary`: q and k rotated by their token's position before the kernel (RoPE).
- `none`: attention without a positional term (NoPE; CPE adds its convolution outside attention).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

KINDS = ("additive", "factored", "rotary", "none")


def positional() -> ModuleType:
    """suite.models.positional, imported when a module is built: this table itself imports no torch, so
    the command line and the report read it cheaply."""
    return importlib.import_module("suite.models.positional")


@dataclass(frozen=True)
class Param:
    """A model field of one bias: its default and what values it takes (`choices`, or a number >= `minimum`)."""

    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    integer: bool = False


@dataclass(frozen=True)
class BiasSpec:
    name: str
    label: str  # as tables and figures print it
    summary: str  # one line: what it computes
    kind: str  # one of KINDS
    fixed_window: bool  # its weights hold one entry per token (pair) of the trained window
    flash: bool  # flash kernels can run it (no additive N x N term)
    uses_rank: bool  # reads `ranks` (the factors' R)
    official: str | None  # `attn_type` of the official code (dslisleedh/SST), None for the suite's own
    params: Mapping[str, Param] = field(default_factory=dict)
    module: str | None = None  # attribute of WindowAttention holding its positional module (state-dict prefix)
    # (heads, head_dim, window, rank, options) -> the positional module; None for biases without one
    build: Callable[..., Any] | None = None
    factor_scale: str = "rsqrt_rank"  # factored kinds: "rsqrt_rank" multiplies Q_p by R^-1/2, "one" does not
    conv_before_attention: bool = False  # CPE: `x = x + dwconv3x3(x)` before the attention's LayerNorm
    # (config, image tokens, window tokens, rank) -> matmul/conv FLOPs of the bias per layer and forward
    flops: Callable[[Mapping[str, Any], int, int, int], int] = lambda config, tokens, n, rank: 0

    @property
    def factored(self) -> bool:
        return self.kind == "factored"


def implicit_mlp_flops(config: Mapping[str, Any], n: int, rank: int, inputs: int) -> int:
    """An implicit bias's MLP, once per forward and layer: inputs -> hidden, hidden -> Q_p and K_p."""
    hidden = config["mlp_hidden"]
    return 2 * n * inputs * hidden + 2 * 2 * n * hidden * config["heads"] * rank


MLP_HIDDEN = Param(32, "hidden width of the implicit bias's MLP", minimum=1, integer=True)

REGISTRY: Mapping[str, BiasSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            BiasSpec(
                "rpb",
                "RPB",
                "Swin's learned table (heads, (2w-1)^2) added to the logits (official Naive/SDPA/Flex)",
                kind="additive",
                fixed_window=True,
                flash=False,
                uses_rank=False,
                official="SDPA",
                module="rpb",
                build=lambda heads, head_dim, window, rank, options: positional().RelativePositionBias(heads, window),
            ),
            BiasSpec(
                "rib",
                "RIB",
                "rank-R factors from an MLP of Fourier features of the window coordinates",
                kind="factored",
                fixed_window=False,
                flash=True,
                uses_rank=True,
                official="RIB",
                params={
                    "fourier_levels": Param(10, "Fourier frequencies L (2 + 4L MLP inputs)", minimum=0, integer=True),
                    "mlp_hidden": MLP_HIDDEN,
                },
                module="rib",
                build=lambda heads, head_dim, window, rank, options: positional().ImplicitNeuralBias(
                    heads, rank, options["fourier_levels"], options["mlp_hidden"]
                ),
                flops=lambda config, tokens, n, rank: implicit_mlp_flops(
                    config, n, rank, 2 + 4 * config["fourier_levels"]
                ),
            ),
            BiasSpec(
                "none",
                "no-bias",
                "attention without a positional term (official NoPE)",
                kind="none",
                fixed_window=False,
                flash=True,
                uses_rank=False,
                official="NoPE",
            ),
            BiasSpec(
                "lowrank",
                "low-rank",
                "fixed rank-R factors per token of one window (e.g. an RPB table by truncated SVD)",
                kind="factored",
                fixed_window=True,
                flash=True,
                uses_rank=True,
                official=None,
                module="lowrank",
                build=lambda heads, head_dim, window, rank, options: positional().LowRankBias(heads, window, rank),
                factor_scale="one",
            ),
            BiasSpec(
                "cpe",
                "CPE",
                "a depthwise 3x3 convolution added to the layer input before attention without bias",
                kind="none",
                fixed_window=False,
                flash=True,
                uses_rank=False,
                official="CPE",
                conv_before_attention=True,
                flops=lambda config, tokens, n, rank: 2 * tokens * config["dim"] * 9,
            ),
            BiasSpec(
                "rope",
                "RoPE",
                "2-D rotary embedding of q and k (official RoPEViT; mixed: learnable frequencies)",
                kind="rotary",
                fixed_window=False,
                flash=True,
                uses_rank=False,
                official="RoPEViT",
                params={
                    "rope_form": Param(
                        "mixed",
                        "mixed (learnable per-head frequencies, a random angle per head) or "
                        "axial (fixed: half the pairs turn with x, half with y)",
                        choices=("mixed", "axial"),
                    ),
                    "rope_theta": Param(10.0, "frequency base theta", minimum=1e-12),
                    "rope_scale": Param(
                        "official",
                        "softmax scale: official (1, q not scaled, as the official code runs it) or standard (D^-1/2)",
                        choices=("official", "standard"),
                    ),
                },
                module="rope",
                build=lambda heads, head_dim, window, rank, options: positional().RotaryPositionEmbedding(
                    heads, head_dim, options["rope_form"], options["rope_theta"]
                ),
            ),
            BiasSpec(
                "flashbias",
                "FlashBias",
                "learned rank-R factors per token of one window, Q_p scaled by R^-1/2 (official FlashBias)",
                kind="factored",
                fixed_window=True,
                flash=True,
                uses_rank=True,
                official="FlashBias",
                params={
                    "flashbias_init": Param(
                        "zero-q",
                        "zero-q (Q_p zero, K_p N(0, 0.02): starts as no bias and learns) or zeros (the official "
                        "init: both zero, so both gradients are zero and the factors never move)",
                        choices=("zero-q", "zeros"),
                    )
                },
                module="flashbias",
                build=lambda heads, head_dim, window, rank, options: positional().LowRankBias(
                    heads, window, rank, init=options["flashbias_init"]
                ),
            ),
            BiasSpec(
                "rib-siren",
                "RIB-SIREN",
                "RIB with a sine network (omega0 30) on raw coordinates, no Fourier features",
                kind="factored",
                fixed_window=False,
                flash=True,
                uses_rank=True,
                official="RIBSiren",
                params={
                    "mlp_hidden": MLP_HIDDEN,
                    "siren_omega": Param(30.0, "frequency omega0 of the sine hidden layer", minimum=1e-12),
                },
                module="rib",
                build=lambda heads, head_dim, window, rank, options: positional().ImplicitNeuralBias(
                    heads, rank, 0, options["mlp_hidden"], siren_omega=options["siren_omega"]
                ),
                flops=lambda config, tokens, n, rank: implicit_mlp_flops(config, n, rank, 2),
            ),
        )
    }
)

BIASES: tuple[str, ...] = tuple(REGISTRY)
FACTORED_BIASES = tuple(name for name, spec in REGISTRY.items() if spec.factored)
FIXED_WINDOW_BIASES = tuple(name for name, spec in REGISTRY.items() if spec.fixed_window)
FLASH_BIASES = tuple(name for name, spec in REGISTRY.items() if spec.flash)
# Every bias parameter once (biases may share one, e.g. mlp_hidden), with its default.
BIAS_PARAMS: Mapping[str, Param] = MappingProxyType(
    {key: param for spec in REGISTRY.values() for key, param in spec.params.items()}
)
POSITIONAL_MODULES = tuple(dict.fromkeys(spec.module for spec in REGISTRY.values() if spec.module))
# The official attention types and the bias each becomes (RPB's three kernels are one bias here).
OFFICIAL_TYPES: Mapping[str, str] = MappingProxyType(
    {**{spec.official: name for name, spec in REGISTRY.items() if spec.official}, "Naive": "rpb", "Flex": "rpb"}
)


def bias_spec(bias: str) -> BiasSpec:
    """The registry entry of `bias`; ValueError naming the known biases for any other value."""
    try:
        return REGISTRY[bias]
    except (KeyError, TypeError):
        raise ValueError(f"unknown bias {bias!r}; expected one of {', '.join(BIASES)}") from None


def label(bias: str) -> str:
    """The name tables print: "RIB", "no-bias"; an unknown value as it is."""
    spec = REGISTRY.get(bias)
    return spec.label if spec else bias


def check_shared_defaults() -> None:
    """Biases that share a parameter declare it with one default (the config has one field for it)."""
    for spec in REGISTRY.values():
        for key, param in spec.params.items():
            if BIAS_PARAMS[key] != param:
                raise AssertionError(f"bias {spec.name} declares {key} unlike another bias")


check_shared_defaults()
