"""Arguments and handlers of `suite profile` and `suite profile sweep`, shared by the `suite` command
(suite/cli/profile.py) and `python -m suite.profiling` (for GPU machines that have torch but not the
suite's other dependencies)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from suite.models import BACKENDS, BIASES, PRESETS
from suite.profiling import tables
from suite.profiling.measure import DTYPES, PHASES, PointSpec, measure
from suite.profiling.sweep import invocation, run_sweep

SINGLE_REQUIRED = ("preset", "bias", "phase", "window", "out")


def parse_override(text: str) -> tuple[str, object]:
    """`KEY=VALUE` with VALUE read as YAML (`n_blocks=1`, `ranks=[4,4]`)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--override expects KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=list(PRESETS), help="model preset")
    parser.add_argument("--bias", choices=list(BIASES), help="positional bias variant")
    parser.add_argument("--phase", choices=list(PHASES), help="a training step (fwd+bwd+AdamW) or an inference forward")
    parser.add_argument("--window", type=int, help="window size of every attention layer")
    parser.add_argument("--patch", type=int, help="LR input size (square); default max(64, window)")
    parser.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    parser.add_argument("--backend", choices=list(BACKENDS), default="auto", help="attention backend (default auto)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32",
                        help="autocast dtype (default float32: no autocast)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto: cuda when available (default)")
    parser.add_argument("--scale", type=int, default=2, help="upscaling factor (default 2)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    parser.add_argument("--steps", type=int, default=10, help="timed iterations (default 10)")
    parser.add_argument("--profile-warmup", type=int, default=1, help="profiler warm-up iterations (default 1)")
    parser.add_argument("--profile-active", type=int, default=2, help="profiler recorded iterations (default 2)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, recorded)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default 0)")
    parser.add_argument("--override", type=parse_override, action="append", default=[], metavar="KEY=VALUE",
                        help="model field override, repeatable (e.g. n_blocks=1, ranks=[4,4])")
    parser.add_argument("--out", help="output folder: profile.csv, profile.json, traces/<run>/")
    parser.set_defaults(func=run_single)
    actions = parser.add_subparsers(dest="profile_action", metavar="{sweep}")
    sweep = actions.add_parser("sweep", help="profile a grid of windows, patches, variants and phases (YAML config)")
    sweep.add_argument("--config", dest="sweep_config", required=True, metavar="FILE",
                       help="YAML sweep config, or a built-in one: cpu, gpu")
    sweep.add_argument("--out", dest="sweep_out", required=True, metavar="DIR",
                       help="output folder; '{gpu}' in it becomes the CUDA device's name (results/profiles/{gpu})")
    sweep.add_argument("--fresh", action="store_true", help="discard finished points of an earlier run of this folder")
    sweep.set_defaults(func=run_sweep_command)


def run_single(args: argparse.Namespace) -> int:
    missing = [f"--{name}" for name in SINGLE_REQUIRED if getattr(args, name) is None]
    if missing:
        raise ValueError(f"missing {', '.join(missing)} (or use `suite profile sweep --config FILE --out DIR`)")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    spec = PointSpec(
        preset=args.preset, bias=args.bias, phase=args.phase, window=args.window,
        patch=args.patch if args.patch is not None else max(64, args.window), batch=args.batch,
        backend=args.backend, dtype=args.dtype, device=device, scale=args.scale, warmup=args.warmup,
        steps=args.steps, profile_warmup=args.profile_warmup, profile_active=args.profile_active,
        threads=args.threads, seed=args.seed, overrides=dict(args.override),
    )
    out = Path(args.out)
    row = measure(spec, out / "traces", process="single", command=invocation())
    tables.upsert(out, [row])
    kernels = "+".join(row.get("attention_kernels") or []) or "-"
    detail = row["error"] if row["status"] != "ok" else f"{row['ms_median']} ms/iter, peak {row['peak_mem_mb']} MiB"
    print(f"{row['name']}: {row['status']}, {detail}, attention kernels: {kernels}")
    print(f"rows: {out / 'profile.csv'}; trace: {out / 'traces' / row['name']}")
    return 0


def run_sweep_command(args: argparse.Namespace) -> int:
    left = run_sweep(args.sweep_config, args.sweep_out, fresh=args.fresh)
    if left:
        print(f"sweep incomplete: {left} task(s) left; run the same command again to resume")
        return 3
    return 0
