"""DDP: torchrun with 2 gloo processes on the CPU matches 1 process at the same global batch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from suite.checkpoint import load_checkpoint
from suite.train.config import load_recipe
from suite.train.distributed import World, world_from_env
from suite.train.sampler import GlobalBatchStream
from suite.train.trainer import train

ITERATIONS = 6


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
        "data": {"train": str(mini_root / "train"), "lr_patch": 16, "batch_size": 4, "num_workers": 0},
        "optim": {"lr": 1e-3},
        "schedule": {"iterations": ITERATIONS, "warmup": 2, "milestones": [4]},
        "ema": {"decay": 0.5},
        "run": {"device": "cpu", "seed": 5, "threads": 1, "log_every": 1, "checkpoint_every": 3},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def losses(path: Path) -> list[float]:
    with open(path) as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def test_rank_streams_partition_the_global_batches() -> None:
    single = GlobalBatchStream(n=10, global_batch=4, seed=1)
    ranks = [GlobalBatchStream(n=10, global_batch=4, seed=1, rank=r, world_size=2) for r in range(2)]
    for batch in range(7):  # 28 samples: batches straddle the epochs of 10
        assert ranks[0].keys(batch) + ranks[1].keys(batch) == single.keys(batch)
    assert sorted(k % 10 for b in range(5) for k in single.keys(b)) == sorted(list(range(10)) * 2)
    resumed = iter(GlobalBatchStream(n=10, global_batch=4, seed=1, start=3))
    assert next(resumed) == single.keys(3)
    with pytest.raises(ValueError, match="not divisible by 3"):
        GlobalBatchStream(n=10, global_batch=4, seed=1, world_size=3)


def test_loader_workers_give_the_same_batches(mini_root: Path) -> None:
    from torch.utils.data import DataLoader

    from suite.data.datasets import TrainPatches
    from suite.train.sampler import EpochKeyed

    def batches(workers: int, start: int) -> list[torch.Tensor]:
        patches = TrainPatches(mini_root / "train", 2, 8, seed=2, length=5)
        stream = GlobalBatchStream(len(patches), 4, seed=2, start=start)
        loader = iter(
            DataLoader(EpochKeyed(patches), batch_sampler=stream, num_workers=workers, persistent_workers=workers > 0)
        )
        return [next(loader)[1] for _ in range(4 - start)]

    inline = batches(0, 0)  # 16 samples over epochs of 5: every batch after the first straddles two
    assert all(torch.equal(a, b) for a, b in zip(inline, batches(2, 0)))
    assert all(torch.equal(a, b) for a, b in zip(inline[2:], batches(0, 2)))
    assert not torch.equal(inline[0], inline[1])


def test_world_from_torchrun_environment() -> None:
    assert world_from_env({}) == World(0, 0, 1)
    world = world_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (world.rank, world.local_rank, world.size, world.is_main, world.distributed) == (3, 1, 4, False, True)
    with pytest.raises(RuntimeError, match="RANK=4, WORLD_SIZE=2"):
        world_from_env({"WORLD_SIZE": "2", "RANK": "4"})


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path: Path, mini_root: Path) -> None:
    threads = torch.get_num_threads()
    try:
        train(load_recipe(write_recipe(tmp_path, mini_root, "single")))
    finally:
        torch.set_num_threads(threads)

    recipe = write_recipe(tmp_path, mini_root, "ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "suite",
            "train",
            "--config",
            str(recipe),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    single = load_checkpoint(tmp_path / "single" / "final.pt")
    ddp = load_checkpoint(tmp_path / "ddp" / "final.pt")
    assert ddp["provenance"]["world_size"] == 2 and single["provenance"]["world_size"] == 1
    assert len(ddp["rng"]) == 2
    # Same samples per global step; only the order of float sums differs (two half-batch means averaged).
    assert losses(tmp_path / "ddp" / "train_log.csv") == pytest.approx(
        losses(tmp_path / "single" / "train_log.csv"), rel=1e-5, abs=1e-7
    )
    for part in ("model", "ema"):
        for key, value in single[part].items():
            torch.testing.assert_close(ddp[part][key], value, rtol=1e-4, atol=1e-5, msg=f"{part}.{key}")
