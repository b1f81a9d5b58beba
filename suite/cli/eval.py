"""`suite eval`: score an upscaler (classical method or trained checkpoint) on a dataset -> JSON + one line."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# Overlap between tiles when --tile is given without --overlap (LR pixels).
DEFAULT_OVERLAP = 16


def _bicubic(scale: int):
    from suite.data.resize import imresize

    def upscale(lr: np.ndarray) -> np.ndarray:
        return imresize(lr, float(scale))

    return upscale


METHODS = {"bicubic": _bicubic}


def _model_only_flags(args: argparse.Namespace) -> list[str]:
    given = [("--tile", args.tile is not None), ("--overlap", args.overlap is not None),
             ("--self-ensemble", args.self_ensemble)]
    return [flag for flag, present in given if present]


def build_upscaler(args: argparse.Namespace) -> tuple[object, str, dict]:
    """-> (upscale(lr uint8 HWC) -> sr uint8 HWC, method name, provenance items)."""
    if args.method is not None:
        misplaced = _model_only_flags(args)
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)}: model inference options, valid only with --checkpoint "
                             f"(not --method {args.method})")
        return METHODS[args.method](args.scale), args.method, {}
    try:
        from suite.evaluate.checkpoint import load_upscaler  # written with the training code
    except ModuleNotFoundError as err:
        if err.name != "suite.evaluate.checkpoint":
            raise
        raise RuntimeError("--checkpoint needs suite.evaluate.checkpoint, which this checkout lacks") from err
    overlap = args.overlap if args.overlap is not None else DEFAULT_OVERLAP
    upscale = load_upscaler(args.checkpoint, args.device, args.tile, overlap, args.self_ensemble)
    method = getattr(upscale, "method", args.checkpoint.stem)
    return upscale, method, {"checkpoint": str(args.checkpoint), "tile": args.tile, "overlap": overlap,
                             "self_ensemble": args.self_ensemble, **getattr(upscale, "provenance", {})}


def _run(args: argparse.Namespace) -> int:
    from suite.data.datasets import open_paired
    from suite.evaluate import evaluate
    from suite.files import write_json_atomic

    if args.scale < 2:
        raise ValueError(f"--scale must be 2 or more, got {args.scale}")
    dataset = open_paired(args.data, args.scale, split=args.split)
    if args.name:
        dataset.name = args.name
    upscale, method, extra = build_upscaler(args)
    extra["data_path"] = str(args.data)
    result = evaluate(upscale, dataset, args.scale, method, save_images=args.save_images,
                      device=args.device, extra_provenance=extra)
    write_json_atomic(args.out, result)
    print(f"{result['dataset']} x{args.scale} {method}: PSNR {result['psnr']:.4f} dB, "
          f"SSIM {result['ssim']:.4f} over {result['n_images']} images -> {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="PSNR/SSIM (Y channel, border = scale) of an upscaler on a dataset",
        description="Evaluate a classical method or a trained checkpoint on a benchmark folder, a DIV2K "
                    "root or an HR-only folder; writes JSON and prints a one-line summary.")
    upscaler = parser.add_mutually_exclusive_group(required=True)
    upscaler.add_argument("--method", choices=sorted(METHODS), help="classical upscaler (MATLAB bicubic)")
    upscaler.add_argument("--checkpoint", type=Path, metavar="CKPT", help="trained model checkpoint")
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset folder")
    parser.add_argument("--scale", type=int, required=True, help="upscaling factor (2, 3, 4, ...)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="result JSON")
    parser.add_argument("--split", default="valid", help="DIV2K half when --data is a DIV2K root (default valid)")
    parser.add_argument("--name", help="dataset name recorded in the result (default: from the folder)")
    parser.add_argument("--save-images", type=Path, metavar="DIR", help="also write the SR images here")
    parser.add_argument("--device", default="cpu", help="torch device for the model and metrics (default cpu)")
    model = parser.add_argument_group("model inference (with --checkpoint)")
    model.add_argument("--tile", type=int, metavar="T",
                       help="run the model on LR tiles of T x T (default: whole image)")
    model.add_argument("--overlap", type=int, metavar="O",
                       help=f"overlap of neighbouring tiles in LR pixels (default {DEFAULT_OVERLAP})")
    model.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations (x8 time)")
    parser.set_defaults(func=_run)
