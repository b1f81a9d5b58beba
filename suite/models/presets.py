"""Model presets (SPEC section 4) as a plain dict, the one model-config validator, `build_model`.

Every preset spells out its network options, so what a preset builds is read off this file:
- `upsampler`: `pixelshuffle` (conv3x3 dim -> I, LeakyReLU, conv3x3 I -> I*s^2, pixel shuffle, conv3x3
  I -> 3, plus the nearest-upsampled input; I = `upsampler_dim`), `pixelshuffle_direct` (conv3x3 dim ->
  3*s^2 plus the input repeated s^2 times, pixel shuffle), both official; or `bicubic` (ours: conv3x3
  dim -> 3*s^2, zero-initialised, pixel shuffle, plus the bicubic-upsampled input).
- `body_tail`: `norm_conv` (official: LayerNorm and a 3x3 conv close the body, with a long skip around
  it) or `norm` (ours: a LayerNorm only, no long skip).
- `norm_eps`: LayerNorm epsilon (official 1e-6; torch's default 1e-5 for ours).
- `init`: `official` (trunc-normal Linear/1x1 convs, zero biases, RIB N(0, 0.05), RPB N(0, 1e-3)) or
  `torch` (torch's defaults with our RIB and RPB inits).
- `large_windows`: `pad` (official: a map smaller than a window is padded up to it) or `clamp` (ours:
  a RIB or no-bias window shrinks to the map). RPB and `lowrank` always pad (their weights fix the window).
- `ranks`: per layer, the rank R of the biases that read it (`BiasSpec.uses_rank`: RIB, RIB-SIREN,
  `lowrank`, `flashbias`; at most window^2 for the last two, the tokens their factors index).
- the bias's own fields (`BiasSpec.params` in `suite.models.biases`, e.g. RIB's `fourier_levels` and
  `mlp_hidden`, RoPE's `rope_form`): a config holds those of its bias only; another bias's are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from suite.models.biases import BIAS_PARAMS, BIASES, REGISTRY, Param
from suite.models.options import BACKENDS, PRECISIONS, ModelConfigError, check_pair, check_precision  # noqa: F401
from suite.overrides import short_repr

if TYPE_CHECKING:  # the validators above build_model import no torch
    from torch import nn

    from suite.models.network import SRTransformer

# Paper presets: the official networks (options/test/*.yaml and sst/archs/sst_arch.py of dslisleedh/SST
# at bcd6132); every option is written out so that a preset reads as the network it builds.
PRESETS: dict[str, dict[str, Any]] = {
    # Ours: 4 layers at a 32x32 window (alternately shifted) so RPB's N x N cost shows on a CPU,
    # small enough to train to above bicubic on 2 cores in minutes. Head dim 16 + rank 8 = 24.
    # A bicubic residual with a zero-initialised last conv trains faster at this size (SPEC section 4).
    "tiny": {
        "dim": 32,
        "n_blocks": 2,
        "heads": 2,
        "window_sizes": (32, 32),
        "ranks": (8, 8),
        "exp_ratio": 2.0,
        "upsampler": "bicubic",
        "upsampler_dim": None,
        "body_tail": "norm",
        "norm_eps": 1e-5,
        "init": "torch",
        "large_windows": "clamp",
    },
    "light": {
        "dim": 48,
        "n_blocks": 5,
        "heads": 3,
        "window_sizes": (8, 16, 32, 16, 32, 64),
        "ranks": (16, 16, 16, 24, 24, 24),
        "exp_ratio": 1.5,
        "upsampler": "pixelshuffle_direct",
        "upsampler_dim": None,
        "body_tail": "norm_conv",
        "norm_eps": 1e-6,
        "init": "official",
        "large_windows": "pad",
    },
    "light+": {
        "dim": 48,
        "n_blocks": 5,
        "heads": 3,
        "window_sizes": (16, 32, 48, 32, 48, 96),
        "ranks": (16, 16, 16, 24, 24, 24),
        "exp_ratio": 1.5,
        "upsampler": "pixelshuffle_direct",
        "upsampler_dim": None,
        "body_tail": "norm_conv",
        "norm_eps": 1e-6,
        "init": "official",
        "large_windows": "pad",
    },
    "base": {
        "dim": 180,
        "n_blocks": 6,
        "heads": 6,
        "window_sizes": (16, 32, 64, 16, 32, 64),
        "ranks": (18, 18, 18, 34, 34, 34),
        "exp_ratio": 1.25,
        "upsampler": "pixelshuffle",
        "upsampler_dim": 64,
        "body_tail": "norm_conv",
        "norm_eps": 1e-6,
        "init": "official",
        "large_windows": "pad",
    },
    "base+": {
        "dim": 180,
        "n_blocks": 6,
        "heads": 6,
        "window_sizes": (16, 32, 48, 32, 48, 96),
        "ranks": (18, 18, 18, 34, 34, 34),
        "exp_ratio": 1.25,
        "upsampler": "pixelshuffle",
        "upsampler_dim": 64,
        "body_tail": "norm_conv",
        "norm_eps": 1e-6,
        "init": "official",
        "large_windows": "pad",
    },
    "large": {
        "dim": 192,
        "n_blocks": 8,
        "heads": 6,
        "window_sizes": (16, 32, 64, 16, 32, 64),
        "ranks": (16, 16, 16, 32, 32, 32),
        "exp_ratio": 2.0,
        "upsampler": "pixelshuffle",
        "upsampler_dim": 96,
        "body_tail": "norm_conv",
        "norm_eps": 1e-6,
        "init": "official",
        "large_windows": "pad",
    },
    "large+": {
        "dim": 192,
        "n_blocks": 8,
        "heads": 6,
        "window_sizes": (16, 32, 48, 32, 48, 96),
        "ranks": (16, 16, 16, 32, 32, 32),
        "exp_ratio": 2.0,
        "upsampler": "pixelshuffle",
        "upsampler_dim": 96,
        "body_tail": "norm_conv",
        "norm_eps": 1e-6,
        "init": "official",
        "large_windows": "pad",
    },
    "XL+": {
        "dim": 224,
        "n_blocks": 10,
        "heads": 7,
        "window_sizes": (16, 32, 48, 32, 48, 96),
        "ranks": (16, 16, 16, 32, 32, 32),
        "exp_ratio": 2.0,
        "upsampler": "pixelshuffle",
        "upsampler_dim": 96,
        "body_tail": "norm_conv",
        "norm_eps": 1e-6,
        "init": "official",
        "large_windows": "pad",
    },
}
# The official configuration each paper preset reproduces (options/test/*.yaml of the official code).
OFFICIAL_NAMES = {
    "light": "SSTlight",
    "light+": "SSTlight_Plus",
    "base": "SST",
    "base+": "SST_Plus",
    "large": "SSTLarge",
    "large+": "SSTLarge_Plus",
    "XL+": "SSTXL_Plus",
}

DEFAULTS: dict[str, Any] = dict(backend="auto")
OVERRIDABLE = frozenset(PRESETS["base"]) | frozenset(DEFAULTS) | frozenset(BIAS_PARAMS)
UPSAMPLERS = ("pixelshuffle", "pixelshuffle_direct", "bicubic")
BODY_TAILS = ("norm_conv", "norm")
INITS = ("official", "torch")
LARGE_WINDOWS = ("pad", "clamp")


def _integer(field: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelConfigError(f"model field {field} = {short_repr(value)} must be an integer >= {minimum}")
    return value


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ModelConfigError(f"model field {field} = {short_repr(value)} must be a positive number")
    return float(value)


def _choice(field: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ModelConfigError(f"model field {field} = {short_repr(value)} must be one of {', '.join(choices)}")
    return value


def _int_list(field: str, value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ModelConfigError(f"model field {field} = {short_repr(value)} must be a non-empty list of integers")
    return [_integer(f"{field}[{i}]", item) for i, item in enumerate(value)]


def _bias_param(field: str, value: Any, param: Param) -> Any:
    if param.choices:
        return _choice(field, value, param.choices)
    if param.integer:
        return _integer(field, value, minimum=int(param.minimum or 0))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= param.minimum:
        raise ModelConfigError(f"model field {field} = {short_repr(value)} must be a number >= {param.minimum:g}")
    return float(value)


def resolve_model_config(
    preset: str, bias: str = "rib", scale: int = 2, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The one validator of a model configuration: preset + bias + scale + overrides -> a full config.

    Returns a JSON-friendly dict (lists, not tuples) with `preset`, `bias`, `scale` and every network
    field, such that `build_model(**config)` builds it. Raises ModelConfigError naming the field and value.
    """
    if preset not in PRESETS:
        raise ModelConfigError(f"model field preset = {short_repr(preset)} must be one of {', '.join(PRESETS)}")
    scale = _integer("scale", scale, minimum=2)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - OVERRIDABLE)
    if unknown:
        raise ModelConfigError(
            f"unknown model field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(OVERRIDABLE))}"
        )
    _choice("bias", bias, BIASES)
    spec = REGISTRY[bias]
    raw = {**PRESETS[preset], **DEFAULTS, **overrides}
    config: dict[str, Any] = {"preset": preset, "bias": bias, "scale": scale}
    for key in ("dim", "n_blocks", "heads"):
        config[key] = _integer(key, raw[key])
    for key, param in spec.params.items():
        config[key] = _bias_param(key, raw.get(key, param.default), param)
    config["exp_ratio"] = _number("exp_ratio", raw["exp_ratio"])
    config["window_sizes"] = _int_list("window_sizes", raw["window_sizes"])
    # One integer rank stands for every layer (the rank ablation sets ranks: R whatever the layer count).
    ranks = raw["ranks"]
    if isinstance(ranks, int) and not isinstance(ranks, bool):
        ranks = [ranks] * len(config["window_sizes"])
    config["ranks"] = _int_list("ranks", ranks)
    if len(config["ranks"]) != len(config["window_sizes"]):
        raise ModelConfigError(
            f"model field ranks = {config['ranks']} must have one entry per layer of "
            f"window_sizes = {config['window_sizes']}"
        )
    if spec.uses_rank and spec.fixed_window:
        for i, (rank, window) in enumerate(zip(config["ranks"], config["window_sizes"])):
            if rank > window * window:
                raise ModelConfigError(
                    f"model field ranks[{i}] = {rank} exceeds window_sizes[{i}]^2 = {window * window}: a {bias} "
                    f"bias of a {window}x{window} window has at most that rank"
                )
    if config["dim"] % config["heads"]:
        raise ModelConfigError(f"model field dim = {config['dim']} is not divisible by heads = {config['heads']}")
    _choice("backend", raw["backend"], BACKENDS)
    try:  # whether they go together
        check_pair(bias, raw["backend"])
    except ValueError as err:
        raise ModelConfigError(str(err)) from None
    config["backend"] = raw["backend"]
    config["upsampler"] = _choice("upsampler", raw["upsampler"], UPSAMPLERS)
    if config["upsampler"] == "pixelshuffle":
        config["upsampler_dim"] = _integer("upsampler_dim", raw["upsampler_dim"])
    elif raw["upsampler_dim"] is not None:
        raise ModelConfigError(
            f"model field upsampler_dim = {short_repr(raw['upsampler_dim'])} applies to upsampler 'pixelshuffle' only "
            f"(upsampler is {config['upsampler']!r}); leave it null"
        )
    else:
        config["upsampler_dim"] = None
    config["body_tail"] = _choice("body_tail", raw["body_tail"], BODY_TAILS)
    if (config["upsampler"] == "bicubic") != (config["body_tail"] == "norm"):
        raise ModelConfigError(
            f"model fields upsampler = {config['upsampler']!r} and body_tail = {config['body_tail']!r} do not go "
            "together: the bicubic upsampler goes with body_tail 'norm', the official ones with 'norm_conv'"
        )
    config["norm_eps"] = _number("norm_eps", raw["norm_eps"])
    config["init"] = _choice("init", raw["init"], INITS)
    config["large_windows"] = _choice("large_windows", raw["large_windows"], LARGE_WINDOWS)
    return config


def resolve_saved_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored model config (a checkpoint's `model_config`, possibly written by an older suite) resolved as
    `build_model` would build it, so two configs compare field by field."""
    fields = dict(config)
    return resolve_model_config(fields.pop("preset", None), fields.pop("bias", "rib"), fields.pop("scale", 2), fields)


def build_model(preset: str, bias: str = "rib", scale: int = 2, **overrides: Any) -> SRTransformer:
    """Build a preset with a positional-bias variant and scale; `overrides` replace preset fields.

    `build_model(**model.config)` rebuilds the same architecture.
    """
    from suite.models.network import SRTransformer

    return SRTransformer(resolve_model_config(preset, bias, scale, overrides))


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
