"""The run folder: no run's outputs overwritten without a flag (issue 10.1, 10.2), the lock (10.5), temp
files of killed writes (10.10), run.threads on resume (10.10), images decoded before the first step (10.10)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from suite.checkpoint import load_checkpoint
from suite.cli import main
from suite.train.config import load_recipe
from suite.train.rundir import REPLACED, RunLock
from suite.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"dim": 16, "n_blocks": 1, "window_sizes": [8, 8], "ranks": [4, 4]}


def write_recipe(folder: Path, train_root: Path, name: str = "run") -> Path:
    recipe = {
        "name": name,
        "out_dir": str(folder / name),
        "model": {"preset": "tiny", "bias": "rib", "scale": 2, "overrides": SMALL},
        "data": {"train": str(train_root), "lr_patch": 16, "batch_size": 2, "num_workers": 0},
        "optim": {"lr": 1e-3},
        "schedule": {"iterations": 4, "warmup": 1, "milestones": [3]},
        "ema": {"decay": 0.5},
        "run": {"device": "cpu", "seed": 5, "threads": 1, "log_every": 1, "val_every": 0, "checkpoint_every": 2},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, mini_root: Path) -> Path:
    """A finished 4-iteration run (checkpoints at 2 and 4): its out_dir. Tests work on copies."""
    folder = tmp_path_factory.mktemp("finished")
    train(load_recipe(write_recipe(folder, mini_root / "train")))
    return folder / "run"


@pytest.fixture
def run_copy(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(recipe, out_dir) of a copy of the finished run under tmp_path."""
    shutil.copytree(finished, tmp_path / "run")
    recipe = write_recipe(tmp_path, Path(load_checkpoint(finished / "final.pt")["config"]["data"]["train"]))
    return recipe, tmp_path / "run"


def weights(path: Path) -> dict:
    state = load_checkpoint(path)
    return {**{f"model.{k}": v for k, v in state["model"].items()}, **{f"ema.{k}": v for k, v in state["ema"].items()}}


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = weights(a), weights(b)
    assert left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_resume_finds_the_newest_valid_checkpoint_itself(run_copy, finished: Path, capsys) -> None:
    recipe, out = run_copy
    ckpt = out / "checkpoints"
    # The newest checkpoint is damaged (a kill mid-write on a filesystem without atomic rename):
    (ckpt / "iter_0000004.pt").write_bytes((ckpt / "iter_0000004.pt").read_bytes()[:1000])
    (out / "final.pt").unlink()
    kept = (ckpt / "iter_0000002.pt").read_bytes()
    assert main(["train", "--config", str(recipe), "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"resuming from {ckpt / 'iter_0000002.pt'} at iteration 2" in err and "skipped" in err
    assert (ckpt / "iter_0000002.pt").read_bytes() == kept  # not retrained from 0
    assert_same_weights(out / "final.pt", finished / "final.pt")  # and bit-identical


def test_resume_without_a_valid_checkpoint_is_an_error_and_changes_nothing(run_copy, capsys) -> None:
    recipe, out = run_copy
    for path in (out / "checkpoints").glob("iter_*.pt"):
        path.write_bytes(b"PK\x03\x04 broken")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert main(["train", "--config", str(recipe), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "holds no valid checkpoint" in err and str(out) in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == before


def test_no_flag_refuses_an_existing_run(run_copy, capsys) -> None:
    recipe, out = run_copy
    before = (out / "final.pt").read_bytes()
    assert main(["train", "--config", str(recipe)]) == 2
    assert str(out) in capsys.readouterr().err
    assert (out / "final.pt").read_bytes() == before


def test_resume_or_restart_continues_an_unfinished_run(run_copy, finished: Path, capsys) -> None:
    recipe, out = run_copy
    for name in ("checkpoints/iter_0000004.pt", "final.pt", "summary.json"):
        (out / name).unlink()
    assert main(["train", "--config", str(recipe), "--resume-or-restart"]) == 0
    assert "resuming from" in capsys.readouterr().err and not (out / REPLACED).exists()
    assert_same_weights(out / "final.pt", finished / "final.pt")
    # The resumed attempt's events file sorts after the first one's: TensorBoard reads them in name order.
    events = sorted(path.name for path in (out / "tb").iterdir())
    assert len(events) == 2 and events[0] == next((finished / "tb").iterdir()).name


@pytest.mark.parametrize("change", [[], ["--override", "optim.lr=0.002"]], ids=["forced-rerun", "recipe-changed"])
def test_resume_or_restart_trains_afresh_and_keeps_the_old_run(
    run_copy, finished: Path, change: list[str], capsys
) -> None:
    recipe, out = run_copy
    old_final = (out / "final.pt").read_bytes()
    old_summary = (out / "summary.json").read_bytes()
    old_second = (out / "checkpoints" / "iter_0000002.pt").read_bytes()
    if not change:  # a forced re-run: Snakemake deletes final.pt before the job (summary.json is update()d)
        (out / "final.pt").unlink()
    assert main(["train", "--config", str(recipe), "--resume-or-restart", *change]) == 0
    err = capsys.readouterr().err
    assert "moved the earlier run (all but the files git holds) to" in err and "resuming" not in err
    (replaced,) = (out / REPLACED).iterdir()
    assert (replaced / "summary.json").read_bytes() == old_summary  # the old run is kept whole, not mixed
    assert (replaced / "final.pt").exists() == bool(change)
    if change:
        assert (replaced / "final.pt").read_bytes() == old_final
    assert (replaced / "checkpoints" / "iter_0000002.pt").read_bytes() == old_second
    # Outside git the new events file keeps TensorBoard's own name, the old one is only in replaced/.
    old_events = [path.name for path in (finished / "tb").iterdir()]
    assert [path.name for path in (replaced / "tb").iterdir()] == old_events
    assert len(new_events := [path.name for path in (out / "tb").iterdir()]) == 1 and new_events != old_events
    state = load_checkpoint(out / "final.pt")
    assert state["iteration"] == 4 and state["config"]["optim"]["lr"] == (0.002 if change else 0.001)
    assert (out / "checkpoints" / "iter_0000002.pt").read_bytes() != old_second  # recomputed


def test_a_complete_run_of_the_same_recipe_is_given_back_untouched(run_copy, capsys) -> None:
    recipe, out = run_copy
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    # name and out_dir may differ (RESUMABLE_CHANGES): it is the same run
    assert main(["train", "--config", str(recipe), "--resume-or-restart", "--override", "run.log_every=2"]) == 0
    err = capsys.readouterr().err
    assert f"{out} already holds the complete run of this recipe ({out / 'final.pt'}, {out / 'summary.json'})" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == before
    assert not (out / REPLACED).exists()


@pytest.mark.parametrize("damage", ["summary-of-another-run", "summary-unreadable", "final-of-another-recipe"])
def test_a_run_whose_final_and_summary_do_not_match_the_recipe_is_not_given_back(run_copy, capsys, damage) -> None:
    from suite.train.rundir import finished_run

    recipe_path, out = run_copy
    recipe = load_recipe(recipe_path)
    samples = load_checkpoint(out / "final.pt")["sampler"]["samples_per_epoch"]
    notes = []
    assert finished_run(recipe, "resume-or-restart", samples, notes.append) == out / "final.pt" and notes
    assert finished_run(recipe, "resume", samples, notes.append) is None  # --resume goes on as it did
    summary = out / "summary.json"
    if damage == "summary-of-another-run":
        summary.write_text(summary.read_text().replace('"config_hash": "', '"config_hash": "0'))
    elif damage == "summary-unreadable":
        summary.write_text("{")
    else:
        recipe = load_recipe(recipe_path, ["optim.lr=0.002"])
    notes.clear()
    assert finished_run(recipe, "resume-or-restart", samples, notes.append) is None and notes == []


def test_a_second_training_into_a_locked_folder_is_refused(run_copy, capsys) -> None:
    recipe, out = run_copy
    before = (out / "final.pt").read_bytes()
    with RunLock(out):
        assert main(["train", "--config", str(recipe), "--resume-or-restart"]) == 2
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err and str(out) in err and "in use" in err
    assert (out / "final.pt").read_bytes() == before
    assert not (out / REPLACED).exists()


def test_temp_files_of_killed_writes_are_removed(run_copy, capsys) -> None:
    recipe, out = run_copy
    stale = [out / "checkpoints" / ".iter_0000006.pt.k1ll3d.tmp", out / ".summary.json.x7f2ab.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    assert main(["train", "--config", str(recipe), "--resume"]) == 0
    err = capsys.readouterr().err
    assert not any(path.exists() for path in stale)
    assert all(f"removed {path}" in err for path in stale)


def test_resume_refuses_another_thread_count(run_copy, capsys) -> None:
    # A different intra-op thread count changes CPU reduction order: the resumed run would not be
    # bit-identical, so run.threads is part of what --resume compares.
    recipe, out = run_copy
    assert main(["train", "--config", str(recipe), "--resume", "--override", "run.threads=2"]) == 2
    assert "run.threads: 1 -> 2" in capsys.readouterr().err


def test_a_corrupt_training_image_stops_the_run_before_the_first_step(mini_root: Path, tmp_path: Path, capsys) -> None:
    train_root = tmp_path / "train"
    shutil.copytree(mini_root / "train", train_root)
    victim = sorted((train_root / "HR").glob("*.png"))[-1]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated: opens, fails to decode
    recipe = write_recipe(tmp_path, train_root)
    assert main(["train", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert victim.name in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "train_log.csv").exists()


def test_resume_points_to_the_checkpoints_a_restart_moved_aside(run_copy, capsys) -> None:
    recipe, out = run_copy
    aside = out / "replaced" / "20261207T000000.000000Z"
    aside.mkdir(parents=True)
    (out / "checkpoints").rename(aside / "checkpoints")
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "iter_0000001.pt").write_bytes(b"PK\x03\x04 broken")
    assert main(["train", "--config", str(recipe), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"the newest valid one is {aside / 'checkpoints' / 'iter_0000004.pt'}, moved aside" in err
