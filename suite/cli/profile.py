"""`suite profile run`: time, memory, attention kernels and a TensorBoard trace of one setting, in a
worker process with a time limit; `suite profile sweep`: a grid of them from a YAML sweep file
(suite/profiling/configs/). The work lives in suite.profiling; this module imports no torch."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from suite.cli import add_override_option, positive_int
from suite.models.biases import BIASES

PHASES = ("train", "infer")  # as suite.profiling.measure.PHASES, without importing torch here
OK_EXIT, FAILED_EXIT, INCOMPLETE_EXIT = 0, 3, 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="profile training/inference steps: one setting (run) or a grid (sweep)",
        description=__doc__,
    )
    actions = parser.add_subparsers(dest="profile_action", required=True, metavar="{run,sweep}")

    run = actions.add_parser(
        "run",
        help="profile one setting (a worker process with a time limit)",
        description="Profile one setting; rows are merged into DIR/profile.{csv,json}.",
    )
    run.add_argument("--preset", required=True, help="model preset (tiny, light, base, ...)")
    run.add_argument("--bias", required=True, choices=BIASES, help="positional bias (suite.models.biases)")
    run.add_argument(
        "--phase", required=True, choices=PHASES, help="a training step (fwd+bwd+AdamW) or an inference forward"
    )
    run.add_argument("--window", type=int, required=True, help="window size of every attention layer")
    run.add_argument("--patch", type=int, help="LR input size (square); default max(64, window)")
    run.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    run.add_argument("--backend", default="auto", help="attention backend: auto (default), math, sdpa, flex, flash")
    run.add_argument("--precision", default="fp32", help="fp32 (default), autocast-bf16 or attention-bf16")
    run.add_argument("--compile", action="store_true", help="run the model under torch.compile (default: eager)")
    run.add_argument("--device", default="auto", help="auto (cuda when available; default), cpu, cuda, cuda:N")
    run.add_argument("--scale", type=int, default=2, help="upscaling factor (default 2)")
    run.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    run.add_argument("--steps", type=int, default=10, help="timed iterations (default 10)")
    run.add_argument("--profile-warmup", type=int, default=1, help="profiler warm-up iterations (default 1)")
    run.add_argument("--profile-active", type=int, default=2, help="profiler recorded iterations (default 2)")
    run.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice, recorded)")
    run.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default 0)")
    add_override_option(run, "model field overrides (e.g. n_blocks=1 ranks=[4,4])")
    run.add_argument(
        "--time-limit",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="stop the point after this long: a `timeout` row (default 1800)",
    )
    run.add_argument("--out", type=Path, required=True, help="output folder: profile.csv, profile.json, traces/<run>/")
    run.set_defaults(func=run_point)

    sweep = actions.add_parser("sweep", help="profile a grid of windows, patches, variants and phases (YAML file)")
    sweep.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help="YAML sweep file, or the name of one in suite/profiling/configs (cpu, gpu, ...)",
    )
    sweep.add_argument(
        "--out",
        metavar="DIR",
        help="output folder; '{gpu}' in it becomes the CUDA device's name (results/profiles/{gpu})",
    )
    again = sweep.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="DIR holds a sweep: continue it if unfinished, measure it again if finished",
    )
    again.add_argument("--fresh", action="store_true", help="DIR holds a sweep: delete it and start over")
    sweep.add_argument(
        "--dry-run",
        action="store_true",
        help="list the points, the time limits and the budget; measure and write nothing",
    )
    sweep.set_defaults(func=run_sweep)


def run_point(args: argparse.Namespace) -> int:
    from suite.env import resolve_device
    from suite.overrides import parse_field_overrides
    from suite.profiling import tables
    from suite.profiling.measure import PointSpec
    from suite.profiling.sweep import Task, invocation, run_in_worker, spec_columns

    if args.time_limit <= 0:
        raise ValueError(f"--time-limit must be positive, got {args.time_limit:g}")
    device = resolve_device(args.device)
    spec = PointSpec(
        preset=args.preset,
        bias=args.bias,
        phase=args.phase,
        window=args.window,
        patch=args.patch if args.patch is not None else max(64, args.window),
        batch=args.batch,
        backend=args.backend,
        precision=args.precision,
        compile=args.compile,
        device=device,
        scale=args.scale,
        warmup=args.warmup,
        steps=args.steps,
        profile_warmup=args.profile_warmup,
        profile_active=args.profile_active,
        threads=args.threads,
        seed=args.seed,
        overrides=parse_field_overrides(args.override),
    )
    spec.validate()
    out: Path = args.out
    command = invocation()
    task = Task("profile", spec.name, spec.to_dict(), spec_columns(spec, command))
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows, _ = run_in_worker(task, logs, out / "traces", logs / f"{spec.name}.log", command, args.time_limit, None)
    tables.upsert(out, rows)
    row = rows[0]
    kernels = "+".join(row.get("attention_kernels") or []) or "-"
    if row["status"] in ("ok", "fallback"):
        detail = f"{row['ms_median']} ms/iter, peak {row['peak_mem_mb']} MiB, attention kernels: {kernels}"
    else:
        detail = row["error"]
    print(f"{row['name']}: {row['status']}, {detail}")
    print(f"rows: {out / 'profile.csv'}; trace: {out / 'traces' / row['name']}")
    return FAILED_EXIT if row["status"] in ("timeout", "error") else OK_EXIT


def run_sweep(args: argparse.Namespace) -> int:
    if args.dry_run:
        from suite.profiling.sweep import dry_run

        print(dry_run(args.config, args.out))
        return OK_EXIT
    if not args.out:
        raise ValueError("--out is required (except with --dry-run)")
    from suite.profiling.sweep import run_sweep as sweep

    left = sweep(args.config, args.out, resume=args.resume, fresh=args.fresh)
    if left:
        again = shlex.join(["suite", "profile", "sweep", "--config", args.config, "--out", args.out, "--resume"])
        print(f"sweep incomplete: {left} task(s) left; continue with: {again}", file=sys.stderr)
        return INCOMPLETE_EXIT
    return OK_EXIT
