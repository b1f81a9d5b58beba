"""`suite convert`: a released official checkpoint (BasicSR file) -> a suite checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

# The paper presets released checkpoints fit, kept here so that building the parser imports no torch;
# tests/test_official.py checks them against suite.models.OFFICIAL_NAMES.
OFFICIAL_PRESETS = ("light", "light+", "base", "base+", "large", "large+", "XL+")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a released official checkpoint (BasicSR .pth) into a suite checkpoint",
        description="Read a BasicSR file of the official SST code (params_ema, else params; weights_only), "
                    "convert its keys and layouts to the preset's network and write a suite checkpoint "
                    "(the weights as `ema` for params_ema, `model` for params) with the source's SHA-256 "
                    "and the conversion in its provenance. A file that does not fit the preset is an error "
                    "listing the missing, unexpected and mis-shaped keys.",
    )
    parser.add_argument("source", type=Path, help="the released .pth file, e.g. SST_DF2K_X2.pth")
    parser.add_argument("--preset", required=True, choices=OFFICIAL_PRESETS, help="the paper preset it was trained as")
    parser.add_argument("--scale", required=True, type=int, choices=(2, 3, 4), help="its upscaling factor")
    parser.add_argument("--bias", default="rib", choices=("rib", "rpb", "none"), help="positional bias (default rib)")
    parser.add_argument("--out", required=True, type=Path, help="suite checkpoint to write (must not exist)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.out.exists():
        raise ValueError(f"--out {args.out} exists; remove it or choose another path (nothing is overwritten)")
    from suite.checkpoint import save_checkpoint
    from suite.env import run_record
    from suite.models.official import load_released

    model, provenance = load_released(args.source, args.preset, args.scale, args.bias)
    weights_key = "ema" if provenance["param_key"] == "params_ema" else "model"
    state = {
        "model_config": model.config,
        weights_key: model.state_dict(),
        "provenance": {"converted_from": provenance, **run_record()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, args.out)
    print(f"{args.out}: {args.preset} x{args.scale} {args.bias} from {args.source} "
          f"({provenance['param_key']}, sha256 {provenance['source_sha256'][:12]}...)")
    return 0
