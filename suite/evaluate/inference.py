"""Inference with a trained network: rebuild it from a checkpoint (EMA weights by default), tile large
images on the window grid, the x8 self-ensemble, and `load_upscaler` for `suite eval --checkpoint`.

Windows: `load_upscaler(..., window_sizes=...)` or `window_scale=F` runs the network at other attention
windows than it was trained at. RIB's bias is a function of normalised window coordinates, so any window
works; RPB's table fixes its window and the model refuses (WindowSizeError, naming the checkpoint).

Tiling: tile origins sit on multiples of the least common multiple of the window sizes, so every tile
partitions into the same windows as the whole image; neighbouring tiles overlap by at least
`overlap` LR pixels and each output pixel comes from the tile in which it lies farthest from a cut,
i.e. at least overlap/2 from any inner tile edge. The result equals the untiled output (to float
rounding) whenever the network's dependence on pixels outside the tile stays within that margin; a
network whose shifted windows wrap around the image borders (torch.roll) or whose receptive field
exceeds overlap/2 gives tile seams of the size of that dependence, not an exact copy.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from suite.checkpoint import CheckpointError, load_checkpoint
from suite.data.tensors import image_to_tensor, tensor_to_image
from suite.files import file_sha256
from suite.models import SRTransformer, apply_precision, build_model
from suite.models.network import describe_mismatch
from suite.overrides import short_repr

WEIGHTS = ("ema", "model")


class WindowSizeError(ValueError):
    """The network cannot run at the asked windows (an RPB table, or a wrong number of sizes).

    `reason`: the refusal without the checkpoint's name (for tables that name the checkpoint once)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason


# The largest attention window the suite runs a network at (the presets train at most 96; a 512x512 window
# attends 262144 tokens to each other): a bound that keeps a factor such as 1e300 from ever being multiplied out.
MAX_WINDOW = 512


def check_window_factor(factor: object, name: str = "window scale factor") -> float:
    """`factor` if it is a finite number > 0 and at most MAX_WINDOW (any larger factor makes every window
    larger than MAX_WINDOW); else ValueError naming `name` (e.g. the option) and the value."""
    if (
        isinstance(factor, bool)
        or not isinstance(factor, (int, float))
        or not math.isfinite(factor)
        or not 0 < factor <= MAX_WINDOW
    ):
        raise ValueError(f"{name} must be a finite number > 0 and at most {MAX_WINDOW}, got {short_repr(factor)}")
    return float(factor)


def scaled_window_sizes(window_sizes: Sequence[int], factor: float) -> list[int]:
    """The windows `factor` times the given ones, rounded half up and at least 1.

    Half up, not Python's round (half to even), so a product ending in .5 rounds up whatever the
    parity: factor 1.5 on windows (3, 5) gives (5, 8) where round would give (4, 8); 0.5 on 1 gives 1.
    """
    check_window_factor(factor)
    return [max(1, math.floor(window * factor + 0.5)) for window in window_sizes]


def _fit_to_input(model: SRTransformer, window_sizes: list[int], trained: list[int], largest: int) -> list[int]:
    """The windows the network really runs at on inputs of at most `largest` pixels a side. A layer that shrinks
    a window larger than its map to the map (large_windows "clamp", a bias not tied to its window) runs a larger
    window at `largest`, so it is set (and recorded) at `largest`: the output is the same. A layer that pads the
    map up to its window (large_windows "pad", a bias tied to its window) is refused a window larger than both
    the input and its trained window: the rows added would be padding only."""
    fitted = []
    for index, (window, layer) in enumerate(zip(window_sizes, model.blocks[0].layers)):
        attention = layer.attn
        if window <= largest or window <= trained[index]:
            fitted.append(window)
        elif not attention.fixed_window and attention.large_windows == "clamp":
            fitted.append(largest)
        else:
            raise ValueError(
                f"window {window} of layer {index} is larger than the largest input ({largest} LR pixels a side) "
                f"and than its trained window {trained[index]}: the layer pads its map up to the window "
                f"(large_windows {attention.large_windows!r}), so the extra rows would be padding only"
            )
    return fitted


def apply_window_sizes(
    model: SRTransformer,
    window_sizes: Sequence[int] | None = None,
    window_scale: float | None = None,
    largest_input: int | None = None,
) -> list[int]:
    """Set the attention windows of every block (sizes per layer of a block, as the config's
    window_sizes; or the trained ones times `window_scale`) -> the windows the model now runs at.

    Neither given: the model is left as it is. Each window is at most MAX_WINDOW; with `largest_input` (the
    longest side, in LR pixels, of any input the network will get) a window larger than the input is fitted
    to it (see _fit_to_input), so the windows returned (and recorded) are the ones that run. Raises
    WindowSizeError when the model refuses them.
    """
    trained = list(model.config["window_sizes"])
    if window_sizes is not None and window_scale is not None:
        raise ValueError("give window sizes or a window scale, not both")
    if window_scale is not None:
        window_sizes = scaled_window_sizes(trained, window_scale)
    if window_sizes is None:
        return [layer.attn.window for layer in model.blocks[0].layers]
    window_sizes = list(window_sizes)
    for index, window in enumerate(window_sizes):
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window_sizes[{index}] = {short_repr(window)} must be an integer from 1 to {MAX_WINDOW}")
    try:
        if largest_input is not None and len(window_sizes) == len(model.blocks[0].layers):
            window_sizes = _fit_to_input(model, window_sizes, trained, largest_input)
        model.set_window_sizes(window_sizes)
    except ValueError as err:
        asked = " ".join(map(str, window_sizes))
        raise WindowSizeError(f"window sizes {asked} (trained {' '.join(map(str, trained))}): {err}") from None
    return window_sizes


def model_from_checkpoint(state: dict, weights: str = "ema", source: str | Path = "the checkpoint") -> SRTransformer:
    """The network a checkpoint trained, with its EMA (default) or raw weights, in eval mode. A model config
    the network cannot be built from, or weights that do not fit it, raise CheckpointError naming `source`
    (the file) and the keys."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if weights not in state:
        raise CheckpointError(
            f"{source} holds no {weights!r} weights (it has {', '.join(k for k in WEIGHTS if k in state)})"
        )
    try:
        model = build_model(**state["model_config"])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{source}: model_config cannot build a network: {err}") from None
    expected, given = model.state_dict(), state[weights]
    missing = [f"{key} {tuple(expected[key].shape)}" for key in sorted(set(expected) - set(given))]
    unexpected = [f"{key} {tuple(given[key].shape)}" for key in sorted(set(given) - set(expected))]
    misshaped = [
        f"{key} {tuple(given[key].shape)}, network {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(given))
        if given[key].shape != expected[key].shape
    ]
    mismatch = describe_mismatch(missing, unexpected, misshaped)
    if mismatch:
        raise CheckpointError(
            f"{source}: its {weights!r} weights do not fit the network its model_config builds: {mismatch}"
        )
    model.load_state_dict(given)
    return model.eval()


def window_alignment(model: SRTransformer) -> int:
    """Least common multiple of the attention windows: tile origins on this grid keep every window."""
    return math.lcm(*(layer.window for layer in model.attention_layers()))


def tile_spans(length: int, tile: int, overlap: int, align: int) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis -> [(start, stop, keep_start, keep_stop)] in LR pixels.

    Starts are multiples of `align`; consecutive tiles overlap by >= `overlap`; the kept ranges
    partition [0, length) with each cut in the middle of an overlap.
    """
    if tile < align:
        raise ValueError(f"tile {tile} is smaller than the window grid {align} (lcm of the window sizes)")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be >= 0 and smaller than the tile {tile}")
    starts = [0]
    while starts[-1] + tile < length:
        following = (starts[-1] + tile - overlap) // align * align
        if following <= starts[-1]:
            raise ValueError(
                f"tile {tile} with overlap {overlap} cannot advance on the window grid of "
                f"{align} pixels; use a larger tile or a smaller overlap"
            )
        starts.append(following)
    stops = [min(start + tile, length) for start in starts]
    cuts = [(starts[i + 1] + stops[i]) // 2 for i in range(len(starts) - 1)]
    keep_starts, keep_stops = [0, *cuts], [*cuts, length]
    return list(zip(starts, stops, keep_starts, keep_stops))


def tiled_forward(model: nn.Module, x: torch.Tensor, scale: int, tile: int, overlap: int, align: int) -> torch.Tensor:
    """Run `model` on LR tiles of (1, 3, h, w) and stitch -> (1, 3, h*s, w*s)."""
    height, width = x.shape[-2:]
    out = x.new_zeros(x.shape[0], x.shape[1], height * scale, width * scale)
    s = scale
    for y0, y1, ky0, ky1 in tile_spans(height, tile, overlap, align):
        for x0, x1, kx0, kx1 in tile_spans(width, tile, overlap, align):
            sr = model(x[..., y0:y1, x0:x1])  # (1, 3, (y1-y0)*s, (x1-x0)*s)
            out[..., ky0 * s : ky1 * s, kx0 * s : kx1 * s] = sr[
                ..., (ky0 - y0) * s : (ky1 - y0) * s, (kx0 - x0) * s : (kx1 - x0) * s
            ]
    return out


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Transform k in 0..7 of (..., H, W): transpose if k & 4, flip rows if k & 2, columns if k & 1."""
    if k & 4:
        x = x.transpose(-2, -1)
    if k & 2:
        x = x.flip(-2)
    if k & 1:
        x = x.flip(-1)
    return x


def _dihedral_inverse(x: torch.Tensor, k: int) -> torch.Tensor:
    if k & 1:
        x = x.flip(-1)
    if k & 2:
        x = x.flip(-2)
    if k & 4:
        x = x.transpose(-2, -1)
    return x


def self_ensemble(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mean of the 8 flipped/rotated predictions, each mapped back: (1, 3, h, w) -> (1, 3, h*s, w*s)."""
    total = None
    for k in range(8):
        prediction = _dihedral_inverse(forward(_dihedral(x, k)), k)
        total = prediction if total is None else total + prediction
    return total / 8


class ModelUpscaler:
    """`upscale(lr uint8 (h, w, 3)) -> sr uint8 (h*s, w*s, 3)` with a network, in float32."""

    def __init__(
        self,
        model: SRTransformer,
        device: str | torch.device = "cpu",
        tile: int | None = None,
        overlap: int = 16,
        use_self_ensemble: bool = False,
        precision: str = "fp32",
        compile: bool = False,
    ) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.scale = model.scale
        self.precision, self.compile = precision, compile
        self.autocast_dtype = apply_precision(self.model, precision)
        self.network = torch.compile(self.model) if compile else self.model
        self.tile, self.overlap, self.use_self_ensemble = tile, overlap, use_self_ensemble
        self.align = window_alignment(model)
        if tile is not None:
            tile_spans(tile + 1, tile, overlap, self.align)  # check tile/overlap now, not on the first image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) float in [0, 1] -> (1, 3, h*s, w*s), unclamped."""

        def once(lr: torch.Tensor) -> torch.Tensor:
            if self.tile is None:
                return self.network(lr)
            return tiled_forward(self.network, lr, self.scale, self.tile, self.overlap, self.align)

        autocast = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            sr = self_ensemble(once, x) if self.use_self_ensemble else once(x)
        return sr.float()

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        x = image_to_tensor(lr)
        with torch.inference_mode():
            return tensor_to_image(self.forward(x.unsqueeze(0).to(self.device))[0])


@dataclass(frozen=True)
class LoadedUpscaler:
    """A checkpoint's upscaler with what a result JSON says of it: its method name and provenance."""

    upscale: ModelUpscaler
    method: str
    provenance: dict


def load_upscaler(
    path: str | Path,
    device: str | torch.device = "cpu",
    tile: int | None = None,
    overlap: int = 16,
    self_ensemble: bool = False,
    weights: str = "ema",
    *,
    preset: str | None = None,
    scale: int | None = None,
    bias: str = "rib",
    model_overrides: dict | None = None,
    precision: str = "fp32",
    compile: bool = False,
    window_sizes: Sequence[int] | None = None,
    window_scale: float | None = None,
    largest_input: int | None = None,
) -> LoadedUpscaler:
    """The upscaler of a checkpoint, with its method name and provenance for the result JSON.

    A suite checkpoint rebuilds its own network. With `preset`, `path` is a released BasicSR file
    (`params_ema`, else `params`) or a .safetensors file of the official state dict, converted by suite.models.official.load_released for that preset,
    `bias` and `scale` (with `model_overrides`, e.g. for small test networks); its SHA-256 and the
    conversion are recorded.

    `window_sizes` (per layer of a block) or `window_scale` (times the trained windows, see
    scaled_window_sizes) runs the network at other windows; the provenance records the windows
    evaluated (`window_sizes`) and `window_scale` (None unless given). `largest_input`: the longest side (LR
    pixels) of any input, to which asked windows are fitted (apply_window_sizes), so the windows recorded are
    the ones that run. A model that cannot run at them (RPB) raises WindowSizeError naming the checkpoint.
    """
    path = Path(path)
    if preset is not None:
        from suite.models.official import load_released

        model, conversion = load_released(path, preset, scale, bias=bias, overrides=model_overrides)
        windows = _windows_of_checkpoint(path, model, window_sizes, window_scale, largest_input)
        upscale = ModelUpscaler(model, device, tile, overlap, self_ensemble, precision, compile)
        return LoadedUpscaler(
            upscale,
            f"{preset}-released",
            {
                "checkpoint_sha256": file_sha256(path),
                "checkpoint_format": conversion["format"],
                "conversion": conversion,
                "model_config": model.config,
                "model_device": str(device),
                "precision": precision,
                "compile": compile,
                "window_sizes": windows,
                "window_scale": window_scale,
            },
        )
    try:
        state = load_checkpoint(path)
    except CheckpointError as err:
        if "not a suite training checkpoint" in str(err):
            raise CheckpointError(
                f"{err}; for a released BasicSR file pass --preset (one of the paper presets) to convert it"
            ) from None
        raise
    model = model_from_checkpoint(state, weights, path)
    windows = _windows_of_checkpoint(path, model, window_sizes, window_scale, largest_input)
    upscale = ModelUpscaler(model, device, tile, overlap, self_ensemble, precision, compile)
    recipe = state.get("config", {})
    method = recipe.get("name") or f"{state['model_config']['preset']}-{state['model_config']['bias']}"
    return LoadedUpscaler(
        upscale,
        method,
        {
            "checkpoint_sha256": file_sha256(path),
            "checkpoint_format": "suite",
            "checkpoint_iteration": int(state.get("iteration", 0)),
            "weights": weights,
            "precision": precision,
            "compile": compile,
            "model_device": str(device),
            "model_config": model.config,  # resolved: the checkpoint may store a subset (preset, bias, scale)
            "window_sizes": windows,
            "window_scale": window_scale,
            "training_config": recipe,
            "training_config_hash": state.get("config_hash"),
            "training_provenance": state.get("provenance", {}),
        },
    )


def _windows_of_checkpoint(
    path: Path,
    model: SRTransformer,
    window_sizes: Sequence[int] | None,
    window_scale: float | None,
    largest_input: int | None,
) -> list[int]:
    """apply_window_sizes, its refusal naming the checkpoint (the user sees one line)."""
    try:
        return apply_window_sizes(model, window_sizes, window_scale, largest_input)
    except WindowSizeError as err:
        raise WindowSizeError(f"checkpoint {path}: {err}", reason=err.reason) from None
