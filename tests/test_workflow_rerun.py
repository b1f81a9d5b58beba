"""Re-runs through Snakemake keep every model and never mix two runs (workflows/config/tests.yaml,
4 training iterations, one training target):
- a changed recipe file or recipe override trains afresh, the earlier run moved aside whole;
- a run stopped after a checkpoint resumes and ends bit-identical to an uninterrupted one;
- `--forceall` after a finished run trains and profiles again instead of "resuming" finished work.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import copy_workflow, snakemake
from suite.checkpoint import load_checkpoint

CONFIG = ("--configfile", "workflows/config/tests.yaml", "rerun.yaml")
RUN = "results/tests/train/tiny-rib-x2"
TRAIN_LOG = "logs/tests/train/tiny-rib-x2.log"
PROFILE = "results/tests/profile"


def run(workdir: Path, targets: list[str], *args: str) -> str:
    """snakemake --cores 2 TARGETS ARGS (targets first: --configfile takes every word after it)."""
    done = snakemake(workdir, "--cores", "2", *targets, *args, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def checkpoint_iterations(folder: Path) -> list[int]:
    return sorted(load_checkpoint(path)["iteration"] for path in folder.glob("*.pt"))


def last_checkpoint(folder: Path) -> Path:
    return max(folder.glob("*.pt"), key=lambda path: load_checkpoint(path)["iteration"])


def weights(path: Path) -> dict:
    return load_checkpoint(path)["ema"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


# One point, two variants, inference only: what the forced re-run test needs of a sweep.
SMALL_SWEEP = {
    "description": "re-run test sweep",
    "preset": "tiny",
    "overrides": {},
    "scale": 2,
    "device": "cpu",
    "precision": "fp32",
    "threads": 1,
    "seed": 0,
    "isolation": "none",
    "point_timeout_s": 300,
    "profiler": {"warmup": 1, "active": 1},
    "phases": {"infer": {"batch": 1, "warmup": 1, "steps": 1}},
    "variants": [{"bias": "rpb", "backend": "auto"}, {"bias": "rib", "backend": "auto"}],
    "points": [{"window": 8, "patch": 16, "phases": ["infer"]}],
    "attention": {"warmup": 1, "steps": 1},
}


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the workflow with tiny-rib-x2 trained once (4 iterations, checkpoints at 2 and 4)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("rerun") / "workflow")
    (workdir / "suite/profiling/configs/rerun_cpu.yaml").write_text(yaml.safe_dump(SMALL_SWEEP))
    # No periodic validation (a re-run's cost is mostly validation) and the one-point sweep.
    (workdir / "rerun.yaml").write_text(
        yaml.safe_dump(
            {
                "train": {"overrides": {"run.val_every": 0}},
                "profile": {"sweep": "suite/profiling/configs/rerun_cpu.yaml"},
            }
        )
    )
    run(workdir, [f"{RUN}/final.pt"], *CONFIG)
    assert checkpoint_iterations(workdir / RUN / "checkpoints") == [2, 4]
    return workdir


@pytest.fixture()
def trained(trained_once: Path, tmp_path: Path) -> Path:
    """A private copy of `trained_once` (outputs, data and Snakemake's records, times kept)."""
    return Path(shutil.copytree(trained_once, tmp_path / "workflow", symlinks=True))


@pytest.mark.slow
def test_changed_recipe_trains_afresh_and_keeps_the_old_run(trained: Path) -> None:
    workdir, run_dir = trained, trained / RUN
    before = weights(run_dir / "final.pt")
    (workdir / "changed.yaml").write_text(yaml.safe_dump({"train": {"overrides": {"optim.lr": 5.0e-4}}}))

    output = run(workdir, [f"{RUN}/final.pt"], *CONFIG, "changed.yaml")
    assert "rule train:" in output  # Snakemake saw the changed override and ran the job again

    moved = list((run_dir / "replaced").iterdir())
    assert len(moved) == 1, moved
    # Snakemake deletes a job's outputs (final.pt) before running it again; the model survives as the
    # earlier run's last checkpoint, moved aside with everything else of that run.
    assert checkpoint_iterations(moved[0] / "checkpoints") == [2, 4]
    assert same_weights(weights(last_checkpoint(moved[0] / "checkpoints")), before)
    # The new run's checkpoints are all its own: the changed recipe, from iteration 0.
    assert checkpoint_iterations(run_dir / "checkpoints") == [2, 4]
    for path in (run_dir / "checkpoints").glob("*.pt"):
        assert load_checkpoint(path)["config"]["optim"]["lr"] == 5.0e-4
    assert load_checkpoint(run_dir / "final.pt")["config"]["optim"]["lr"] == 5.0e-4
    assert "resuming" not in (workdir / TRAIN_LOG).read_text()
    assert not same_weights(weights(run_dir / "final.pt"), before)


@pytest.mark.slow
def test_edited_recipe_file_trains_afresh(trained: Path) -> None:
    workdir, run_dir = trained, trained / RUN
    recipe = workdir / "workflows/config/recipes/tiny_cpu.yaml"
    text = recipe.read_text()
    assert text.count("  decay: 0.99 ") == 1
    recipe.write_text(text.replace("  decay: 0.99 ", "  decay: 0.9  "))

    output = run(workdir, [f"{RUN}/final.pt"], *CONFIG)
    assert "rule train:" in output  # the recipe is an input: newer than final.pt
    assert len(list((run_dir / "replaced").iterdir())) == 1
    assert load_checkpoint(run_dir / "final.pt")["config"]["ema"]["decay"] == 0.9
    assert "resuming" not in (workdir / TRAIN_LOG).read_text()


@pytest.mark.slow
def test_unchanged_recipe_resumes_a_stopped_run(trained: Path) -> None:
    workdir, run_dir = trained, trained / RUN
    reference = weights(run_dir / "final.pt")
    # The state a run stopped (killed, out of walltime) after its checkpoint at iteration 2 leaves:
    # no final outputs, nothing after that checkpoint.
    for path in (run_dir / "final.pt", run_dir / "summary.json"):
        path.unlink()
    for path in (run_dir / "checkpoints").glob("*.pt"):
        if load_checkpoint(path)["iteration"] == 4:
            path.unlink()

    output = run(workdir, [f"{RUN}/final.pt"], *CONFIG)
    assert "rule train:" in output
    log = (workdir / TRAIN_LOG).read_text()
    assert "resuming" in log and "at iteration 2" in log, log[-2000:]
    assert not (run_dir / "replaced").exists()
    assert same_weights(weights(run_dir / "final.pt"), reference)  # bit-identical to the uninterrupted run
    assert json.loads((run_dir / "summary.json").read_text())["iterations"] == 4


@pytest.mark.slow
def test_forceall_after_a_finished_run_recomputes(trained: Path) -> None:
    workdir, run_dir = trained, trained / RUN
    run(workdir, [f"{PROFILE}/profile.json"], *CONFIG)
    first_profile = json.loads((workdir / PROFILE / "profile.json").read_text())

    output = run(workdir, [f"{RUN}/final.pt", f"{PROFILE}/profile.json"], "--forceall", *CONFIG)
    assert "rule train:" in output and "rule profile_sweep:" in output
    # Training: the finished run moved aside, a new one from iteration 0 (not a "resume" at 4 of 4).
    moved = list((run_dir / "replaced").iterdir())
    assert len(moved) == 1 and checkpoint_iterations(moved[0] / "checkpoints") == [2, 4]
    # summary.json is update()d: Snakemake kept it for the trainer, which moved it aside with the run
    assert json.loads((moved[0] / "summary.json").read_text())["iterations"] == 4
    assert "resuming" not in (workdir / TRAIN_LOG).read_text()
    assert checkpoint_iterations(run_dir / "checkpoints") == [2, 4]
    # Profiling: every point measured again, the earlier sweep kept under profile/replaced/.
    assert len(list((workdir / PROFILE / "replaced").iterdir())) == 1
    second_profile = json.loads((workdir / PROFILE / "profile.json").read_text())
    assert len(second_profile["rows"]) == len(first_profile["rows"])
    assert second_profile != first_profile  # new measurements (times and run records differ)
