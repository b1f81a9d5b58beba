"""Shared pytest fixtures and helpers: the ../shared data folder (skipped where absent), a session-wide mini
set, and running the workflow on a copy of it (imported by the workflow tests: `from conftest import ...`)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from suite.analysis.outputs import ANALYSIS_OUTPUTS
from suite.data.io import write_png
from suite.profiling.tables import PROFILE_COLUMNS, write_rows
from suite.report import CropRequest, build_report
from suite.train import SUMMARY_FIELDS
from suite.train.monitor import CSV_FIELDS

# ../shared beside the checkout: present on the team's machines, absent on a bare clone.
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
REPO = Path(__file__).resolve().parents[1]
SWEEPS = Path("suite/profiling/configs")  # the one folder of sweep files, named by path in the configs


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: small tensors run faster with it, and alike on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """`../shared/data`, or skip the test with the reason when it is not there."""
    data = SHARED_DIR / "data"
    if not data.is_dir():
        pytest.skip(f"shared data folder {data} is absent (it exists only on the team's machines)")
    return data


@pytest.fixture(scope="session")
def set5_hr(shared_data_dir: Path) -> Path:
    """`../shared/data/Set5/HR` with its five images, or skip with the reason."""
    hr = shared_data_dir / "Set5" / "HR"
    if not hr.is_dir() or len(list(hr.glob("*.png"))) != 5:
        pytest.skip(f"Set5 HR images not found in {hr}")
    return hr


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded mini benchmark, built once per test session (read-only for tests)."""
    from suite.data.mini import build_mini

    root = tmp_path_factory.mktemp("mini")
    build_mini(root)
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked `gpu` where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason=f"needs a CUDA device; torch {torch.__version__} sees none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


# --- the workflow on a copy of the checkout ----------------------------------------------------------


def copy_workflow(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", target / "Snakefile")
    shutil.copytree(REPO / "workflows", target / "workflows")
    # The package whole, not only its sweep files: snakemake imports `suite` from its working folder first,
    # and a bare suite/profiling/configs there would shadow the installed package as a namespace package.
    shutil.copytree(REPO / "suite", target / "suite", ignore=shutil.ignore_patterns("__pycache__"))
    return target


@functools.cache
def no_slurm_controller() -> Path:
    """A folder with an `scontrol` that fails at once. The SLURM executor plugin, when installed, runs
    `scontrol show config` as snakemake imports it, whatever the executor; on a machine with SLURM's client
    but no controller answering, that waits 9-10 s per snakemake call. These tests use the local executor."""
    folder = Path(tempfile.mkdtemp(prefix="no-slurm-"))
    stub = folder / "scontrol"
    stub.write_text("#!/bin/sh\necho 'scontrol: stubbed by the workflow tests (no controller)' >&2\nexit 1\n")
    stub.chmod(0o755)
    return folder


def snakemake(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run snakemake of this interpreter in `workdir`, with this environment's `suite` on PATH (and no
    SLURM controller probe: `no_slurm_controller`)."""
    path = os.pathsep.join([str(no_slurm_controller()), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a dry run as {rule: count}."""
    block = output.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match[1]] = int(match[2])
    return counts


def shell_lines(output: str, needle: str) -> list[str]:
    """The printed shell commands (dry run with -p) that contain `needle`."""
    commands = [line.strip().removeprefix("Shell command:").strip() for line in output.splitlines()]
    return [command for command in commands if needle in command and command.startswith(("suite", "OMP", "torchrun"))]


# --- a synthetic results folder in the suite's own formats (the report's tests) -------------------------

# Synthetic measurements: distinct values so a number in the wrong cell shows.
EVALS = {
    ("bicubic", "mini_test", 2): (30.1234, 0.8765),
    ("tiny-rpb", "mini_test", 2): (31.5012, 0.9012),
    ("tiny-rib", "mini_test", 2): (31.6078, 0.9123),
    ("bicubic", "Set5", 2): (33.6601, 0.9299),
    ("tiny-rpb", "Set5", 2): (34.1111, 0.9333),
    ("tiny-rib", "Set5", 2): (34.2222, 0.9344),
}
IMAGE_NAMES = ("img0", "img1")
STEP_S = {"rpb": 0.5, "rib": 0.2}  # median training step per bias: 2.5x
# A GPU sweep's rows as `suite profile sweep` labels them: (variant, phase, window, patch) -> ms or None (OOM).
GPU_PROFILE = {
    ("rpb-flex", "train", 32, 64): 40.0,
    ("rpb-sdpa", "train", 32, 64): 60.0,
    ("rib-flash", "train", 32, 64): 16.0,
    ("none-flash", "train", 32, 64): 12.0,
    ("rpb-flex", "train", 64, 64): 100.0,
    ("rpb-sdpa", "train", 64, 64): None,
    ("rib-flash", "train", 64, 64): 30.0,
    ("none-flash", "train", 64, 64): 25.0,
    ("rpb-flex", "train", 96, 96): None,
    ("rpb-sdpa", "train", 96, 96): None,
    ("rib-flash", "train", 96, 96): 50.0,
    ("none-flash", "train", 96, 96): 40.0,
    ("rpb-flex", "infer", 32, 64): 10.0,
    ("rpb-sdpa", "infer", 32, 64): 9.0,
    ("rib-flash", "infer", 32, 64): 8.0,
    ("none-flash", "infer", 32, 64): 5.0,
    ("rpb-flex", "infer", 64, 64): 90.0,
    ("rpb-sdpa", "infer", 64, 64): 120.0,
    ("rib-flash", "infer", 64, 64): 30.0,
    ("none-flash", "infer", 64, 64): 20.0,
    ("rpb-flex", "infer", 96, 96): 200.0,
    ("rpb-sdpa", "infer", 96, 96): None,
    ("rib-flash", "infer", 96, 96): 50.0,
    ("none-flash", "infer", 96, 96): 40.0,
}
# RPB time (fastest backend that ran) / RIB time per point, or the side that did not run.
EXPECTED_SPEEDUP = {
    ("train", 32): 40 / 16,
    ("train", 64): 100 / 30,
    ("train", 96): "RPB OOM",
    ("infer", 32): 9 / 8,
    ("infer", 64): 90 / 30,
    ("infer", 96): 200 / 50,
}


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def picture(seed: int, height: int = 64, width: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def profile_row(variant: str, phase: str, window: int, patch: int, ms: float | None, device: str = "cuda") -> dict:
    """One row with every column `suite profile` writes (PROFILE_COLUMNS)."""
    bias, _, backend = variant.partition("-")
    row = {column: None for column in PROFILE_COLUMNS}
    row.update(
        name=f"{variant}-{phase}-w{window}-p{patch}",
        status="oom" if ms is None else "ok",
        error="CUDA out of memory" if ms is None else "",
        preset="tiny",
        variant=variant,
        bias=bias,
        backend=backend or "auto",
        phase=phase,
        window=window,
        patch=patch,
        batch=2 if phase == "train" else 1,
        scale=2,
        precision="fp32",
        compile=False,
        device=device,
        device_name="Test GPU",
        ms_median=ms,
        ms_steps=None if ms is None else [0.98 * ms, ms, 1.03 * ms],
        peak_mem_mb=None if ms is None else 10 * ms,
        attention_kernels=[] if ms is None else [backend or "math"],
    )
    return row


def run_record(matches: bool = True) -> dict:
    lock = {
        "lock_file": "requirements/lock.txt",
        "lock_sha256": "0" * 64,
        "matches": matches,
        "differences": [] if matches else ["torch 2.14.1 installed, 2.15.0 locked"],
    }
    return {"git_commit": "abc1234", "git_dirty": False, "device": "cpu", "torch": "2.x", "lock": lock}


def make_results(root: Path, profile: dict = GPU_PROFILE, device: str = "cuda") -> Path:
    """A results folder as the workflow lays it out, in the formats the suite writes, with known numbers."""
    results = root / "results" / "synthetic"
    for (method, dataset, scale), (psnr, ssim) in EVALS.items():
        images = [{"name": name, "psnr": psnr + i, "ssim": ssim} for i, name in enumerate(IMAGE_NAMES)]
        write_json(
            results / "eval" / method / f"{dataset}-x{scale}.json",
            {
                "dataset": dataset,
                "scale": scale,
                "method": method,
                "n_images": len(images),
                "psnr": psnr,
                "ssim": ssim,
                "images": images,
                "metric_options": {
                    "protocol": "basicsr-y",
                    "description": "BasicSR's protocol",
                    "pyiqa_version": "0.1.16",
                },
                "provenance": run_record(),
            },
        )
    for bias, step in STEP_S.items():
        run = results / "train" / f"tiny-{bias}-x2"
        summary = {field: None for field in SUMMARY_FIELDS}
        summary.update(
            name=f"tiny-{bias}-x2",
            iterations=300,
            median_step_time_s=step,
            wall_time_s=200.0,
            params=75000,
            device="cpu",
            precision="fp32",
            seed=0,
            global_batch=4,
            lr_patch=32,
            model={"preset": "tiny", "bias": bias, "window_sizes": [32, 32]},
            provenance=run_record(),
        )
        write_json(run / "summary.json", summary)
        offset = 1.0 if bias == "rib" else 0.0
        log = {
            "iteration": [10, 50, 100, 150],
            "loss": [0.1, 0.09, 0.08, 0.07],
            "lr": [1e-3] * 4,
            "step_time_s": [step] * 4,
            "val_psnr": [math.nan, 30.0 + offset, math.nan, 31.0 + offset],
            "val_ssim": [math.nan, 0.88, math.nan, 0.9],
        }
        pd.DataFrame(log, columns=list(CSV_FIELDS)).to_csv(run / "train_log.csv", index=False)
    rows = [profile_row(*key, ms, device=device) for key, ms in profile.items()]
    write_rows(results / "profile", "profile", rows, PROFILE_COLUMNS)
    hr_dir = root / "data" / "mini_test" / "HR"
    for i, name in enumerate(IMAGE_NAMES):
        hr = picture(i, 65, 49)  # one pixel more than the SR images: the report modcrops
        write_png(hr_dir / f"{name}.png", hr)
        for method in ("bicubic", "tiny-rpb", "tiny-rib"):
            write_png(results / "images" / method / f"mini_test-x2/{name}.png", hr[:64, :48] // 2)
    return results


def synthetic_report(results: Path, out: Path | None = None, **options) -> Path:
    out = out or results
    crop = CropRequest("mini_test", 2, results.parent.parent / "data" / "mini_test" / "HR", size=32)
    build_report(results, out, "synthetic", "mini_test", crop, **options)
    return out


def add_run(
    results: Path, model: str, psnr: float, step: float, params: int = 70000, images: list[dict] | None = None
) -> None:
    """A trained model's summary, log, eval JSON (with per-image scores `images`, if any) and saved images, as
    training and `suite eval` write them."""
    run = results / "train" / f"{model}-x2"
    summary = {field: None for field in SUMMARY_FIELDS}
    summary.update(
        name=f"{model}-x2",
        iterations=400,
        median_step_time_s=step,
        wall_time_s=60.0,
        params=params,
        device="cpu",
        precision="fp32",
        seed=0,
        global_batch=4,
        lr_patch=32,
        provenance=run_record(),
    )
    write_json(run / "summary.json", summary)
    log = {
        "iteration": [100, 200],
        "loss": [0.1, 0.09],
        "lr": [1e-3, 1e-3],
        "step_time_s": [step, step],
        "val_psnr": [psnr - 0.1, psnr],
        "val_ssim": [0.9, 0.9],
    }
    pd.DataFrame(log, columns=list(CSV_FIELDS)).to_csv(run / "train_log.csv", index=False)
    write_json(
        results / "eval" / model / "mini_test-x2.json",
        {
            "dataset": "mini_test",
            "scale": 2,
            "method": model,
            "n_images": 2,
            "psnr": psnr,
            "ssim": 0.9,
            "images": images or [],
            "metric_options": {"protocol": "basicsr-y"},
            "provenance": run_record(),
        },
    )
    for i, name in enumerate(IMAGE_NAMES):  # the crop comparison shows every trained model
        write_png(results / "images" / model / f"mini_test-x2/{name}.png", picture(i, 64, 48))


def write_analysis(results: Path, tool: str, run: str, rows: list[dict]) -> Path:
    table = ANALYSIS_OUTPUTS[tool].table
    path = results / "analysis" / tool / run / table.csv_name
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(table.columns)).to_csv(path, index=False)
    return path


class _QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # one line per request would bury the test's output
        pass


@contextlib.contextmanager
def serve_folder(folder: Path):
    """An HTTP server on 127.0.0.1 serving the files of `folder` (plain GET) -> its base URL; stopped on exit."""
    handler = functools.partial(_QuietFileHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
