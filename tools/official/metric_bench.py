"""Whole process against whole process: the suite's bicubic evaluation against BasicSR's own code.

    python tools/official/metric_bench.py PATH/TO/BasicSR [--images DIR] [--scale 2] [--rounds 7]
        [--out results/bench/metrics]

PATH/TO/BasicSR is a checkout of the public repository XPixelGroup/BasicSR (its commit is recorded).
Nothing of it enters this project: its metric and resize modules (`basicsr/metrics/{metric_util,psnr_ssim}.py`,
`basicsr/utils/{color_util,matlab_functions}.py`) are copied into a temporary `basicsr` package with a
stub registry, and `basicsr_bicubic_eval.py` (ours) runs them as BasicSR's test pipeline does.

Both sides do the same work on the same HR images: modcrop, MATLAB-bicubic down by 1/s and back up by s
(uint8 after each), PSNR and SSIM on Y with `crop_border = s`; the suite's side is `suite eval --method
bicubic` (protocol basicsr-y, device cpu). Each side is timed as a whole process (interpreter start, imports,
image reads, result file), in interleaved rounds through the suite's one timing helper, with its peak
resident memory (`wait4`) and CPU times. Two import-only processes per side give the fixed cost that is
not the metric's. The speed ratio BasicSR / suite (above 1: the suite is faster) is the geometric mean of
the per-round ratios with its bootstrap interval (suite.stats.paired_ratio). The two sides' per-image
scores are compared too: they differ where BasicSR's float32 resize rounds a pixel differently from the
suite's float64 one.

The default images are the 14 photographs of the mini benchmark (suite.data.mini.SPLITS) at their full
bundled size (300x451 to 1411x1411); `--images` takes any folder of HR PNGs instead (Urban100's HR folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from suite.data.io import write_png
from suite.data.mini import SPLITS, load_photograph
from suite.env import run_record
from suite.profiling.timing import OK, summarise, time_interleaved
from suite.rows import write_rows
from suite.stats import paired_ratio

HERE = Path(__file__).resolve().parent
BASICSR_FILES = (
    "basicsr/metrics/metric_util.py",
    "basicsr/metrics/psnr_ssim.py",
    "basicsr/utils/color_util.py",
    "basicsr/utils/matlab_functions.py",
)
STUBS = {
    "basicsr/__init__.py": "",
    "basicsr/metrics/__init__.py": "",
    "basicsr/utils/__init__.py": "from .color_util import bgr2ycbcr  # noqa: F401  (metric_util imports it here)\n",
    "basicsr/utils/registry.py": textwrap.dedent(
        """\
        class _Registry:  # stub: the metric functions only register themselves
            def register(self, obj=None):
                return obj if obj is not None else (lambda fn: fn)


        METRIC_REGISTRY = _Registry()
        """
    ),
}
COLUMNS = (
    "process",
    "what",
    "wall_s_median",
    "wall_s_iqr",
    "wall_s_min",
    "wall_s_max",
    "user_s_median",
    "sys_s_median",
    "peak_rss_mib_max",
    "rounds",
)
SCHEMA_VERSION = 1


def copy_basicsr(checkout: Path, into: Path) -> str:
    """BasicSR's four modules and the stubs under `into`; returns the checkout's commit."""
    for name in BASICSR_FILES:
        source = checkout / name
        if not source.is_file():
            raise SystemExit(f"{checkout} is not a BasicSR checkout: {name} is missing")
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, into / name)
    for name, text in STUBS.items():
        (into / name).write_text(text)
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def write_photographs(folder: Path) -> list[dict]:
    """The mini benchmark's photographs, full size, modcropped by nothing: folder/<name>.png."""
    images = []
    for name, loader in [entry for entries in SPLITS.values() for entry in entries]:
        photo = load_photograph(loader)
        write_png(folder / f"{name}.png", photo)
        images.append({"name": name, "source": f"skimage.data.{loader}", "size": [photo.shape[1], photo.shape[0]]})
    return images


def process_step(command: list[str], usage: list[dict]) -> Callable[[], None]:
    """A step that runs `command` to completion and appends its CPU times and peak RSS to `usage`."""

    def step() -> None:
        # stderr to a file, not a pipe: nothing reads a pipe while wait4 blocks, so a chatty child would stall.
        with tempfile.TemporaryFile() as errors:
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
            _, status, resources = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode != 0:
                errors.seek(0)
                raise RuntimeError(f"{' '.join(command)} exited {child.returncode}: {errors.read().decode()[-2000:]}")
        # Linux reports ru_maxrss in KiB.
        usage.append({"user": resources.ru_utime, "sys": resources.ru_stime, "rss_mib": resources.ru_maxrss / 1024})

    return step


def scores(path: Path) -> dict[str, tuple[float, float]]:
    return {row["name"]: (row["psnr"], row["ssim"]) for row in json.loads(path.read_text())["images"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("basicsr", type=Path, help="a checkout of XPixelGroup/BasicSR")
    parser.add_argument("--images", type=Path, help="a folder of HR PNGs (default: the mini photographs, full size)")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/bench/metrics"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="metric-bench-") as tmp:
        tmp = Path(tmp)
        commit = copy_basicsr(args.basicsr, tmp / "basicsr-copy")
        data = tmp / "data"
        if args.images is None:
            images = write_photographs(data / "HR")
        else:
            (data / "HR").mkdir(parents=True)
            for path in sorted(args.images.glob("*.png")):
                os.symlink(path.resolve(), data / "HR" / path.name)
            images = [{"name": path.stem} for path in sorted((data / "HR").glob("*.png"))]
        if not images:
            raise SystemExit(f"no PNG images in {args.images}")
        python = sys.executable
        suite_out, basicsr_out = tmp / "suite.json", tmp / "basicsr.json"
        commands = {
            "suite": (
                [python, "-m", "suite", "eval", "--method", "bicubic", "--data", str(data), "--scale"]
                + [str(args.scale), "--out", str(suite_out), "--device", "cpu", "--protocol", "basicsr-y"],
                f"suite eval --method bicubic --data DIR --scale {args.scale} --device cpu",
            ),
            "basicsr": (
                [python, str(HERE / "basicsr_bicubic_eval.py"), str(tmp / "basicsr-copy"), str(data / "HR")]
                + [str(args.scale), str(basicsr_out)],
                f"tools/official/basicsr_bicubic_eval.py COPY DIR/HR {args.scale} OUT",
            ),
            # The fixed cost of each side: the interpreter and the imports its pipeline needs.
            "suite-imports": (
                [python, "-c", "import suite.evaluate.runner, suite.metrics.fidelity, pyiqa"],
                "import suite.evaluate.runner, suite.metrics.fidelity, pyiqa",
            ),
            "basicsr-imports": (
                [python, "-c", "import cv2, numpy, torch"],
                "import cv2, numpy, torch",
            ),
        }
        usage: dict[str, list[dict]] = {label: [] for label in commands}
        steps = {label: process_step(command, usage[label]) for label, (command, _) in commands.items()}
        times, status = time_interleaved(steps, torch.device("cpu"), warmup=args.warmup, rounds=args.rounds)
        failed = {label: state for label, state in status.items() if state[0] != OK}
        if failed:
            raise SystemExit(f"a process did not run: {failed}")

        rows = []
        for label, (_, what) in commands.items():
            timed = usage[label][-args.rounds :]  # first_run and warm-up rounds come first
            wall = summarise([ms / 1000.0 for ms in times[label]])
            rows.append(
                {
                    "process": label,
                    "what": what,
                    "wall_s_median": wall["ms_median"],
                    "wall_s_iqr": wall["ms_iqr"],
                    "wall_s_min": wall["ms_min"],
                    "wall_s_max": wall["ms_max"],
                    "user_s_median": round(statistics.median(u["user"] for u in timed), 3),
                    "sys_s_median": round(statistics.median(u["sys"] for u in timed), 3),
                    "peak_rss_mib_max": round(max(u["rss_mib"] for u in timed), 1),
                    "rounds": wall["rounds"],
                }
            )
        ratio = paired_ratio(times["basicsr"], times["suite"])
        ours, theirs = scores(suite_out), scores(basicsr_out)
        if set(ours) != set(theirs):
            raise SystemExit(f"the two sides scored different images: {sorted(set(ours) ^ set(theirs))}")
        psnr_gap = np.array([ours[name][0] - theirs[name][0] for name in ours])
        ssim_gap = np.array([ours[name][1] - theirs[name][1] for name in ours])

    record = run_record(
        device="cpu",
        command=" ".join(["python", "tools/official/metric_bench.py", "BASICSR"] + sys.argv[2:]),
        basicsr_commit=commit,
        basicsr_files=list(BASICSR_FILES),
        scale=args.scale,
        warmup=args.warmup,
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        images=images,
        speedup={
            "what": "BasicSR whole-process wall time / suite whole-process wall time (above 1: the suite is faster)",
            "geometric_mean": round(ratio.mean, 4),
            "low": round(ratio.low, 4),
            "high": round(ratio.high, 4),
            "method": ratio.method(),
            "resolved": ratio.resolved,
        },
        agreement={
            "what": "suite minus BasicSR per image (BasicSR resizes in float32, the suite in float64)",
            "psnr_db_max_abs": float(np.abs(psnr_gap).max()),
            "psnr_db_mean": float(psnr_gap.mean()),
            "ssim_max_abs": float(np.abs(ssim_gap).max()),
        },
    )
    for path in write_rows(args.out, "metric_bench", rows, COLUMNS, SCHEMA_VERSION, **record):
        print(f"wrote {path}")
    for row in rows:
        print(
            f"{row['process']:>16}: {row['wall_s_median']:.2f} s wall (IQR {row['wall_s_iqr']:.2f}), "
            f"{row['sys_s_median']:.2f} s system, {row['peak_rss_mib_max']:.0f} MiB peak"
        )
    print(
        f"BasicSR / suite: {ratio.mean:.3f}x [{ratio.low:.3f}, {ratio.high:.3f}] ({ratio.method()}); "
        f"per-image |PSNR gap| <= {np.abs(psnr_gap).max():.2e} dB, |SSIM gap| <= {np.abs(ssim_gap).max():.2e}"
    )


if __name__ == "__main__":
    main()
