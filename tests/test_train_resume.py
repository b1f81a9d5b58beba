"""Exact resume: a training process killed with SIGKILL and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from suite.checkpoint import latest_valid_checkpoint, load_checkpoint
from suite.train.config import load_recipe
from suite.train.trainer import train

ITERATIONS = 50


def write_recipe(folder: Path, mini_root: Path, name: str) -> Path:
    recipe = {
        "name": name,
        "out_dir": str(folder / name),
        "model": {
            "preset": "tiny",
            "bias": "rib",
            "scale": 2,
            "overrides": {"dim": 16, "n_blocks": 1, "window_sizes": [8, 8], "ranks": [4, 4]},
        },
        # 10 samples per epoch at batch 4: global batches straddle epochs, so the sampler's position matters.
        "data": {
            "train": str(mini_root / "train"),
            "lr_patch": 16,
            "batch_size": 4,
            "num_workers": 0,
            "samples_per_epoch": 10,
        },
        "optim": {"lr": 1e-3, "grad_clip": 0.5},
        "schedule": {"kind": "cosine", "iterations": ITERATIONS, "warmup": 5},
        "ema": {"decay": 0.9},
        "run": {"device": "cpu", "seed": 7, "threads": 1, "log_every": 1, "checkpoint_every": 7},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def suite_train(*args: str) -> list[str]:
    return [sys.executable, "-m", "suite", "train", *args]


def csv_without_timing(path: Path) -> list[tuple]:
    with open(path) as handle:
        return [(row["iteration"], row["loss"], row["lr"]) for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_killed_run_resumes_bit_identical(tmp_path: Path, mini_root: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The uninterrupted reference runs in this process (same code, same single thread): saves a start-up.
    threads = torch.get_num_threads()
    try:
        train(load_recipe(write_recipe(tmp_path, mini_root, "reference")))
    finally:
        torch.set_num_threads(threads)

    recipe = write_recipe(tmp_path, mini_root, "killed")
    ckpt_dir = tmp_path / "killed" / "checkpoints"
    process = subprocess.Popen(
        suite_train("--config", str(recipe)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not any(ckpt_dir.glob("iter_*.pt")):  # a checkpoint is renamed into place once whole
            assert process.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    _, newest, _ = latest_valid_checkpoint(ckpt_dir)
    killed_at = newest["iteration"]
    assert killed_at < ITERATIONS and not (tmp_path / "killed" / "final.pt").exists()

    done = subprocess.run(
        suite_train("--config", str(recipe), "--resume"), env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert f"resuming from {ckpt_dir / f'iter_{killed_at:07d}.pt'}" in done.stderr

    expected = load_checkpoint(tmp_path / "reference" / "final.pt")
    resumed = load_checkpoint(tmp_path / "killed" / "final.pt")
    for part in ("model", "ema"):
        for key, value in expected[part].items():
            assert torch.equal(resumed[part][key], value), f"{part}.{key} differs after resume"
    for index, moments in expected["optimizer"]["state"].items():
        for key, value in moments.items():
            assert torch.equal(resumed["optimizer"]["state"][index][key], value), f"optimizer {index}.{key}"
    assert resumed["scheduler"] == expected["scheduler"]
    assert resumed["sampler"] == expected["sampler"]
    assert torch.equal(resumed["rng"][0]["torch"], expected["rng"][0]["torch"])
    # The log is continuous: the killed run's rows past its checkpoint were replaced, none duplicated.
    assert csv_without_timing(tmp_path / "killed" / "train_log.csv") == csv_without_timing(
        tmp_path / "reference" / "train_log.csv"
    )
