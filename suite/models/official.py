"""Released checkpoints of the official SST code (BasicSR files, or one flat state dict of the official names
saved as .safetensors) converted to this suite's networks.

The official module names and layouts (SPEC section 8), and what each becomes here:
- 1x1 convs `to_qkv`, `to_out`, `gate.1`, `ffn.proj`, `ffn.agg` (out, in, 1, 1) -> Linear weights (out, in)
  of `qkv`, `proj`, `gate.pointwise`, `ffn.fc1`, `ffn.fc2`;
- RIB's hidden layer `to_hidden` (2 + 4L, hidden) and `hidden_b` (1, hidden) -> `rib.mlp.0` (hidden, 2 + 4L)
  with its input columns reordered: the official Fourier inputs are `[x, y, sin x, sin y, cos x, cos y,
  sin 2x, ...]`, ours `[y, x, sin(2^i y) for i, sin(2^i x) for i, cos(2^i y) for i, cos(2^i x) for i]`;
- RIB's `to_q`, `to_k` (heads, hidden, R) -> Linear weights (heads * R, hidden);
- the RPB table `relative_position_bias` indexes key minus query, ours query minus key: reversed;
- the other positional encodings (SPEC section 9) keep their layouts: FlashBias's `flashbias_q`, `flashbias_k`
  (heads, N, R) -> `attn.flashbias.{q,k}_factors`, RoPE's `rope_freqs` (2, heads, D4 / 2) -> `attn.rope.freqs`
  (axial RoPE saves none), CPE's `cpe` conv -> the layer's `cpe`; RIB-SIREN's MLP as RIB's (2 inputs);
- `body.<b>.<l>` layers, `body.<b>.<n_layers>` the block's conv, `body.<n_blocks>` the tail LayerNorm and
  `body.<n_blocks + 1>` its conv; `proj` the first conv; `upsampler.*` as is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from suite.checkpoint import MAX_ARCHIVE_BYTES, check_weights, load_torch_archive
from suite.files import SAFETENSORS_SUFFIX, file_sha256
from suite.models.biases import REGISTRY
from suite.models.network import SRTransformer, describe_mismatch
from suite.models.presets import OFFICIAL_NAMES, build_model

OFFICIAL_REPOSITORY = "https://github.com/dslisleedh/SST"
PARAM_KEYS = ("params_ema", "params")  # BasicSR: the EMA weights are the ones to evaluate


class ReleasedCheckpointError(ValueError):
    """A released checkpoint that cannot be read or does not fit the network; the message says why."""


def fourier_labels_official(levels: int) -> list[str]:
    labels = ["x", "y"]
    for i in range(levels):
        labels += [f"sin{i}x", f"sin{i}y", f"cos{i}x", f"cos{i}y"]
    return labels


def fourier_labels_ours(levels: int) -> list[str]:
    """The inputs of `positional.fourier_features` on `window_coordinates` (y, x), in order."""
    return ["y", "x"] + [f"{fn}{i}{axis}" for fn in ("sin", "cos") for axis in ("y", "x") for i in range(levels)]


def _squeeze_1x1(tensor: torch.Tensor) -> torch.Tensor:
    return tensor[:, :, 0, 0] if tensor.dim() == 4 and tensor.shape[2:] == (1, 1) else tensor


def _hidden_weight(tensor: torch.Tensor) -> torch.Tensor:
    """(2 + 4L, hidden) official -> (hidden, 2 + 4L) ours, columns in our Fourier order."""
    levels = (tensor.shape[0] - 2) // 4
    official = fourier_labels_official(levels)
    if len(official) != tensor.shape[0]:
        return tensor  # not 2 + 4L rows: left as is, so the shape check reports it
    order = [official.index(label) for label in fourier_labels_ours(levels)]
    return tensor[order].t()


def _factor_weight(tensor: torch.Tensor) -> torch.Tensor:
    """(heads, hidden, R) -> (heads * R, hidden): row h * R + r holds to_q[h, :, r]."""
    return tensor.permute(0, 2, 1).reshape(-1, tensor.shape[1]) if tensor.dim() == 3 else tensor


# (official key suffix inside a layer, our suffix, conversion)
LAYER_KEYS: list[tuple[str, str, Callable[[torch.Tensor], torch.Tensor]]] = [
    ("norm_attn.weight", "norm1.weight", lambda t: t),
    ("norm_attn.bias", "norm1.bias", lambda t: t),
    ("attn.to_qkv.weight", "attn.qkv.weight", _squeeze_1x1),
    ("attn.to_qkv.bias", "attn.qkv.bias", lambda t: t),
    ("attn.to_out.weight", "attn.proj.weight", _squeeze_1x1),
    ("attn.to_out.bias", "attn.proj.bias", lambda t: t),
    ("attn.gate.0.weight", "gate.dwconv.weight", lambda t: t),
    ("attn.gate.0.bias", "gate.dwconv.bias", lambda t: t),
    ("attn.gate.1.weight", "gate.pointwise.weight", _squeeze_1x1),
    ("attn.gate.1.bias", "gate.pointwise.bias", lambda t: t),
    ("attn.to_hidden", "attn.rib.mlp.0.weight", _hidden_weight),
    ("attn.hidden_b", "attn.rib.mlp.0.bias", lambda t: t.reshape(-1)),
    ("attn.to_q", "attn.rib.to_q.weight", _factor_weight),
    ("attn.to_k", "attn.rib.to_k.weight", _factor_weight),
    ("attn.relative_position_bias", "attn.rpb.table", lambda t: t.flip(-1)),
    ("attn.flashbias_q", "attn.flashbias.q_factors", lambda t: t),
    ("attn.flashbias_k", "attn.flashbias.k_factors", lambda t: t),
    ("attn.rope_freqs", "attn.rope.freqs", lambda t: t),
    ("cpe.weight", "cpe.weight", lambda t: t),
    ("cpe.bias", "cpe.bias", lambda t: t),
    ("norm_ffn.weight", "norm2.weight", lambda t: t),
    ("norm_ffn.bias", "norm2.bias", lambda t: t),
    ("ffn.proj.weight", "ffn.fc1.weight", _squeeze_1x1),
    ("ffn.proj.bias", "ffn.fc1.bias", lambda t: t),
    ("ffn.dwc.weight", "ffn.dwconv.weight", lambda t: t),
    ("ffn.dwc.bias", "ffn.dwconv.bias", lambda t: t),
    ("ffn.agg.weight", "ffn.fc2.weight", _squeeze_1x1),
    ("ffn.agg.bias", "ffn.fc2.bias", lambda t: t),
]
_LAYER_MAP = {official: (ours, convert) for official, ours, convert in LAYER_KEYS}


def _identity(tensor):
    return tensor


def _our_key(key: str, n_blocks: int, n_layers: int) -> tuple[str, Callable] | None:
    """Our state-dict key and the conversion for one official key; None for a key with no counterpart."""
    identity = _identity
    if key.startswith("proj."):
        return "head." + key[len("proj.") :], identity
    if key.startswith("upsampler."):
        return key, identity
    match = re.fullmatch(r"body\.(\d+)\.(.+)", key)
    if not match:
        return None
    index, rest = int(match.group(1)), match.group(2)
    if index == n_blocks:
        return "norm." + rest, identity
    if index == n_blocks + 1:
        return "tail_conv." + rest, identity
    if index > n_blocks + 1:
        return None
    match = re.fullmatch(r"(\d+)\.(.+)", rest)
    if not match:
        return None
    layer, rest = int(match.group(1)), match.group(2)
    if layer == n_layers:
        return f"blocks.{index}.conv.{rest}", identity
    if layer > n_layers or rest not in _LAYER_MAP:
        return None
    ours, convert = _LAYER_MAP[rest]
    return f"blocks.{index}.layers.{layer}.{ours}", convert


def convert_basicsr_state(state_dict: dict[str, torch.Tensor], model: SRTransformer) -> dict[str, torch.Tensor]:
    """An official SST state_dict -> `model`'s state_dict (keys, layouts, orders), checked against it.

    Raises ReleasedCheckpointError listing the missing, unexpected and mis-shaped keys when the
    weights do not fit the network exactly.
    """
    if model.tail_conv is None:
        raise ReleasedCheckpointError(
            f"preset {model.config.get('preset')!r} is not an official network (upsampler "
            f"{model.config.get('upsampler')!r}); released checkpoints fit light, light+, base, base+, large, "
            "large+ and XL+"
        )
    target = model.state_dict()
    n_blocks, n_layers = len(model.blocks), len(model.blocks[0].layers)
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    misshaped: list[str] = []
    addressed: set[str] = set()
    for key, value in state_dict.items():
        mapped = _our_key(key, n_blocks, n_layers)
        if mapped is None or mapped[0] not in target:
            unexpected.append(f"{key} {tuple(value.shape)}")
            continue
        ours, convert = mapped
        addressed.add(ours)
        tensor = convert(value)
        if tensor.shape != target[ours].shape:
            misshaped.append(f"{key} {tuple(value.shape)} -> {ours} needs {tuple(target[ours].shape)}")
            continue
        converted[ours] = tensor.to(target[ours].dtype)
    missing = [f"{key} {tuple(value.shape)}" for key, value in target.items() if key not in addressed]
    mismatch = describe_mismatch(missing, unexpected, misshaped)
    if mismatch:
        raise ReleasedCheckpointError(f"the official weights do not fit the network: {mismatch}")
    return converted


def read_basicsr(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state_dict of a BasicSR file and the key it was read from: `params_ema` (the EMA weights BasicSR
    evaluates) where the file has that key, else `params`. Read and checked as every checkpoint is
    (`suite.checkpoint.load_torch_archive`, `check_weights`); a malformed `params_ema` is refused, not
    passed over for `params`."""
    path = Path(path)
    saved = load_torch_archive(path, ReleasedCheckpointError)
    if not isinstance(saved, dict):
        raise ReleasedCheckpointError(
            f"{path}: expected a BasicSR dict with params_ema or params, got {type(saved).__name__}"
        )
    key = next((key for key in PARAM_KEYS if key in saved), None)
    if key is None:
        keys = ", ".join(sorted(map(str, saved))[:10])
        raise ReleasedCheckpointError(f"{path}: not a BasicSR checkpoint: no params_ema or params (keys: {keys})")
    check_weights(path, key, saved[key], ReleasedCheckpointError)
    return saved[key], key


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict of a .safetensors file (one flat dict of the official names; the format holds tensors
    only, nothing to unpickle), read with safetensors.torch and checked as every checkpoint is (`check_weights`:
    real, finite, inside their storage); at most MAX_ARCHIVE_BYTES, as for a torch file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.stat().st_size > MAX_ARCHIVE_BYTES:
        raise ReleasedCheckpointError(
            f"checkpoint {path} holds {path.stat().st_size} bytes, more than the {MAX_ARCHIVE_BYTES} the suite reads"
        )
    try:
        state = load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        raise ReleasedCheckpointError(f"checkpoint {path} is not a valid safetensors file: {err}") from None
    check_weights(path, "state dict", state, ReleasedCheckpointError)
    return state


def read_released(path: str | Path) -> tuple[dict[str, torch.Tensor], str, str | None]:
    """The official state_dict of a released file by its suffix -> (state_dict, format, BasicSR key read):
    a .safetensors file (`read_safetensors`, no key) or a BasicSR torch file (`read_basicsr`)."""
    if Path(path).name.lower().endswith(SAFETENSORS_SUFFIX):
        return read_safetensors(path), "safetensors", None
    state, key = read_basicsr(path)
    return state, "basicsr", key


def load_released(
    path: str | Path, preset: str, scale: int, bias: str = "rib", overrides: dict[str, Any] | None = None
) -> tuple[SRTransformer, dict[str, Any]]:
    """Build `preset` at `scale` (with model `overrides`, e.g. the small networks of the equivalence
    fixtures) and load an official released checkpoint into it, in eval mode.

    Returns the model and its provenance: source file and SHA-256, its format (basicsr or safetensors), the
    BasicSR key read (None for safetensors), the official configuration name and what the conversion did.
    """
    state, file_format, param_key = read_released(path)
    model = build_model(preset, bias, scale, **(overrides or {}))
    try:
        converted = convert_basicsr_state(state, model)
    except ReleasedCheckpointError as err:
        raise ReleasedCheckpointError(f"{path} (preset {preset}, x{scale}, {bias}): {err}") from None
    model.load_state_dict(converted)
    provenance = {
        "source": str(path),
        "source_sha256": file_sha256(Path(path)),
        "format": file_format,
        "param_key": param_key,
        "official_repository": OFFICIAL_REPOSITORY,
        "official_config": OFFICIAL_NAMES.get(preset),
        "conversion": "official SST module names -> suite; 1x1 convs -> Linear; RIB to_hidden transposed with "
        "Fourier inputs reordered; RIB to_q/to_k (heads, hidden, R) -> (heads*R, hidden); "
        "RPB table reversed (key-query -> query-key); FlashBias factors, RoPE frequencies and "
        "the CPE conv as they are",
        "official_attn_type": REGISTRY[bias].official,
        "model_config": model.config,
    }
    return model.eval(), provenance
