"""The Snakemake workflow resolves: dry runs of the default and paper configs, lint, config errors.

Each test runs on a copy of the Snakefile and workflows/ in a temporary folder, so results already
in the checkout cannot change what the dry run plans.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def copy_workflow(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", target / "Snakefile")
    shutil.copytree(REPO / "workflows", target / "workflows")
    return target


def snakemake(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run snakemake of this interpreter in `workdir`, with this environment's `suite` on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)


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


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


def test_default_dry_run_plans_every_step(workdir: Path) -> None:
    done = snakemake(workdir, "-n", "-p")
    assert done.returncode == 0, done.stdout + done.stderr
    assert job_counts(done.stdout) == {
        "data_mini": 1, "train": 2, "eval_bicubic_with_images": 1, "eval_checkpoint_with_images": 2,
        "profile_sweep": 1, "report": 1, "all": 1, "total": 9,
    }
    assert "suite data mini --root data/mini" in done.stdout
    assert "suite train --config workflows/config/recipes/tiny_cpu.yaml" in done.stdout
    assert "model.bias=rpb" in done.stdout and "model.bias=rib" in done.stdout


def test_paper_dry_run_plans_fine_tuning_from_x2(workdir: Path) -> None:
    done = snakemake(workdir, "-n", "-p", "--cores", "16", "--configfile", "workflows/config/paper.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    models, datasets, scales = 2 * 2, 5, 3  # presets x biases, test sets, scales
    counts = job_counts(done.stdout)
    assert counts["train"] == models * scales
    assert counts["eval_checkpoint"] + counts["eval_checkpoint_with_images"] == models * datasets * scales
    assert counts["eval_bicubic"] + counts["eval_bicubic_with_images"] == datasets * scales
    assert counts["data_fetch"] == 3  # DIV2K, benchmark, Manga109
    x4 = next(line for line in done.stdout.splitlines() if "name=large-rib-x4" in line)
    assert "--config workflows/config/recipes/paper_finetune.yaml" in x4
    assert "init_from=results/paper/train/large-rib-x2/final.pt" in x4
    assert "torchrun --standalone --nproc_per_node=4 -m suite train" in x4
    assert "suite data fetch benchmark --root data/paper" in done.stdout


def test_lint_is_clean(workdir: Path) -> None:
    for config in ("workflows/config/default.yaml", "workflows/config/paper.yaml"):
        done = snakemake(workdir, "--lint", "--configfile", config)
        assert done.returncode == 0 and "Lints for" not in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize("override, field", [
    ({"train": {"seed": "zero"}}, "['train']['seed']"),
    ({"trian": {"seed": 0}}, "'trian' was unexpected"),
    ({"data_source": "ftp"}, "['data_source']"),
    ({"train": {"biases": ["rpb", "alibi"]}}, "['train']['biases'][1]"),
    ({"eval": {"datasets": ["mini_test", "Set5"]}}, "eval.datasets: 'Set5' is not a key of datasets"),
    ({"report": {"crop": {"scale": 3}}}, "report.crop.scale: 3 is not one of scales [2]"),
])
def test_invalid_config_fails_before_any_job_naming_the_field(tmp_path: Path, override: dict, field: str) -> None:
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "bad.yaml").write_text(yaml.safe_dump(override))
    done = snakemake(workdir, "-n", "--configfile", "bad.yaml")
    assert done.returncode != 0
    assert field in done.stdout + done.stderr, done.stdout + done.stderr
    assert "Job stats" not in done.stdout


def test_slurm_profile_names_real_rules_and_parses(workdir: Path) -> None:
    profile = yaml.safe_load((workdir / "workflows/profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    rules = set(snakemake(workdir, "--list-rules").stdout.split())
    assert set(profile["set-resources"]) <= rules, set(profile["set-resources"]) - rules
    # Every setting of the profile is accepted by snakemake (the local executor stands in for SLURM,
    # whose plugin is an optional extra).
    done = snakemake(workdir, "-n", "-p", "--workflow-profile", "workflows/profiles/slurm", "--executor", "local",
                     "--configfile", "workflows/config/paper.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    train = done.stdout.split("rule train:", 1)[1].split("rule ", 1)[0]
    assert "gpu=4" in train and "tasks_per_gpu=0" in train and "runtime=2880" in train
