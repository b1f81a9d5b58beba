"""`suite bench attention`: time one attention layer with RPB, RIB and no bias; print and save the ratios."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="micro-benchmarks of model components")
    benches = parser.add_subparsers(dest="bench", required=True)
    attention = benches.add_parser(
        "attention",
        help="time one window-attention layer (rpb, rib, none) forward and forward+backward over window sizes",
        description=(
            "Times one WindowAttention layer for RPB (each backend), RIB and no bias, forward (no autograd) and "
            "forward+backward, interleaved round by round; prints RPB/RIB (RPB at its fastest backend) and "
            "RIB/none per round as median [min, max], and writes attention.json, attention.csv and "
            "attention_ratios.csv."
        ),
    )
    attention.add_argument("--windows", type=_int_list, default=(8, 16, 32, 48, 64),
                           help="window sizes (default 8,16,32,48,64)")
    attention.add_argument("--preset", default="base", help="preset whose layer is timed (default base)")
    attention.add_argument("--layer", type=int, default=0, help="layer of a block whose RIB rank is used (default 0)")
    attention.add_argument("--dim", type=int, help="override the preset's dim")
    attention.add_argument("--heads", type=int, help="override the preset's heads")
    attention.add_argument("--rank", type=int, help="override the layer's RIB rank")
    attention.add_argument("--map", dest="map_size", type=int, default=64,
                           help="side of the square feature map, rounded up to a multiple of each window (default 64)")
    attention.add_argument("--batch", type=int, default=1)
    attention.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    attention.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    attention.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    attention.add_argument("--dtype", default="float32", help="float32, or bfloat16/float16 under autocast")
    attention.add_argument("--rpb-backends", type=_name_list, default=None,
                           help="RPB backends to time (default: math,sdpa on CPU; math,sdpa,flex on CUDA)")
    attention.add_argument("--rib-backend", default="auto")
    attention.add_argument("--none-backend", default="auto")
    attention.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own)")
    attention.add_argument("--timer", default="wall", choices=("wall", "cpu"),
                           help="wall clock (default), or this thread's CPU time (needs --device cpu --threads 1)")
    attention.add_argument("--seed", type=int, default=0)
    attention.add_argument("--out", type=Path, default=Path("bench-attention"),
                           help="output folder (default ./bench-attention)")
    options = [action for action in attention._actions if action.option_strings and action.dest != "help"]
    attention.set_defaults(func=_attention, options=options)


def _command_line(args: argparse.Namespace) -> str:
    """The command with every option spelled out, so the recorded line reruns exactly this benchmark."""
    parts = ["suite", "bench", "attention"]
    for action in args.options:
        value = getattr(args, action.dest)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(item) for item in value)
        parts += [action.option_strings[0], str(value)]
    return shlex.join(parts)


def _attention(args: argparse.Namespace) -> int:
    from suite.bench.attention import AttentionBenchConfig, run, write_results

    config = AttentionBenchConfig(
        windows=args.windows, preset=args.preset, layer=args.layer, dim=args.dim, heads=args.heads,
        rank=args.rank, map_size=args.map_size, batch=args.batch, repeats=args.repeats, warmup=args.warmup,
        device=args.device, dtype=args.dtype, rpb_backends=args.rpb_backends, rib_backend=args.rib_backend,
        none_backend=args.none_backend, threads=args.threads, timer=args.timer, seed=args.seed,
        command=_command_line(args),
    )
    result = run(config, log=lambda text: print(text, flush=True))
    paths = write_results(result, args.out)
    print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0
