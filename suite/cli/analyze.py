"""`suite analyze bias|lowrank|windows`: research tools on trained checkpoints (suite.analysis).

- `bias`: the positional bias every attention layer and head learned, as maps (RPB's table over
  relative offsets; RIB's `Q_p K_p^T / sqrt(R)` as the centre token's row and as the mean over token
  pairs at each offset), with per-layer statistics.
- `lowrank`: an RPB model converted to fixed rank-R factors by truncated SVD (the concatenation path
  of RIB, flash kernels allowed) at several ranks: bias error, PSNR/SSIM change and inference time
  against the RPB model, timed in one interleaved run.
- `windows`: a RIB model evaluated at scaled windows: PSNR/SSIM and inference time per factor (an
  RPB model is refused per factor, with its error, in the table).

Each writes CSV + JSON (the JSON with a run record) into --out. This module imports no torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from suite.cli import positive_float, positive_int


def _timing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (cuda when available; default), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's own, recorded)")
    parser.add_argument("--rounds", type=int, default=3, help="timed interleaved rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")


def _data_options(parser: argparse.ArgumentParser) -> None:
    from suite.metrics import DEFAULT_PROTOCOL, PROTOCOLS

    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="test set folder (as suite eval)")
    parser.add_argument("--scale", type=int, required=True, help="upscaling factor of the checkpoint")
    parser.add_argument("--name", help="dataset name recorded in the result (default: from the folder)")
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, default=DEFAULT_PROTOCOL, help=f"metric protocol (default {DEFAULT_PROTOCOL})"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="research tools on checkpoints: learned bias fields, low-rank RPB, window extrapolation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tools = parser.add_subparsers(dest="analysis", required=True, metavar="{bias,lowrank,windows}")

    bias = tools.add_parser("bias", help="the learned positional bias of every layer and head, as images + CSV")
    bias.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT", help="a suite checkpoint")
    bias.add_argument("--weights", choices=("ema", "model"), default="ema", help="which weights (default ema)")
    bias.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder: stats.csv, stats.json, fields.npz, offsets.png/pdf, centre.png/pdf",
    )
    bias.set_defaults(func=_bias)

    lowrank = tools.add_parser("lowrank", help="an RPB model at low rank (truncated SVD): bias error, PSNR, time")
    lowrank.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT", help="a suite RPB checkpoint")
    lowrank.add_argument(
        "--ranks",
        nargs="+",
        default=["0", "4", "8", "16", "32", "full"],
        help="ranks R (integers, 'full' for N = window^2, 0 for the network with its bias "
        "dropped; default 0 4 8 16 32 full)",
    )
    _data_options(lowrank)
    _timing_options(lowrank)
    lowrank.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output folder: lowrank.csv, lowrank.json"
    )
    lowrank.set_defaults(func=_lowrank)

    windows = tools.add_parser("windows", help="a RIB model at scaled windows: PSNR and time per factor")
    windows.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT", help="a suite checkpoint")
    windows.add_argument(
        "--factors",
        type=positive_float,
        nargs="+",
        default=[0.5, 1.0, 1.5, 2.0],
        help="window scale factors (default 0.5 1 1.5 2)",
    )
    _data_options(windows)
    _timing_options(windows)
    windows.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output folder: windows.csv, windows.json"
    )
    windows.set_defaults(func=_windows)


def _bias(args: argparse.Namespace) -> int:
    from suite.analysis.bias_fields import analyze_checkpoint, summary_table
    from suite.report.bias_figures import save_bias_figures

    result = analyze_checkpoint(args.checkpoint, args.out, weights=args.weights)
    figures = save_bias_figures(result, args.out)
    print(summary_table(result))
    print(f"wrote stats.csv, stats.json, fields.npz and {', '.join(path.name for path in figures)} to {args.out}")
    return 0


def _lowrank(args: argparse.Namespace) -> int:
    from suite.analysis.lowrank import lowrank_table

    lowrank_table(
        args.checkpoint,
        args.data,
        args.scale,
        args.ranks,
        args.out,
        name=args.name,
        protocol=args.protocol,
        device=args.device,
        threads=args.threads,
        rounds=args.rounds,
        warmup=args.warmup,
    )
    return 0


def _windows(args: argparse.Namespace) -> int:
    from suite.analysis.windows import window_table
    from suite.evaluate.inference import check_window_factor

    for factor in args.factors:
        check_window_factor(factor, "--factors")

    window_table(
        args.checkpoint,
        args.data,
        args.scale,
        args.factors,
        args.out,
        name=args.name,
        protocol=args.protocol,
        device=args.device,
        threads=args.threads,
        rounds=args.rounds,
        warmup=args.warmup,
    )
    return 0
