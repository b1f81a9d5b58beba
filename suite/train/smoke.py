"""The smoke benchmark: train the `tiny` preset with RPB and with RIB (x2, the embedded mini benchmark,
CPU, same iterations and seed), evaluate both next to MATLAB bicubic, and write the comparison.

    python -m suite.train.smoke --out results/smoke

Every step runs as its own `suite` command (recorded verbatim in `commands.txt`), one after the other
on the same machine, so the step-time ratio comes from one run. Outputs in --out: `smoke.csv`,
`smoke.md` (table, targets, environment, commands), `recipe.yaml`, and per variant `summary-<bias>.json`,
`train_log-<bias>.csv`, `eval-<bias>.json` (+ `eval-bicubic.json`). Checkpoints and the mini data stay
in --work (a temporary folder unless given).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

import suite
from suite.files import atomic_write, device_name

BIASES = ("rpb", "rib")
SCALE = 2
# Targets of the smoke benchmark (issue 4).
MIN_SPEEDUP = 2.0  # RIB's training step at least 2x faster than RPB's at a 32x32 window
MAX_PSNR_DROP_DB = 0.1  # RIB's PSNR at most 0.1 dB below RPB's
MIN_MARGIN_DB = 0.1  # both above bicubic by more than this


def smoke_recipe(iterations: int, batch_size: int, lr_patch: int, threads: int, seed: int) -> dict:
    """The shared recipe; the variant, data and output folder are given on the command line."""
    return {
        "name": "smoke",
        "model": {"preset": "tiny", "bias": "rib", "scale": SCALE},
        "data": {"train": "mini/train", "val": None, "lr_patch": lr_patch, "batch_size": batch_size,
                 "on_the_fly": False, "num_workers": 0},
        # A short run: a higher lr than the paper's 5e-4, cosine decay to zero and a short EMA horizon
        # (0.99 averages about the last 100 iterations; 0.999 would still hold the initial weights).
        "optim": {"lr": 1e-3, "betas": [0.9, 0.9], "weight_decay": 0.0, "grad_clip": 0.0},
        "schedule": {"kind": "cosine", "iterations": iterations, "warmup": max(1, iterations // 20),
                     "milestones": [], "gamma": 1.0},
        "ema": {"decay": 0.99},
        "run": {"seed": seed, "device": "cpu", "dtype": "float32", "threads": threads,
                "log_every": max(1, iterations // 20), "val_every": 0, "checkpoint_every": iterations},
    }


def _run(command: list[str], cwd: Path, out: Path, log: list[str]) -> None:
    """Run a step in `cwd` (the work folder); log it with $WORK, $OUT and `python` for the interpreter."""
    shown = shlex.join(["python" if part == sys.executable else part.replace(str(out), "$OUT")
                        for part in command])
    log.append(f"cd $WORK && {shown}")
    print(f"$ {shown}", file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(f"smoke step failed with exit code {done.returncode}: {shlex.join(command)}")


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def build_rows(out: Path) -> list[dict]:
    """One row per variant plus bicubic, from the files the steps wrote into `out`."""
    bicubic = json.loads((out / "eval-bicubic.json").read_text())
    rows = []
    for bias in BIASES:
        summary = json.loads((out / f"summary-{bias}.json").read_text())
        result = json.loads((out / f"eval-{bias}.json").read_text())
        rows.append({
            "method": f"tiny-{bias}", "bias": bias, "params": summary["params"],
            "iterations": summary["iterations"], "global_batch": summary["global_batch"],
            "lr_patch": summary["lr_patch"], "window": max(summary["model"]["window_sizes"]),
            "median_step_time_s": summary["median_step_time_s"], "wall_time_s": summary["wall_time_s"],
            "psnr": result["psnr"], "ssim": result["ssim"], "psnr_vs_bicubic_db": result["psnr"] - bicubic["psnr"],
            "threads": summary["threads"],
        })
    rib = next(row for row in rows if row["bias"] == "rib")
    for row in rows:
        row["step_time_vs_rib"] = row["median_step_time_s"] / rib["median_step_time_s"]
    rows.append({"method": "bicubic", "bias": "", "psnr": bicubic["psnr"], "ssim": bicubic["ssim"],
                 "psnr_vs_bicubic_db": 0.0})
    return rows


def check_targets(rows: list[dict]) -> list[tuple[str, bool, str]]:
    rpb, rib = (next(row for row in rows if row["bias"] == bias) for bias in BIASES)
    speedup = rpb["median_step_time_s"] / rib["median_step_time_s"]
    drop = rpb["psnr"] - rib["psnr"]
    return [
        (f"RIB training step >= {MIN_SPEEDUP:g}x faster than RPB at a {rib['window']}x{rib['window']} window",
         speedup >= MIN_SPEEDUP, f"{speedup:.2f}x"),
        (f"RIB PSNR at most {MAX_PSNR_DROP_DB:g} dB below RPB", drop <= MAX_PSNR_DROP_DB,
         f"RIB - RPB = {-drop:+.3f} dB"),
        (f"RPB above bicubic by more than {MIN_MARGIN_DB:g} dB", rpb["psnr_vs_bicubic_db"] > MIN_MARGIN_DB,
         f"{rpb['psnr_vs_bicubic_db']:+.3f} dB"),
        (f"RIB above bicubic by more than {MIN_MARGIN_DB:g} dB", rib["psnr_vs_bicubic_db"] > MIN_MARGIN_DB,
         f"{rib['psnr_vs_bicubic_db']:+.3f} dB"),
    ]


COLUMNS = [("method", "method", None), ("params", "params", None), ("iterations", "iterations", None),
           ("median_step_time_s", "median step (s)", 4), ("step_time_vs_rib", "step time / RIB", 2),
           ("wall_time_s", "wall (s)", 1), ("psnr", "PSNR (dB)", 4), ("ssim", "SSIM", 4),
           ("psnr_vs_bicubic_db", "PSNR - bicubic (dB)", 3)]


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in rows:
        cells = [str(row.get(key, "")) if digits is None else _fmt(row.get(key), digits)
                 for key, _, digits in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(out: Path, rows: list[dict], environment: dict, commands: list[str]) -> str:
    fields = ["method", "bias", "params", "iterations", "global_batch", "lr_patch", "window", "threads",
              "median_step_time_s", "step_time_vs_rib", "wall_time_s", "psnr", "ssim", "psnr_vs_bicubic_db"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "smoke.csv", lambda handle: handle.write(buffer.getvalue().encode()))
    table = markdown_table(rows)
    targets = check_targets(rows)
    text = "\n".join([
        "# Smoke benchmark: tiny preset, RPB vs RIB, x2, mini benchmark, CPU",
        "",
        f"Test set: the mini benchmark's test split ({environment['test_images']} images), Y-channel "
        f"PSNR/SSIM with crop border {SCALE}; RPB and RIB trained with the same recipe "
        f"(`recipe.yaml`), seed and iterations, one after the other in this run. Step time: median over "
        f"the iterations of forward + backward + AdamW + EMA update (data loading excluded); wall time: "
        f"the whole training loop. A load average above the core count means other work shared the CPU.",
        "",
        table,
        "",
        "## Targets",
        "",
        *[f"- {'PASS' if ok else 'FAIL'}: {what} ({value})" for what, ok, value in targets],
        "",
        "## Environment",
        "",
        *[f"- {key}: {value}" for key, value in environment.items()],
        "",
        "## Commands",
        "",
        "```",
        *commands,
        "```",
        "",
    ])
    atomic_write(out / "smoke.md", lambda handle: handle.write(text.encode()))
    atomic_write(out / "commands.txt", lambda handle: handle.write(("\n".join(commands) + "\n").encode()))
    atomic_write(out / "environment.json",
                 lambda handle: handle.write((json.dumps(environment, indent=2) + "\n").encode()))
    return table + "\n\n" + "\n".join(f"{'PASS' if ok else 'FAIL'}: {what} ({value})" for what, ok, value in targets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m suite.train.smoke", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="results folder (e.g. results/smoke)")
    parser.add_argument("--work", type=Path, help="folder for the mini data and checkpoints (default: a temp folder)")
    parser.add_argument("--iterations", type=int, default=400, help="training iterations per variant (default 400)")
    parser.add_argument("--batch-size", type=int, default=4, help="batch size (default 4)")
    parser.add_argument("--lr-patch", type=int, default=32, help="LR patch: one 32x32 window of the tiny preset")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each training run (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = (args.work or Path(tempfile.mkdtemp(prefix="suite-smoke-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    recipe = smoke_recipe(args.iterations, args.batch_size, args.lr_patch, args.threads, args.seed)
    atomic_write(out / "recipe.yaml", lambda handle: handle.write(yaml.safe_dump(recipe, sort_keys=False).encode()))
    suite_cmd = [sys.executable, "-m", "suite"]
    invocation = shlex.join(sys.argv[1:] if argv is None else argv)
    commands = [f"# python -m suite.train.smoke {invocation}", f"# OUT={out}", f"# WORK={work}"]
    started = time.perf_counter()
    load_before = os.getloadavg()[0]  # other work on the machine shows here and slows both variants

    if not (work / "mini" / "manifest.json").is_file():
        _run([*suite_cmd, "data", "mini", "--root", "mini"], work, out, commands)
    _run([*suite_cmd, "eval", "--method", "bicubic", "--data", "mini/test", "--scale", str(SCALE),
          "--out", str(out / "eval-bicubic.json")], work, out, commands)
    for bias in BIASES:
        run_dir = work / "runs" / bias
        if run_dir.exists():
            shutil.rmtree(run_dir)  # a fresh run each time: timings must come from this invocation
        _run([*suite_cmd, "train", "--config", str(out / "recipe.yaml"), f"model.bias={bias}",
              f"name=tiny-{bias}", f"out_dir=runs/{bias}"], work, out, commands)
        _run([*suite_cmd, "eval", "--checkpoint", f"runs/{bias}/final.pt", "--data", "mini/test",
              "--scale", str(SCALE), "--out", str(out / f"eval-{bias}.json")], work, out, commands)
        shutil.copyfile(run_dir / "summary.json", out / f"summary-{bias}.json")
        shutil.copyfile(run_dir / "train_log.csv", out / f"train_log-{bias}.csv")

    rows = build_rows(out)
    bicubic = json.loads((out / "eval-bicubic.json").read_text())
    environment = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "suite_version": suite.__version__,
        "git_commit": bicubic["provenance"].get("git_commit"),
        "git_dirty": bicubic["provenance"].get("git_dirty"),
        "device": "cpu",
        "cpu": device_name("cpu"),
        "cpu_count": os.cpu_count(),
        "torch_threads": args.threads,
        "torch_version": str(torch.__version__),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "test_images": bicubic["n_images"],
        "total_time_s": round(time.perf_counter() - started, 1),
        "load_average_1min_start": round(load_before, 2),
        "load_average_1min_end": round(os.getloadavg()[0], 2),
    }
    report = write_results(out, rows, environment, commands)
    print(report)
    print(f"smoke results written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
