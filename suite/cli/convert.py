"""`suite convert released|lowrank`: checkpoints into suite checkpoints.

- `released`: a released official checkpoint (BasicSR file) -> a suite checkpoint of a paper preset.
- `lowrank`: a suite RPB checkpoint -> a suite checkpoint with bias `lowrank`: each layer's dense RPB bias
  per head factorised by a truncated SVD into fixed rank-R factors (FlashBias's SVD route), which attention
  concatenates to q and k as it does RIB's, so flash kernels run (suite.analysis.lowrank).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from suite.cli import add_override_option
from suite.models.biases import REGISTRY

# The biases the official code offers (RPB's Naive, SDPA and Flex included): what a released file can hold.
OFFICIAL_BIASES = tuple(bias for bias, spec in REGISTRY.items() if spec.official)
# The paper presets released checkpoints fit, kept here so that building the parser imports no torch;
# tests/test_official.py checks them against suite.models.OFFICIAL_NAMES.
OFFICIAL_PRESETS = ("light", "light+", "base", "base+", "large", "large+", "XL+")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert checkpoints: a released official one (BasicSR .pth), an RPB model to low rank",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="conversion", required=True, metavar="{released,lowrank}")

    released = kinds.add_parser(
        "released",
        help="a released official checkpoint (BasicSR .pth) -> a suite checkpoint",
        description="Read a BasicSR file of the official SST code (params_ema, else params; weights_only), "
        "convert its keys and layouts to the preset's network and write a suite checkpoint "
        "(the weights as `ema` for params_ema, `model` for params) with the source's SHA-256 "
        "and the conversion in its provenance. A file that does not fit the preset is an error "
        "listing the missing, unexpected and mis-shaped keys.",
    )
    released.add_argument("source", type=Path, help="the released .pth file, e.g. SST_DF2K_X2.pth")
    released.add_argument(
        "--preset", required=True, choices=OFFICIAL_PRESETS, help="the paper preset it was trained as"
    )
    released.add_argument("--scale", required=True, type=int, choices=(2, 3, 4), help="its upscaling factor")
    released.add_argument(
        "--bias",
        default="rib",
        choices=OFFICIAL_BIASES,
        help="positional bias of the released network: "
        + ", ".join(f"{bias} (official {REGISTRY[bias].official})" for bias in OFFICIAL_BIASES)
        + "; default rib",
    )
    add_override_option(
        released,
        "model fields of the released network that differ from the preset (e.g. a "
        "released RoPE network: rope_form=axial; small test networks: dim=16 n_blocks=1)",
    )
    released.add_argument("--out", required=True, type=Path, help="suite checkpoint to write (must not exist)")
    released.set_defaults(func=_released)

    lowrank = kinds.add_parser(
        "lowrank",
        help="a suite RPB checkpoint -> bias lowrank (truncated SVD of each layer's bias; flash kernels allowed)",
        description="Factorise every attention layer's dense RPB bias per head (N x N, N = window^2) by a "
        "truncated SVD into fixed factors Q_p = U_R sqrt(S_R), K_p = V_R sqrt(S_R) and write a "
        "suite checkpoint with bias `lowrank` (ranks R per layer): attention concatenates the "
        "factors to q and k as it does RIB's, so no N x N tensor is built and flash kernels run. "
        "Every weight set of the source (ema, model) is converted; other weights are copied. "
        "The provenance records the source's SHA-256 and the relative Frobenius error of the "
        "bias per layer and head. `suite eval --checkpoint OUT` evaluates the result.",
    )
    lowrank.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT", help="a suite RPB checkpoint")
    lowrank.add_argument(
        "--rank",
        required=True,
        metavar="R|full",
        help="rank R of every layer (1..N), or 'full' for N = window^2 per layer (exact)",
    )
    lowrank.add_argument(
        "--out", required=True, type=Path, metavar="CKPT", help="suite checkpoint to write (must not exist)"
    )
    lowrank.set_defaults(func=_lowrank)


def _released(args: argparse.Namespace) -> int:
    if args.out.exists():
        raise ValueError(f"--out {args.out} exists; remove it or choose another path (nothing is overwritten)")
    from suite.checkpoint import save_checkpoint
    from suite.env import run_record
    from suite.models.official import load_released
    from suite.overrides import parse_field_overrides

    model, provenance = load_released(
        args.source, args.preset, args.scale, args.bias, parse_field_overrides(args.override)
    )
    weights_key = "ema" if provenance["param_key"] == "params_ema" else "model"
    state = {
        "model_config": model.config,
        weights_key: model.state_dict(),
        "provenance": {"converted_from": provenance, **run_record()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, args.out)
    print(
        f"{args.out}: {args.preset} x{args.scale} {args.bias} from {args.source} "
        f"({provenance['param_key'] or provenance['format']}, sha256 {provenance['source_sha256'][:12]}...)"
    )
    return 0


def _lowrank(args: argparse.Namespace) -> int:
    from suite.analysis.lowrank import convert_checkpoint  # refuses an existing --out before any work

    state = convert_checkpoint(args.checkpoint, args.rank, args.out)
    source = state["provenance"]["converted_from"]
    print(
        f"{args.out}: {state['model_config']['preset']} x{state['model_config']['scale']} lowrank, rank "
        f"{source['rank']} (per layer {source['layer_ranks']}) from {args.checkpoint} "
        f"(sha256 {source['source_sha256'][:12]}...)"
    )
    print(f"{'weights':<8} {'bias error':>10} {'worst layer/head':>16}")
    for weights, errors in source["bias_errors"].items():
        print(f"{weights:<8} {errors['bias_rel_error']:>10.3e} {errors['bias_rel_error_max']:>16.3e}")
    return 0
