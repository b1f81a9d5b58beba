"""`suite bench attention`: time the attention of one window-attention layer with any registered bias (RPB
on each backend, RIB and no bias by default) and no bias at the factored head dim over window sizes, interleaved round by round (the one
attention benchmark of suite.profiling.attention); `suite bench resize`: time MATLAB-bicubic
degradation and re-upscaling (suite.data.benchmark). This module imports no torch."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from suite.cli import add_override_option, positive_int
from suite.models.biases import BIASES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="micro-benchmarks: attention layers, image resizing", description=__doc__
    )
    benches = parser.add_subparsers(dest="bench", required=True)
    attention = benches.add_parser(
        "attention",
        help="time one window-attention layer per bias forward and forward+backward",
        description=(
            "Times the attention method of WindowAttention layers for each requested bias and backend (RPB on "
            "each backend, RIB and none by default) and none@D+R (the factored biases' kernel head dim), forward "
            "(no autograd) and forward+backward, interleaved round by round; prints RPB (at its fastest backend) "
            "over each bias and each factored bias over none@D+R, and writes attention.{json,csv} and "
            "attention_ratios.{json,csv}."
        ),
    )
    attention.add_argument(
        "--windows", type=int, nargs="+", default=[8, 16, 32, 48, 64], help="window sizes (default 8 16 32 48 64)"
    )
    attention.add_argument("--preset", default="base", help="preset whose layer shapes are used (default base)")
    attention.add_argument(
        "--ranks", type=int, nargs="+", help="RIB ranks to time (default: the preset's distinct ranks)"
    )
    add_override_option(attention, "model field overrides (e.g. dim=96 heads=4)")
    attention.add_argument(
        "--map",
        dest="map_size",
        type=int,
        default=64,
        help="side of the square feature map, rounded up to a multiple of each window (default 64)",
    )
    attention.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    attention.add_argument("--rounds", type=int, default=7, help="timed interleaved rounds (default 7)")
    attention.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    attention.add_argument("--device", default="auto", help="auto (cuda when available; default), cpu, cuda, cuda:N")
    attention.add_argument("--precision", default="fp32", help="fp32 (default), autocast-bf16 or attention-bf16")
    attention.add_argument(
        "--variants",
        nargs="+",
        metavar="BIAS[:BACKEND]",
        help=f"layers to time, a bias of {', '.join(BIASES)} with an optional backend "
        "(default: rpb:math rpb:sdpa rib none on CPU; rpb:sdpa rpb:flex rib none on CUDA)",
    )
    attention.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's own)")
    attention.add_argument(
        "--clock",
        default="wall",
        choices=("wall", "cpu"),
        help="wall clock (default), or this thread's CPU time (needs --device cpu --threads 1)",
    )
    attention.add_argument("--seed", type=int, default=0)
    attention.add_argument("--out", type=Path, required=True, help="output folder")
    attention.set_defaults(func=_attention)

    resize = benches.add_parser("resize", help="time MATLAB-bicubic degradation and re-upscaling of random images")
    resize.add_argument("--images", type=int, default=100, help="number of images (default 100)")
    resize.add_argument("--height", type=int, default=768)
    resize.add_argument("--width", type=int, default=1024)
    resize.add_argument("--scales", type=int, nargs="+", default=[2, 4], help="scales (default 2 4)")
    resize.add_argument("--seed", type=int, default=0)
    resize.add_argument(
        "--out", type=Path, help="write the timings and their run record as JSON here (default: print them)"
    )
    resize.set_defaults(func=_resize)


def _attention(args: argparse.Namespace) -> int:
    from suite.profiling.attention import parse_variant, run_benchmark

    command = _command_line(args, ["suite", "bench", "attention"])
    paths = run_benchmark(
        windows=args.windows,
        preset=args.preset,
        ranks=args.ranks,
        overrides=args.override,
        map_size=args.map_size,
        batch=args.batch,
        rounds=args.rounds,
        warmup=args.warmup,
        device=args.device,
        precision=args.precision,
        variants_=[parse_variant(text) for text in args.variants or []],
        threads=args.threads,
        clock=args.clock,
        seed=args.seed,
        out_dir=args.out,
        command=command,
        log=lambda text: print(text, flush=True),
    )
    print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0


def _command_line(args: argparse.Namespace, prefix: list[str]) -> str:
    """The command with every option spelled out, so the recorded line reruns exactly this benchmark."""
    parts = list(prefix)
    for key, value in vars(args).items():
        if key in ("func", "command", "bench") or value is None or value is False or value == []:
            continue
        parts.append("--" + ("map" if key == "map_size" else key.replace("_", "-")))
        if value is not True:
            parts += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return shlex.join(parts)


def _resize(args: argparse.Namespace) -> int:
    import json

    from suite.data.benchmark import bench_resize
    from suite.env import run_record
    from suite.files import write_json_atomic

    result = bench_resize(args.images, args.height, args.width, tuple(args.scales), seed=args.seed)
    # numpy on the CPU: the record names the CPU model and the command that reruns this benchmark
    result["provenance"] = run_record("cpu", command=_command_line(args, ["suite", "bench", "resize"]))
    per_scale = ", ".join(f"{k} {v:.2f} s" for k, v in result["seconds_per_scale"].items())
    print(
        f"degrade + re-upscale {result['n_images']} images of {result['width']}x{result['height']} at "
        f"{', '.join('x%d' % s for s in result['scales'])}: {result['seconds_total']:.2f} s ({per_scale})"
    )
    if args.out:
        write_json_atomic(args.out, result)
    else:
        print(json.dumps(result))
    return 0
