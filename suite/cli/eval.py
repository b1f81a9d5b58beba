"""`suite eval`: score an upscaler (classical method, suite checkpoint or released BasicSR checkpoint) on a
dataset -> JSON + one line."""

from __future__ import annotations

import argparse
from pathlib import Path

from suite.cli import add_override_option, positive_float
from suite.cli.convert import OFFICIAL_BIASES

# Overlap between tiles when --tile is given without --overlap (LR pixels).
DEFAULT_OVERLAP = 16
METHODS = ("bicubic",)


def _bicubic(scale: int):
    from suite.data.resize import imresize

    def upscale(lr):
        return imresize(lr, float(scale))

    return upscale


def _released_only_flags(args: argparse.Namespace) -> list[str]:
    given = [("--bias", args.bias is not None), ("--override", bool(args.override))]
    return [flag for flag, present in given if present]


def _model_only_flags(args: argparse.Namespace) -> list[str]:
    given = [
        ("--tile", args.tile is not None),
        ("--overlap", args.overlap is not None),
        ("--self-ensemble", args.self_ensemble),
        ("--preset", args.preset is not None),
        ("--precision", args.precision != "fp32"),
        ("--compile", args.compile),
        ("--window-scale", args.window_scale is not None),
        ("--window-sizes", args.window_sizes is not None),
    ]
    return [flag for flag, present in given if present] + _released_only_flags(args)


def build_upscaler(args: argparse.Namespace, device: str, largest_input: int) -> tuple[object, str, dict]:
    """-> (upscale(lr uint8 HWC) -> sr uint8 HWC, method name, provenance items). `largest_input`: the longest
    LR side of the dataset, which asked windows are fitted to (suite.evaluate.inference.apply_window_sizes)."""
    if args.method is not None:
        misplaced = _model_only_flags(args)
        if misplaced:
            raise ValueError(
                f"{', '.join(misplaced)}: model inference options, valid only with --checkpoint "
                f"(not --method {args.method})"
            )
        return _bicubic(args.scale), args.method, {}
    from suite.evaluate.inference import check_window_factor, load_upscaler
    from suite.overrides import parse_field_overrides

    if args.preset is None and _released_only_flags(args):
        raise ValueError(
            f"{', '.join(_released_only_flags(args))}: options of a released checkpoint, valid only "
            f"with --preset (a suite checkpoint carries its own model settings)"
        )
    overlap = args.overlap if args.overlap is not None else DEFAULT_OVERLAP
    if args.window_scale is not None:
        check_window_factor(args.window_scale, "--window-scale")
    loaded = load_upscaler(
        args.checkpoint,
        device,
        args.tile,
        overlap,
        args.self_ensemble,
        preset=args.preset,
        scale=args.scale,
        bias=args.bias or "rib",
        model_overrides=parse_field_overrides(args.override) if args.preset else None,
        precision=args.precision,
        compile=args.compile,
        window_sizes=args.window_sizes,
        window_scale=args.window_scale,
        largest_input=min(largest_input, args.tile) if args.tile else largest_input,
    )
    if loaded.upscale.scale != args.scale:
        raise ValueError(
            f"--checkpoint {args.checkpoint} is a x{loaded.upscale.scale} model, --scale asks x{args.scale}"
        )
    return (
        loaded.upscale,
        loaded.method,
        {
            "checkpoint": str(args.checkpoint),
            "tile": args.tile,
            "overlap": overlap,
            "self_ensemble": args.self_ensemble,
            **loaded.provenance,
        },
    )


def _run(args: argparse.Namespace) -> int:
    from suite.data.datasets import open_paired
    from suite.env import resolve_device
    from suite.evaluate import evaluate
    from suite.files import check_regular_target, write_json_atomic

    if args.scale < 2:
        raise ValueError(f"--scale must be 2 or more, got {args.scale}")
    check_regular_target(args.out)  # refuse a bad --out before any work
    device = resolve_device(args.device)
    dataset = open_paired(args.data, args.scale, split=args.split)
    if args.name:
        dataset.name = args.name
    upscale, method, extra = build_upscaler(args, device, dataset.largest_lr_side())
    extra["data_path"] = str(args.data)
    result = evaluate(
        upscale,
        dataset,
        args.scale,
        method,
        save_images=args.save_images,
        device=device,
        extra_provenance=extra,
        protocol=args.protocol,
    )
    write_json_atomic(args.out, result)
    print(
        f"{result['dataset']} x{args.scale} {method}{_weights_note(result['provenance'])}"
        f"{_windows_note(result['provenance'])}: PSNR "
        f"{result['psnr']:.4f} dB, SSIM {result['ssim']:.4f} over {result['n_images']} images -> {args.out}"
    )
    return 0


def _weights_note(provenance: dict) -> str:
    """' (params_ema weights)' for a released file, ' (ema weights)' for a suite checkpoint: the key read."""
    key = provenance.get("conversion", {}).get("param_key") or provenance.get("weights")
    return f" ({key} weights)" if key else ""


def _windows_note(provenance: dict) -> str:
    """' at windows 16 16 (trained 32 32)' when the network ran at other windows than it was trained at."""
    evaluated = provenance.get("window_sizes")
    trained = provenance.get("model_config", {}).get("window_sizes")
    if evaluated is None or trained is None or list(evaluated) == list(trained):
        return ""
    return f" at windows {' '.join(map(str, evaluated))} (trained {' '.join(map(str, trained))})"


def register(subparsers: argparse._SubParsersAction) -> None:
    # Only `suite eval ...` registers this (not `suite --help`), and it runs a network anyway.
    from suite.metrics import DEFAULT_PROTOCOL, PROTOCOLS
    from suite.models import PRECISIONS

    parser = subparsers.add_parser(
        "eval",
        help="PSNR/SSIM of an upscaler (classical, suite or released checkpoint) on a dataset",
        description="Evaluate a classical method, a suite checkpoint or a released BasicSR checkpoint "
        "(with --preset) on a benchmark folder, a DIV2K root or an HR-only folder; writes "
        "JSON and prints a one-line summary.",
    )
    upscaler = parser.add_mutually_exclusive_group(required=True)
    upscaler.add_argument("--method", choices=METHODS, help="classical upscaler (MATLAB bicubic)")
    upscaler.add_argument(
        "--checkpoint",
        type=Path,
        metavar="CKPT",
        help="a suite checkpoint, or a released BasicSR .pth (or .safetensors of its state dict) with --preset",
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset folder")
    parser.add_argument("--scale", type=int, required=True, help="upscaling factor (2, 3, 4, ...)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="result JSON")
    parser.add_argument("--split", default="valid", help="DIV2K half when --data is a DIV2K root (default valid)")
    parser.add_argument("--name", help="dataset name recorded in the result (default: from the folder)")
    parser.add_argument("--save-images", type=Path, metavar="DIR", help="also write the SR images here")
    parser.add_argument(
        "--device",
        default="auto",
        help="torch device for the model and metrics: cpu, cuda, cuda:N, or auto (default: cuda when available)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=DEFAULT_PROTOCOL,
        help=f"metric protocol (default {DEFAULT_PROTOCOL}, BasicSR's on the unrounded Y channel)",
    )
    model = parser.add_argument_group("model inference (with --checkpoint)")
    model.add_argument(
        "--preset", metavar="P", help="the paper preset of a released BasicSR checkpoint (light, base, large, ..., XL+)"
    )
    model.add_argument(
        "--bias",
        choices=OFFICIAL_BIASES,
        help="with --preset: the positional bias of the released network (default rib)",
    )
    add_override_option(
        model,
        "with --preset: model fields of the released network that differ from the preset "
        "(e.g. small test networks: dim=16 n_blocks=1)",
    )
    model.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32 (default), autocast-bf16, or attention-bf16 (the official setting)",
    )
    model.add_argument("--compile", action="store_true", help="torch.compile the network (off by default)")
    model.add_argument(
        "--tile", type=int, metavar="T", help="run the model on LR tiles of T x T (default: whole image)"
    )
    model.add_argument(
        "--overlap",
        type=int,
        metavar="O",
        help=f"overlap of neighbouring tiles in LR pixels (default {DEFAULT_OVERLAP})",
    )
    model.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations (x8 time)")
    windows = model.add_mutually_exclusive_group()
    windows.add_argument(
        "--window-scale",
        type=positive_float,
        metavar="F",
        help="run the network at its trained attention windows times F, rounded half up (RIB "
        "only: an RPB table fixes its window)",
    )
    windows.add_argument(
        "--window-sizes",
        type=int,
        nargs="+",
        metavar="W",
        help="run the network at these attention windows, one per layer of a block (as the "
        "model's window_sizes; RIB only)",
    )
    parser.set_defaults(func=_run)
