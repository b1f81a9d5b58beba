"""Checkpoints: safe loading (corrupt, truncated, pickled objects), NaN stop, init_from, the run's files."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml

from suite.checkpoint import CheckpointError, latest_valid_checkpoint, load_checkpoint
from suite.cli import main
from suite.models import build_model
from suite.train.config import load_recipe
from suite.train.trainer import SUMMARY_FIELDS, _init_weights, reinterpolate_subpixel, train

SMALL = {"dim": 16, "n_blocks": 1, "window_sizes": [8, 8], "ranks": [4, 4]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_recipe(folder: Path, mini_root: Path, name: str, **run) -> Path:
    recipe = {
        "name": name,
        "out_dir": str(folder / name),
        "model": {"preset": "tiny", "bias": "rib", "scale": 2, "overrides": SMALL},
        "data": {
            "train": str(mini_root / "train"),
            "val": str(mini_root / "test"),
            "lr_patch": 16,
            "batch_size": 2,
            "num_workers": 0,
        },
        "optim": {"lr": 1e-3},
        "schedule": {"iterations": 4, "warmup": 1, "milestones": [3]},
        "ema": {"decay": 0.5},
        "run": {"device": "cpu", "seed": 3, "log_every": 2, "val_every": 4, "checkpoint_every": 2, **run},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mini_root: Path) -> Path:
    """A finished 4-iteration run with validation: its out_dir."""
    folder = tmp_path_factory.mktemp("trained")
    recipe = load_recipe(small_recipe(folder, mini_root, "run"))
    train(recipe)
    return Path(recipe["out_dir"])


def test_run_writes_every_output(trained: Path) -> None:
    assert sorted(p.name for p in (trained / "checkpoints").glob("*.pt")) == ["iter_0000002.pt", "iter_0000004.pt"]
    assert (trained / "final.pt").read_bytes() == (trained / "checkpoints" / "iter_0000004.pt").read_bytes()
    with open(trained / "train_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["iteration"] for row in rows] == ["2", "4"]
    assert set(rows[0]) == {"iteration", "loss", "lr", "step_time_s", "val_psnr", "val_ssim"}
    assert rows[0]["val_psnr"] == "" and float(rows[1]["val_psnr"]) > 20
    summary = json.loads((trained / "summary.json").read_text())
    assert tuple(summary) == SUMMARY_FIELDS
    for key in ("median_step_time_s", "wall_time_s", "iterations", "params", "device", "precision", "seed"):
        assert summary[key] is not None, key
    assert summary["iterations"] == 4 and summary["seed"] == 3 and summary["precision"] == "fp32"
    assert summary["compile"] is False and summary["provenance"]["torch"] == torch.__version__
    assert summary["provenance"]["precision"] == "fp32" and "git_commit" in summary["provenance"]
    assert summary["val_psnr"] == float(rows[1]["val_psnr"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4]
    assert [e.value for e in events.Scalars("val/psnr")] == pytest.approx([summary["val_psnr"]])
    state = load_checkpoint(trained / "final.pt")
    assert state["iteration"] == 4 and state["ema_updates"] == 4
    assert state["sampler"] == {
        "batch": 4,
        "epoch": 0,
        "offset": 8,
        "samples_per_epoch": 9,
        "global_batch": 2,
        "seed": 3,
    }
    assert {"torch", "cuda", "numpy", "python"} <= set(state["rng"][0])
    assert state["config"]["name"] == "run" and len(state["config_hash"]) == 64
    assert set(state["optimizer"]["state"]) and state["scheduler"]["last_epoch"] == 4


def test_ema_differs_from_raw_weights(trained: Path) -> None:
    state = load_checkpoint(trained / "final.pt")
    differs = [k for k in state["model"] if not torch.equal(state["model"][k], state["ema"][k])]
    assert "to_pixels.weight" in differs


def test_without_resume_an_existing_run_is_not_overwritten(trained: Path, capsys) -> None:
    before = (trained / "final.pt").read_bytes()
    code = main(["train", "--config", str(trained.parent / "run.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "pass --resume" in err and str(trained) in err
    assert (trained / "final.pt").read_bytes() == before


def test_resume_refuses_a_changed_recipe(trained: Path, capsys) -> None:
    code = main(["train", "--config", str(trained.parent / "run.yaml"), "--resume", "--override", "optim.lr=0.01"])
    err = capsys.readouterr().err
    assert code == 2 and "optim.lr: 0.001 -> 0.01" in err


def test_truncated_and_corrupt_checkpoints_name_the_file(trained: Path, tmp_path: Path) -> None:
    data = (trained / "final.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"checkpoint {re.escape(str(truncated))} is truncated or corrupt"):
        load_checkpoint(truncated)
    # Flip bytes inside the largest stored tensor: torch.load alone would return wrong weights.
    corrupt = tmp_path / "corrupt.pt"
    flipped = bytearray(data)
    middle = len(data) // 2
    flipped[middle : middle + 64] = bytes(b ^ 0xFF for b in flipped[middle : middle + 64])
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=re.escape(str(corrupt))):
        load_checkpoint(corrupt)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=re.escape(str(empty))):
        load_checkpoint(empty)
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_checkpoint(tmp_path / "absent.pt")


class Payload:
    """Any class: unpickling it means running code chosen by the file."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_object_is_refused(tmp_path: Path, capsys) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"format": "suite-train-checkpoint", "format_version": 1, "model": {}, "extra": Payload()}, evil)
    with pytest.raises(CheckpointError, match="carries a pickled Python object and is refused"):
        load_checkpoint(evil)
    assert "this must never run" not in capsys.readouterr().out
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a suite training checkpoint"):
        load_checkpoint(plain)


def test_nan_stops_with_the_last_good_checkpoint_intact(tmp_path: Path, mini_root: Path, capsys) -> None:
    # A huge lr sends AdamW's first update to +-1e35: the next forward pass overflows.
    path = small_recipe(tmp_path, mini_root, "nan", checkpoint_every=1, val_every=0)
    code = main(
        [
            "train",
            "--config",
            str(path),
            "--override",
            "optim.lr=1e35",
            "schedule.warmup=0",
            "data.val=null",
            "schedule.iterations=6",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    found = re.search(r"non-finite loss (nan|inf) at iteration (\d+)", err)
    assert found, err
    bad = int(found.group(2))
    ckpt_dir = tmp_path / "nan" / "checkpoints"
    assert sorted(p.name for p in ckpt_dir.glob("*.pt")) == [f"iter_{k:07d}.pt" for k in range(1, bad)]
    last, state, skipped = latest_valid_checkpoint(ckpt_dir)
    assert last == ckpt_dir / f"iter_{bad - 1:07d}.pt" and str(last) in err and not skipped
    assert state["iteration"] == bad - 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / "nan" / "final.pt").exists() and not (tmp_path / "nan" / "summary.json").exists()


def test_init_from_loads_all_but_the_upsampler(trained: Path) -> None:
    source = load_checkpoint(trained / "final.pt")
    x3 = build_model("tiny", "rib", 3, **SMALL)
    fresh = {k: v.clone() for k, v in x3.state_dict().items()}
    resized = _init_weights(x3, str(trained / "final.pt"))
    assert resized == ["to_pixels.weight", "to_pixels.bias"]
    for key, value in x3.state_dict().items():
        expected = reinterpolate_subpixel(source["ema"][key], 2, 3) if key in resized else source["ema"][key]
        assert torch.equal(value, expected), key
    assert not torch.equal(x3.state_dict()["to_pixels.weight"], fresh["to_pixels.weight"])
    other = build_model("tiny", "rib", 3, **{**SMALL, "dim": 24})
    with pytest.raises(ValueError, match="init_from .* different network: dim: 16 in the checkpoint, 24"):
        _init_weights(other, str(trained / "final.pt"))


def test_init_from_fine_tunes_x3(trained: Path, tmp_path: Path, mini_root: Path) -> None:
    path = small_recipe(tmp_path, mini_root, "x3", val_every=0)
    recipe = load_recipe(
        path, ["model.scale=3", f"init_from={trained / 'final.pt'}", "schedule.iterations=2", "data.val=null"]
    )
    state = load_checkpoint(train(recipe))
    assert state["model_config"]["scale"] == 3 and state["iteration"] == 2
    assert state["ema"]["to_pixels.weight"].shape[0] == 27
    assert math.isfinite(json.loads((tmp_path / "x3" / "summary.json").read_text())["median_step_time_s"])


@pytest.mark.parametrize("precision", ["autocast-bf16", "attention-bf16"])
def test_bfloat16_runs(tmp_path: Path, mini_root: Path, precision: str) -> None:
    # On CUDA `auto` picks autocast-bf16; the CPU path of the same code runs here. attention-bf16 (the
    # official setting) keeps the network in float32 and casts only inside attention.
    recipe = load_recipe(
        small_recipe(tmp_path, mini_root, "bf16", precision=precision, val_every=0),
        ["schedule.iterations=2", "data.val=null"],
    )
    state = load_checkpoint(train(recipe))
    summary = json.loads((tmp_path / "bf16" / "summary.json").read_text())
    assert summary["precision"] == precision
    assert state["provenance"]["precision"] == precision
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())


def test_reinterpolation_keeps_the_scale_and_constants() -> None:
    # Official fine-tuning carries the sub-pixel conv over by bilinear re-interpolation of its (s, s) grid.
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(3 * 4, 5, 3, 3, generator=generator)
    assert torch.equal(reinterpolate_subpixel(weight, 2, 2), weight)
    constant = torch.arange(3.0).repeat_interleave(4)  # every sub-pixel of channel c holds c
    assert torch.equal(reinterpolate_subpixel(constant, 2, 4), torch.arange(3.0).repeat_interleave(16))
    grid = torch.tensor([0.0, 1.0, 0.0, 1.0])  # x2 grid [[0, 1], [0, 1]]: a ramp along x, flat along y
    resized = reinterpolate_subpixel(grid, 2, 3).reshape(3, 3)
    assert torch.equal(resized[0], resized[2]) and torch.equal(resized[:, 1], torch.full((3,), 0.5))
    assert resized[0, 0] < resized[0, 1] < resized[0, 2]


def test_positional_lr_scale_gives_the_bias_its_own_learning_rate() -> None:
    """optim.positional_lr_scale: AdamW's second group holds exactly the positional modules' weights (RPB's table,
    RIB's MLP, CPE's convolutions) at lr * scale; at scale 1 one group holds every weight, as before the option."""
    from suite.train.trainer import parameter_groups

    for bias in ("rpb", "rib", "cpe", "none"):
        model = build_model("tiny", bias, 2)
        optim = {"lr": 1e-3, "positional_lr_scale": 10.0}
        groups = parameter_groups(model, optim)
        positional = {id(p) for p in model.positional_parameters()}
        assert {id(p) for p in groups[1]["params"]} == positional and groups[1]["lr"] == pytest.approx(1e-2)
        assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.parameters()} - positional
        assert (len(positional) > 0) == (bias != "none"), bias
        single = parameter_groups(model, {**optim, "positional_lr_scale": 1.0})
        assert len(single) == 1 and len(single[0]["params"]) == len(list(model.parameters()))
    names = {name for name, p in build_model("tiny", "rpb", 2).named_parameters() if "table" in name}
    rpb = build_model("tiny", "rpb", 2)
    assert {
        name for name, p in rpb.named_parameters() if id(p) in {id(q) for q in rpb.positional_parameters()}
    } == names
