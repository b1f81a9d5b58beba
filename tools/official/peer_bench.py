"""The official network against the suite's, same preset, same weights, timed in interleaved rounds.

    python tools/official/peer_bench.py PATH/TO/SST [--presets light base] [--scale 2] [--lr-size 64]
        [--batch 1] [--rounds 7] [--warmup 2] [--device cpu] [--threads N] [--out results/bench/peer]

PATH/TO/SST is a checkout of the public repository dslisleedh/SST (its commit is recorded); nothing of it
enters this project: its network files are imported from a temporary copy by `make_fixtures.official_module`
(a stub registry). On a CPU the official attention's bfloat16 casts are replaced by float32 and the suite
runs at precision fp32; on CUDA the official casts stay and the suite runs at precision attention-bf16
(bfloat16 q, k, v into the attention kernel, as the official code does).

Per preset: the official `SST(**network_g)` of `options/test/<official name>_X<scale>.yaml` with its own
initialisation, the suite's `build_model(preset, "rib", scale)` loaded with those weights through the
released-checkpoint converter, and both outputs compared on the timed input (the largest absolute
difference is recorded: it shows that the same network is timed). Two modes: `inference` (eval mode, no
autograd) and `training` (train mode, forward, L1 loss, backward; gradients set to None each step). All
steps of a preset run in the same interleaved rounds (suite.profiling.timing); the ratio official / suite
(above 1: the suite is faster) is the geometric mean of per-round ratios with its bootstrap interval
(suite.stats.paired_ratio).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch
import yaml
from make_fixtures import official_module

from suite.env import resolve_device, run_record
from suite.models.attention import apply_precision
from suite.models.official import OFFICIAL_REPOSITORY, convert_basicsr_state
from suite.models.presets import OFFICIAL_NAMES, build_model, count_parameters
from suite.profiling.timing import OK, prepare_device, summarise, time_interleaved
from suite.rows import write_rows
from suite.stats import paired_ratio

MODES = ("inference", "training")
COLUMNS = (
    "preset",
    "scale",
    "mode",
    "official_ms_median",
    "official_ms_iqr",
    "suite_ms_median",
    "suite_ms_iqr",
    "speedup",
    "speedup_low",
    "speedup_high",
    "resolved",
    "rounds",
    "params",
    "max_abs_output_difference",
)
SCHEMA_VERSION = 1


def official_kwargs(checkout: Path, preset: str, scale: int) -> dict:
    """network_g of the official test option file of `preset` at `scale`, without its `type`."""
    path = checkout / "options" / "test" / f"{OFFICIAL_NAMES[preset]}_X{scale}.yaml"
    if not path.is_file():
        raise SystemExit(f"{path}: no official option file for {preset} x{scale}")
    network = dict(yaml.safe_load(path.read_text())["network_g"])
    if network.pop("type") != "SST":
        raise SystemExit(f"{path}: network_g is not an SST")
    return network


def step(model: torch.nn.Module, x: torch.Tensor, mode: str) -> Callable[[], None]:
    """One inference call, or one training step's forward, L1 loss and backward."""
    if mode == "inference":

        def run() -> None:
            with torch.no_grad():
                model(x)

        return run

    def run() -> None:
        model.zero_grad(set_to_none=True)
        out = model(x)
        out.float().abs().mean().backward()  # an L1 loss against zero: the same backward work as against HR

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a checkout of dslisleedh/SST")
    parser.add_argument("--presets", nargs="+", default=["light", "base"], choices=sorted(OFFICIAL_NAMES))
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--lr-size", type=int, default=64, help="LR input height and width")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("results/bench/peer"))
    args = parser.parse_args()

    found = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    if found.returncode != 0 or not (args.checkout / "sst" / "archs" / "sst_arch.py").is_file():
        raise SystemExit(f"{args.checkout}: not a git checkout of dslisleedh/SST (need sst/archs/sst_arch.py)")
    device = prepare_device(resolve_device(args.device), args.threads)
    on_gpu = device.type == "cuda"
    precision = "attention-bf16" if on_gpu else "fp32"
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        official = official_module(args.checkout, Path(workdir), float32_attention=not on_gpu)
        for index, preset in enumerate(args.presets):
            torch.manual_seed(index)
            theirs = official.SST(**official_kwargs(args.checkout, preset, args.scale)).to(device)
            ours = build_model(preset, bias="rib", scale=args.scale)
            apply_precision(ours, precision)
            ours.load_state_dict(convert_basicsr_state({k: v.cpu() for k, v in theirs.state_dict().items()}, ours))
            ours.to(device)
            x = torch.rand(args.batch, 3, args.lr_size, args.lr_size, generator=torch.Generator().manual_seed(index))
            x = x.to(device)
            theirs.eval(), ours.eval()
            with torch.no_grad():
                difference = float((theirs(x).float() - ours(x).float()).abs().max())
            for mode in MODES:
                for model in (theirs, ours):
                    model.train(mode == "training")
                pair = {"official": step(theirs, x, mode), "suite": step(ours, x, mode)}
                times, status = time_interleaved(pair, device, warmup=args.warmup, rounds=args.rounds)
                failed = {label: state for label, state in status.items() if state[0] != OK}
                if failed:
                    raise SystemExit(f"{preset} {mode}: a step did not run: {failed}")
                ratio = paired_ratio(times["official"], times["suite"])
                method = ratio.method()
                official_ms, suite_ms = summarise(times["official"]), summarise(times["suite"])
                rows.append(
                    {
                        "preset": preset,
                        "scale": args.scale,
                        "mode": mode,
                        "official_ms_median": official_ms["ms_median"],
                        "official_ms_iqr": official_ms["ms_iqr"],
                        "suite_ms_median": suite_ms["ms_median"],
                        "suite_ms_iqr": suite_ms["ms_iqr"],
                        "speedup": round(ratio.mean, 4),
                        "speedup_low": round(ratio.low, 4),
                        "speedup_high": round(ratio.high, 4),
                        "resolved": ratio.resolved,
                        "rounds": ratio.n,
                        "params": count_parameters(ours),
                        "max_abs_output_difference": difference,
                    }
                )
                print(
                    f"{preset} x{args.scale} {mode}: official {official_ms['ms_median']:.1f} ms, suite "
                    f"{suite_ms['ms_median']:.1f} ms, official / suite {ratio.mean:.3f}x [{ratio.low:.3f}, "
                    f"{ratio.high:.3f}]",
                    flush=True,
                )
            del theirs, ours

    record = run_record(
        device=device,
        command=" ".join(["python", "tools/official/peer_bench.py", "SST"] + sys.argv[2:]),
        official_repository=OFFICIAL_REPOSITORY,
        official_commit=found.stdout.strip(),
        official_attention="bfloat16 casts kept" if on_gpu else "bfloat16 casts replaced by float32",
        suite_precision=precision,
        lr_size=args.lr_size,
        batch=args.batch,
        warmup=args.warmup,
        threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        speedup_method=f"official time / suite time: {method}",
    )
    for path in write_rows(args.out, "peer_bench", rows, COLUMNS, SCHEMA_VERSION, **record):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
