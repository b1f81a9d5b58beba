"""The positional bias a trained model learned, per attention layer and head, as maps and statistics.

For a `w x w` window (N = w*w tokens) every layer's bias is taken as its dense (heads, N, N) matrix
`B[h, i, j]` (query i, key j), in float64: RPB's table gathered by relative offset, RIB's
`Q_p K_p^T / sqrt(R)`, a low-rank layer's `Q_p K_p^T`. Two maps per head:

- offsets, (2w-1, 2w-1): the mean of `B[i, j]` over all token pairs at each relative offset
  (dy, dx) = (y_i - y_j, x_i - x_j) (query minus key), row-major from (-(w-1), -(w-1)); index
  (dy + w-1, dx + w-1). For RPB it is the table itself (every pair at an offset reads the same entry).
- centre, (w, w): the row of the centre token, token (w//2, w//2) (for an even w the one just below
  and right of the middle): the bias that token gives every key of the window.

Statistics per head (one row per layer and head, see COLUMNS):

- bias_min, bias_max, bias_range: over all N x N entries of B.
- effective_rank_99: the fewest singular values of B whose squares reach 99% of the sum of all
  squared singular values (of ||B||_F^2); 0 for an all-zero B. At most R for RIB and low-rank layers.
- translation_deviation: how far B is from depending on the offset alone,
  `sqrt(mean_ij (B[i, j] - M[off(i, j)])^2) / sqrt(mean_ij B[i, j]^2)`, with M the offsets map; the
  share of B's RMS that no relative-position table can express. 0 for RPB exactly (and 0 for an
  all-zero B), 1 at most (M is B's least-squares fit by a function of the offset). It measures the
  bias as added to the logits: a part that depends on the query alone (constant along a row of B),
  which softmax ignores, counts too.

The dense bias costs heads * N^2 * 8 bytes per layer (805 MB for 6 heads at a 64x64 window), and an
RPB layer's singular values an O(N^3) SVD per head (seconds to a minute at 64x64 on a few cores);
RIB and low-rank layers get theirs from their R-column factors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from suite.analysis.outputs import BIAS_FIELDS
from suite.checkpoint import load_checkpoint
from suite.env import run_record
from suite.evaluate.inference import model_from_checkpoint
from suite.files import atomic_write, file_sha256
from suite.models import SRTransformer, WindowAttention
from suite.models.positional import relative_position_index

COLUMNS = BIAS_FIELDS.table.columns
ANALYSED_BIASES = BIAS_FIELDS.biases  # the biases that stand for an N x N logit term
ENERGY = 0.99  # the share of ||B||_F^2 that effective_rank_99 reaches


@dataclass
class LayerField:
    """One attention layer's bias maps (float64) and its per-head statistic rows."""

    layer: int  # 0-based over the whole network
    block: int
    layer_in_block: int
    window: int
    bias: str
    centre_token: int  # row of B shown in `centre`
    offsets: np.ndarray  # (heads, 2w-1, 2w-1), [h, dy + w-1, dx + w-1]
    centre: np.ndarray  # (heads, w, w)
    rows: list[dict] = field(default_factory=list)  # one per head, COLUMNS


@dataclass
class BiasFields:
    """The bias fields of one checkpoint: what `analyze_checkpoint` found and wrote."""

    checkpoint: Path
    weights: str
    model: dict  # preset, bias, scale
    layers: list[LayerField]

    @property
    def rows(self) -> list[dict]:
        return [row for layer in self.layers for row in layer.rows]

    @property
    def title(self) -> str:
        """ "tiny RIB x2 (final.pt, ema weights)": which model the maps belong to."""
        model = self.model
        return (
            f"{model['preset']} {model['bias'].upper()} x{model['scale']} "
            f"({self.checkpoint.name}, {self.weights} weights)"
        )


def centre_token(window: int) -> int:
    """Index of token (w//2, w//2), row-major: the middle token, below and right of the middle for even w."""
    return (window // 2) * window + window // 2


def offset_means(dense: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of `dense[h, i, j]` over the pairs at each relative offset: (heads, N, N) -> (heads, 2w-1, 2w-1)."""
    heads, span = dense.shape[0], 2 * window - 1
    index = relative_position_index(window).flatten().to(dense.device)  # (N*N,) into (2w-1)^2
    sums = dense.new_zeros(heads, span * span).index_add_(1, index, dense.reshape(heads, -1))
    counts = torch.bincount(index, minlength=span * span).to(dense.dtype)  # (w-|dy|)(w-|dx|) >= 1
    return (sums / counts).view(heads, span, span)


def translation_deviation(dense: torch.Tensor, offsets: torch.Tensor, window: int) -> torch.Tensor:
    """RMS of `B - M[offset]` over RMS of `B` per head (0 where B is all zero): (heads,) float."""
    heads = dense.shape[0]
    index = relative_position_index(window).flatten().to(dense.device)
    invariant = offsets.reshape(heads, -1)[:, index].view_as(dense)  # (heads, N, N)
    residual_rms = (dense - invariant).square().mean(dim=(1, 2)).sqrt()
    bias_rms = dense.square().mean(dim=(1, 2)).sqrt()
    return torch.where(
        bias_rms > 0, residual_rms / bias_rms.clamp_min(torch.finfo(dense.dtype).tiny), torch.zeros_like(bias_rms)
    )


def effective_rank(singular_values: torch.Tensor, energy: float = ENERGY) -> int:
    """Fewest leading singular values whose squares reach `energy` of the total (0 for none nonzero)."""
    squares = singular_values.sort(descending=True).values.square()
    total = float(squares.sum())
    if total == 0.0:
        return 0
    cumulative = squares.cumsum(0) / total
    # The smallest k with cumulative[k-1] >= energy; rounding can leave the full sum a hair below 1.
    return min(int((cumulative < energy).sum()) + 1, squares.numel())


def _factor_singular_values(q_pos: torch.Tensor, k_pos: torch.Tensor, scale: float) -> torch.Tensor:
    """Singular values of `scale * Q K^T` per head from the factors (heads, N, R): (heads, min(N, R)).

    With Q = U_q R_q and K = U_k R_k (reduced QR, orthonormal U), Q K^T = U_q (R_q R_k^T) U_k^T has
    the singular values of the small R_q R_k^T: O(N R^2), not O(N^3).
    """
    r_q = torch.linalg.qr(q_pos, mode="r").R  # (heads, min(N, R), R)
    r_k = torch.linalg.qr(k_pos, mode="r").R
    return torch.linalg.svdvals(r_q @ r_k.transpose(-2, -1)) * abs(scale)


def _dense_and_singular_values(layer: WindowAttention) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's dense bias (heads, N, N) and the singular values of each head's, in its dtype."""
    window, device = layer.window, layer.qkv.weight.device
    kind = layer.spec.kind
    if kind == "additive":
        dense = layer.positional()[0]
        return dense, torch.linalg.svdvals(dense)
    if kind == "factored":
        q_pos, k_pos = layer.positional(window, window, device)  # (heads, N, R) each
        scale = q_pos.shape[-1] ** -0.5 if layer.spec.factor_scale == "rsqrt_rank" else 1.0
        return (q_pos @ k_pos.transpose(-2, -1)) * scale, _factor_singular_values(q_pos, k_pos, scale)
    raise ValueError(
        f"attention layer with bias {layer.bias_kind!r} has no positional bias to analyse "
        f"(bias fields exist for {', '.join(ANALYSED_BIASES)})"
    )


@torch.no_grad()
def layer_field(layer: WindowAttention, index: int = 0, block: int = 0, layer_in_block: int = 0) -> LayerField:
    """Maps and per-head statistics of one attention layer's bias, in float64 (the layer is not changed)."""
    layer = _float64_copy(layer)
    window = layer.window
    dense, singular_values = _dense_and_singular_values(layer)  # (heads, N, N), (heads, k)
    if layer.spec.kind == "additive":
        # The table is the offset mean exactly; summing and dividing equal entries would round.
        span = 2 * window - 1
        offsets = layer.rpb.table.view(-1, span, span)
    else:
        offsets = offset_means(dense, window)
    deviation = translation_deviation(dense, offsets, window)
    centre = centre_token(window)
    lows, highs = dense.amin(dim=(1, 2)), dense.amax(dim=(1, 2))
    rows = [
        {
            "layer": index,
            "block": block,
            "layer_in_block": layer_in_block,
            "window": window,
            "bias": layer.bias_kind,
            "head": head,
            "bias_min": float(lows[head]),
            "bias_max": float(highs[head]),
            "bias_range": float(highs[head] - lows[head]),
            "effective_rank_99": effective_rank(singular_values[head]),
            "translation_deviation": float(deviation[head]),
        }
        for head in range(dense.shape[0])
    ]
    centre_maps = dense[:, centre, :].reshape(-1, window, window)  # (heads, w, w)
    return LayerField(
        index,
        block,
        layer_in_block,
        window,
        layer.bias_kind,
        centre,
        offsets.detach().cpu().numpy().copy(),
        centre_maps.cpu().numpy(),
        rows,
    )


def _float64_copy(layer: WindowAttention) -> WindowAttention:
    """The layer in float64 (statistics of a float32 bias, computed without float32 rounding on top)."""
    return copy.deepcopy(layer).double()


def model_fields(model: SRTransformer) -> list[LayerField]:
    """`layer_field` of every attention layer, in network order (block by block)."""
    fields, index = [], 0
    for block_index, block in enumerate(model.blocks):
        for position, layer in enumerate(block.layers):
            fields.append(layer_field(layer.attn, index, block_index, position))
            index += 1
    return fields


DEFINITIONS = {  # written into stats.json beside the rows
    "offsets": "mean of B[i, j] over token pairs at each offset (dy, dx) = (y_i - y_j, x_i - x_j), query "
    "minus key, index [dy + w-1, dx + w-1]; RPB: its table",
    "centre": "row i = (w//2)*w + w//2 of B (the centre token's bias over the window), shape (w, w)",
    "effective_rank_99": "fewest singular values of the N x N bias whose squares reach 99% of their sum",
    "translation_deviation": "RMS over pairs of (B[i, j] - offset mean) / RMS of B; 0 when B depends on "
    "the offset only (RPB) or is all zero",
}


def analyze_checkpoint(checkpoint: Path, out: Path, weights: str = "ema") -> BiasFields:
    """Bias maps and statistics of every layer and head of a suite checkpoint; writes into `out`:
    stats.csv (COLUMNS, one row per layer and head), stats.json ({"schema_version", "columns", "rows",
    "checkpoint", "model", "weights", "definitions", "provenance"}) and fields.npz (`layer{i}_offsets` (heads, 2w-1,
    2w-1), `layer{i}_centre` (heads, w, w), `windows`, `centre_tokens`). A model without a positional
    bias (bias "none") is refused with a ValueError naming the checkpoint."""
    checkpoint, out = Path(checkpoint), Path(out)
    state = load_checkpoint(checkpoint)
    settings = state["model_config"]
    described = {key: settings[key] for key in ("preset", "bias", "scale")}
    if described["bias"] not in ANALYSED_BIASES:
        raise ValueError(
            f"checkpoint {checkpoint} has no positional bias to analyse: its model ({described['preset']}, "
            f"bias {described['bias']!r}, x{described['scale']}) attends without one; bias fields exist for "
            f"{', '.join(ANALYSED_BIASES)} models"
        )
    model = model_from_checkpoint(state, weights, checkpoint)
    result = BiasFields(checkpoint, weights, described, model_fields(model))

    arrays = {
        "windows": np.array([f.window for f in result.layers]),
        "centre_tokens": np.array([f.centre_token for f in result.layers]),
    }
    for layer in result.layers:
        arrays[f"layer{layer.layer}_offsets"] = layer.offsets
        arrays[f"layer{layer.layer}_centre"] = layer.centre
    atomic_write(out / "fields.npz", lambda handle: np.savez_compressed(handle, **arrays))
    BIAS_FIELDS.table.write(
        out,
        result.rows,
        checkpoint=str(checkpoint),
        model=described,
        weights=weights,
        definitions=DEFINITIONS,
        provenance=run_record(
            torch.device("cpu"),
            checkpoint_sha256=file_sha256(checkpoint),
            checkpoint_iteration=int(state.get("iteration", 0)),
            model_config=settings,
            training_config_hash=state.get("config_hash"),
        ),
    )
    return result


def summary_table(result: BiasFields) -> str:
    """One line per layer for the terminal: window, bias range and, over heads, rank and deviation."""
    header = (
        f"{'layer':>5} {'block.l':>7} {'window':>6} {'bias':>7} {'min':>9} {'max':>9} {'rank99':>7} {'transl.dev':>10}"
    )
    lines = [result.title, header]
    for layer in result.layers:
        rows = layer.rows
        ranks = sorted({row["effective_rank_99"] for row in rows})
        rank_text = f"{ranks[0]}" if len(ranks) == 1 else f"{ranks[0]}-{ranks[-1]}"
        deviation = max(row["translation_deviation"] for row in rows)
        lines.append(
            f"{layer.layer:>5} {layer.block:>5}.{layer.layer_in_block:<1} {layer.window:>6} "
            f"{layer.bias:>7} {min(r['bias_min'] for r in rows):>9.3g} "
            f"{max(r['bias_max'] for r in rows):>9.3g} {rank_text:>7} {deviation:>10.3g}"
        )
    lines.append("rank99: effective rank at 99% energy, range over heads; transl.dev: the largest over heads")
    return "\n".join(lines)


__all__ = [
    "ANALYSED_BIASES",
    "COLUMNS",
    "BiasFields",
    "LayerField",
    "analyze_checkpoint",
    "centre_token",
    "effective_rank",
    "layer_field",
    "model_fields",
    "offset_means",
    "summary_table",
    "translation_deviation",
]
