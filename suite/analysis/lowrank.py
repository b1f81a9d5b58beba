"""An RPB model turned into a flash-capable low-rank model: FlashBias's SVD route (Wu et al., NeurIPS 2025).

Each attention layer's dense RPB bias per head, `B = T[h, rel(i, j)]` (N x N, N = window^2), is
factorised by a truncated SVD, `B ~= U_R S_R V_R^T`, into fixed factors `Q_p = U_R sqrt(S_R)` and
`K_p = V_R sqrt(S_R)` of rank R (the best rank-R approximation in Frobenius norm, Eckart-Young). The
converted network has bias `lowrank` (suite.models.positional.LowRankBias): attention concatenates the
factors to q and k exactly as it does RIB's, so flash kernels run and nothing N x N is built. Every other
weight is copied unchanged. Rank `full` means R = N of each layer: the factorisation is then exact up to
float rounding, and the converted network gives the RPB network's output.

- `svd_factors`, `lowrank_from_rpb`: the conversion in memory, with the relative Frobenius error of the
  bias per layer and head.
- `convert_checkpoint` (`suite convert lowrank`): a suite RPB checkpoint -> a suite lowrank checkpoint.
- `lowrank_table` (`suite analyze lowrank`): the RPB model and its conversions at several ranks,
  PSNR/SSIM on a test set and inference time in one interleaved run -> lowrank.csv, lowrank.json.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from suite.analysis.outputs import LOWRANK
from suite.analysis.variants import prepare, psnr_change_fields, time_variants, timing_record
from suite.checkpoint import load_checkpoint, save_checkpoint
from suite.env import run_record
from suite.evaluate import evaluate
from suite.evaluate.inference import ModelUpscaler, model_from_checkpoint
from suite.files import file_sha256
from suite.models import SRTransformer, WindowAttention, build_model
from suite.profiling.timing import (
    OK,
    is_out_of_memory,
    reason,
)
from suite.rows import render

FULL = "full"
NO_BIAS = 0  # rank 0 in a table: the RPB network with its bias dropped, i.e. how much the bias matters at all
COLUMNS = LOWRANK.table.columns
REFERENCE = "rpb"
CONSOLE_COLUMNS = (
    "variant",
    "rank",
    "bias_rel_error",
    "bias_rel_error_max",
    "psnr",
    "psnr_change",
    "ssim",
    "ssim_change",
    "ms_median",
    "time_ratio",
    "status",
)

Spectrum = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # U (heads, N, N), S (heads, N), V^T (heads, N, N)


def parse_rank(rank: int | str) -> int | str:
    """`4`, `"4"` -> 4; `"full"` -> "full"; anything else (0, negative, not a number) -> ValueError."""
    if rank == FULL:
        return FULL
    if isinstance(rank, str) and rank.strip().isascii() and rank.strip().isdigit():
        rank = int(rank)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise ValueError(f"rank {rank!r} must be a positive integer or 'full'")
    return rank


def rank_label(rank: int | str) -> str:
    return str(rank)


def _rpb_layers(model: SRTransformer, source: str) -> list[tuple[str, WindowAttention]]:
    """(state_dict prefix, layer) of every attention layer, in network order; ValueError unless all are RPB."""
    bias = model.config.get("bias")
    layers = [(name, module) for name, module in model.named_modules() if isinstance(module, WindowAttention)]
    if bias != "rpb" or any(layer.rpb is None for _, layer in layers):
        raise ValueError(
            f"{source} has bias {bias!r}: low-rank conversion factorises an RPB model's dense bias (bias 'rpb')"
        )
    return layers


def layer_ranks(model: SRTransformer, rank: int | str, source: str = "the model") -> list[int]:
    """The rank of each attention layer (network order): R everywhere, or N = window^2 per layer for 'full';
    ValueError for a rank above a layer's N."""
    rank = parse_rank(rank)
    ranks = []
    for index, (_, layer) in enumerate(_rpb_layers(model, source)):
        tokens = layer.window * layer.window
        if rank != FULL and rank > tokens:
            raise ValueError(
                f"rank {rank} exceeds N = {layer.window}^2 = {tokens} tokens of attention layer "
                f"{index} ({layer.window}x{layer.window} window) of {source}; use a rank in "
                f"1..{tokens} or 'full'"
            )
        ranks.append(tokens if rank == FULL else rank)
    return ranks


def spectra(model: SRTransformer) -> list[Spectrum]:
    """The SVD of every RPB layer's dense bias, (U, S, V^T) per layer, float64 on the CPU (computed once,
    then truncated at every rank)."""
    with torch.no_grad():
        return [
            torch.linalg.svd(layer.rpb()[0].detach().cpu().double()) for _, layer in _rpb_layers(model, "the model")
        ]


def _truncate(spectrum: Spectrum, rank: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    u, s, vh = spectrum
    root = s[:, None, :rank].sqrt()  # (heads, 1, R): the singular values split evenly between the factors
    return (u[..., :rank] * root).to(dtype), (vh[:, :rank, :].transpose(-2, -1) * root).to(dtype)


def svd_factors(bias: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best rank-R factors of each head's bias: (heads, N, N) -> Q_p, K_p (heads, N, R) in the bias's dtype,
    `Q_p K_p^T = U_R S_R V_R^T` (`Q_p = U_R sqrt(S_R)`, `K_p = V_R sqrt(S_R)`); the SVD runs in float64."""
    if bias.dim() != 3 or bias.shape[1] != bias.shape[2]:
        raise ValueError(f"bias must be (heads, N, N), got {tuple(bias.shape)}")
    if not 0 < rank <= bias.shape[1]:
        raise ValueError(f"rank {rank} must be in 1..N = {bias.shape[1]}")
    return _truncate(torch.linalg.svd(bias.detach().double()), rank, bias.dtype)


def _relative_error(bias: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor) -> tuple[list[float], float, float]:
    """Per head ||B - Q_p K_p^T||_F / ||B||_F of the stored factors, and the squared norms (error, bias) summed."""
    bias = bias.double()
    diff = (bias - q_pos.double() @ k_pos.double().transpose(-2, -1)).square().sum(dim=(1, 2))  # (heads,)
    norm = bias.square().sum(dim=(1, 2))
    per_head = [math.sqrt(d / n) if n > 0 else math.sqrt(d) for d, n in zip(diff.tolist(), norm.tolist())]
    return per_head, float(diff.sum()), float(norm.sum())


def lowrank_from_rpb(
    model: SRTransformer, rank: int | str, spectra_: list[Spectrum] | None = None
) -> tuple[SRTransformer, dict]:
    """Convert an RPB network to bias `lowrank` at `rank` (an integer, or 'full' for N per layer).

    Returns (the converted network, on the model's device and in its train/eval mode; its errors:
    {"bias_rel_error": over all layers and heads, "bias_rel_error_max": worst layer/head, "layers": one
    {layer, block, layer_in_block, window, rank, head, rel_error} per layer and head}).
    `spectra_` (from `spectra(model)`) saves the SVDs when converting one model at several ranks.
    """
    ranks = layer_ranks(model, rank)
    layers = _rpb_layers(model, "the model")
    spectra_ = spectra(model) if spectra_ is None else spectra_
    per_block = len(model.config["window_sizes"])
    # Every block cycles the same windows, so the same ranks.
    converted = build_model(**{**model.config, "bias": "lowrank", "ranks": ranks[:per_block]})

    state = {key: value for key, value in model.state_dict().items() if not key.endswith(".rpb.table")}
    rows, error_sq, norm_sq = [], 0.0, 0.0
    with torch.no_grad():
        for index, ((prefix, layer), spectrum, layer_rank) in enumerate(zip(layers, spectra_, ranks)):
            dtype = layer.rpb.table.dtype
            q_pos, k_pos = _truncate(spectrum, layer_rank, dtype)  # (heads, N, R) each
            state[f"{prefix}.lowrank.q_factors"], state[f"{prefix}.lowrank.k_factors"] = q_pos, k_pos
            per_head, layer_error, layer_norm = _relative_error(layer.rpb()[0].detach().cpu(), q_pos, k_pos)
            error_sq, norm_sq = error_sq + layer_error, norm_sq + layer_norm
            rows += [
                {
                    "layer": index,
                    "block": index // per_block,
                    "layer_in_block": index % per_block,
                    "window": layer.window,
                    "rank": layer_rank,
                    "head": head,
                    "rel_error": error,
                }
                for head, error in enumerate(per_head)
            ]
    converted.load_state_dict(state)  # strict: every weight of the converted network comes from the model
    device = next(model.parameters()).device
    converted = converted.to(device).train(model.training)
    overall = math.sqrt(error_sq / norm_sq) if norm_sq > 0 else math.sqrt(error_sq)
    errors = {"bias_rel_error": overall, "bias_rel_error_max": max(row["rel_error"] for row in rows), "layers": rows}
    return converted, errors


def without_bias(model: SRTransformer) -> SRTransformer:
    """The RPB network with its tables dropped and every other weight kept (bias 'none'): rank 0."""
    _rpb_layers(model, "the model")
    plain = build_model(**{**model.config, "bias": "none"})
    plain.load_state_dict({key: value for key, value in model.state_dict().items() if not key.endswith(".rpb.table")})
    return plain.to(next(model.parameters()).device).train(model.training)


def _table_rank(rank: int | str) -> int | str:
    """A rank of `lowrank_table`: those of `parse_rank`, and 0 (NO_BIAS)."""
    if str(rank).strip() == str(NO_BIAS):
        return NO_BIAS
    return parse_rank(rank)


def _load_rpb_state(checkpoint: Path) -> dict:
    state = load_checkpoint(checkpoint)
    bias = state["model_config"].get("bias")
    if bias != "rpb":
        raise ValueError(
            f"checkpoint {checkpoint} has bias {bias!r}: low-rank conversion factorises an RPB "
            f"model's dense bias (bias 'rpb')"
        )
    return state


def convert_checkpoint(checkpoint: str | Path, rank: int | str, out: str | Path) -> dict:
    """Write a suite checkpoint of `checkpoint` (an RPB model) converted to bias `lowrank` at `rank`.

    Every weight set the source holds (`ema`, `model`) is converted under its own key; the training state
    (optimizer, schedule) is not carried: the result is for evaluation. Provenance: {"converted_from":
    {source, source_sha256, rank, ranks per layer, bias errors per weight set}, **run_record()}. Refuses
    an existing `out` (nothing is overwritten), a non-RPB checkpoint and a rank outside 1..N. Returns the
    written state.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists():
        raise ValueError(f"--out {out} exists; remove it or choose another path (nothing is overwritten)")
    rank = parse_rank(rank)
    state = _load_rpb_state(checkpoint)
    converted_state: dict = {}
    errors: dict[str, dict] = {}
    config = ranks = None
    for weights in ("ema", "model"):
        if weights not in state:
            continue
        model = model_from_checkpoint(state, weights, checkpoint)
        ranks = layer_ranks(model, rank, f"checkpoint {checkpoint}")
        converted, errors[weights] = lowrank_from_rpb(model, rank)
        converted_state[weights] = converted.state_dict()
        config = converted.config
    provenance = {
        "source": str(checkpoint),
        "source_sha256": file_sha256(checkpoint),
        "source_iteration": int(state.get("iteration", 0)),
        "source_name": state.get("config", {}).get("name"),
        "method": "truncated SVD of each layer's dense RPB bias per head (FlashBias): Q_p = U_R sqrt(S_R), "
        "K_p = V_R sqrt(S_R)",
        "rank": rank,
        "layer_ranks": ranks,
        "bias_errors": errors,
    }
    written = {"model_config": config, **converted_state, "provenance": {"converted_from": provenance, **run_record()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(written, out)
    return written


def lowrank_table(
    checkpoint: str | Path,
    data: str | Path,
    scale: int,
    ranks: Sequence[int | str],
    out: str | Path,
    *,
    name: str | None = None,
    protocol: str = "basicsr-y",
    device: str = "auto",
    threads: int | None = None,
    rounds: int = 3,
    warmup: int = 1,
) -> list[dict]:
    """The RPB model of `checkpoint` (its EMA weights, as `suite eval`) and its low-rank conversions at
    `ranks` (integers or 'full'; 0 is the network with its bias dropped, variant `no-bias`, bias error 1):
    bias error, PSNR/SSIM on `data` and inference time -> rows (COLUMNS), first `rpb`, then `lowrank-R`
    in the order given; writes out/lowrank.csv, out/lowrank.json and prints a short table.

    Time: one (1, 3, h, w) forward of the first test image under torch.inference_mode, every variant in
    one interleaved run (time_interleaved); `time_ratio` is the geometric mean of the per-round ratios to `rpb`.
    A variant that runs out of memory (evaluating or timing) keeps a row with status "oom" and its reason.
    `rank` is R (N of the largest window for 'full', where each layer uses its own N); empty for `rpb`.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    labels = list(dict.fromkeys(rank_label(_table_rank(rank)) for rank in ranks))
    if not labels:
        raise ValueError("no ranks to evaluate")
    state = _load_rpb_state(checkpoint)
    if state["model_config"]["scale"] != scale:
        raise ValueError(f"checkpoint {checkpoint} is a x{state['model_config']['scale']} model, --scale asks x{scale}")
    rpb_model = model_from_checkpoint(state, "ema", checkpoint)
    for label in labels:  # every rank checked before any work
        if _table_rank(label) != NO_BIAS:
            layer_ranks(rpb_model, parse_rank(label), f"checkpoint {checkpoint}")
    device, torch_device, dataset = prepare(data, scale, name, device, threads, rounds, warmup)

    svds = spectra(rpb_model)
    models: dict[str, SRTransformer] = {REFERENCE: rpb_model}
    rows = [
        {
            **dict.fromkeys(COLUMNS),
            "variant": REFERENCE,
            "rank": None,
            "rank_label": "-",
            "bias_rel_error": 0.0,
            "bias_rel_error_max": 0.0,
            "status": OK,
            "reason": "",
        }
    ]
    layer_errors: dict[str, list[dict]] = {}
    for label in labels:
        if _table_rank(label) == NO_BIAS:
            models["no-bias"] = without_bias(rpb_model)
            rows.append(
                {
                    **dict.fromkeys(COLUMNS),
                    "variant": "no-bias",
                    "rank": NO_BIAS,
                    "rank_label": label,
                    "bias_rel_error": 1.0,
                    "bias_rel_error_max": 1.0,
                    "status": OK,
                    "reason": "",
                }
            )
            continue
        variant = f"lowrank-{label}"
        converted, errors = lowrank_from_rpb(rpb_model, parse_rank(label), svds)
        models[variant] = converted
        layer_errors[variant] = errors["layers"]
        rows.append(
            {
                **dict.fromkeys(COLUMNS),
                "variant": variant,
                "rank": max(row["rank"] for row in errors["layers"]),
                "rank_label": label,
                "bias_rel_error": errors["bias_rel_error"],
                "bias_rel_error_max": errors["bias_rel_error_max"],
                "status": OK,
                "reason": "",
            }
        )

    metric_options = None
    upscalers: dict[str, ModelUpscaler] = {}
    results: dict[str, dict] = {}  # evaluations, by variant
    for row in rows:
        upscaler = ModelUpscaler(models[row["variant"]], torch_device)
        try:
            result = evaluate(upscaler, dataset, scale, row["variant"], device=device, protocol=protocol)
        except Exception as err:  # out of memory is a result (a row); anything else a bug, re-raised
            if not is_out_of_memory(err):
                raise
            row.update(status="oom", reason=reason(err))
            continue
        row.update(psnr=result["psnr"], ssim=result["ssim"])
        results[row["variant"]] = result
        metric_options = result["metric_options"]
        upscalers[row["variant"]] = upscaler
    reference = results.get(rows[0]["variant"])
    for row in rows:
        if row["variant"] in results and reference is not None:
            row.update(
                psnr_change_fields(results[row["variant"]], reference), ssim_change=row["ssim"] - reference["ssim"]
            )
    time_variants(rows, lambda row: row["variant"], upscalers, REFERENCE, dataset, torch_device, rounds, warmup)

    document = {
        "checkpoint": str(checkpoint),
        "dataset": dataset.name,
        "data_path": str(data),
        "scale": scale,
        "protocol": protocol,
        "metric_options": metric_options,
        "weights": "ema",
        "window_sizes": rpb_model.config["window_sizes"],
        "layer_errors": layer_errors,
        "timing": timing_record(dataset, rounds, warmup),
        "provenance": run_record(
            device=device, checkpoint_sha256=file_sha256(checkpoint), model_config=rpb_model.config
        ),
    }
    written = LOWRANK.table.write(out, rows, **document)
    print(render(rows, CONSOLE_COLUMNS))
    print(*(f"{row['variant']}: {row['reason']}" for row in rows if row["reason"]), sep="\n")
    print(f"-> {', '.join(map(str, written))}")
    return rows
