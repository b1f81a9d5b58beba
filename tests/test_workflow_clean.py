"""The default workflow on a fresh clone leaves nothing untracked (issue 21.5): its re-runs over the committed
results/default replace them in place (`git status` shows them modified), and a second run has nothing to do.

On a fresh clone data/ is absent, so every job that reads the data runs again over committed outputs; here
the cheapest of them: the data build, the bicubic evaluation (with images) and the training of one model,
shrunk to two iterations by a config file merged over the default one (a changed recipe: it trains afresh,
the rule that used to move the committed run aside under replaced/).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, snakemake

TARGETS = ("results/default/eval/bicubic/mini_test-x2.json", "results/default/train/tiny-rpb-x2/final.pt")
SHRINK = {  # one thread for the training: it runs beside the bicubic evaluation
    "train": {
        "overrides": {"schedule.iterations": 2, "schedule.warmup": 1, "run.val_every": 0, "run.checkpoint_every": 2},
        "resources": {"threads": 1, "gpus": 0, "mem_mb": 4000, "runtime": 60},
    }
}


def git_status(clone: Path) -> list[str]:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone, capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


@pytest.mark.slow
def test_a_fresh_clone_run_twice_leaves_nothing_untracked(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, capture_output=True)
    shrink = tmp_path / "shrink.yaml"  # outside the clone: not a file of the work tree
    shrink.write_text(yaml.safe_dump(SHRINK))
    run = ("--cores", "2", *TARGETS, "--configfile", str(shrink))

    first = snakemake(clone, *run)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "rule train:" in first.stderr + first.stdout  # a re-run over the committed run did happen
    status = git_status(clone)
    assert [line for line in status if line.startswith("??")] == []
    changed = {line[3:] for line in status}
    assert {
        "results/default/train/tiny-rpb-x2/final.pt",
        "results/default/train/tiny-rpb-x2/train_log.csv",
        "results/default/eval/bicubic/mini_test-x2.json",
    } <= changed
    assert not any("/replaced/" in path for path in changed)
    events = list((clone / "results/default/train/tiny-rpb-x2/tb").iterdir())
    assert len(events) == 1 and f"results/default/train/tiny-rpb-x2/tb/{events[0].name}" in changed

    second = snakemake(clone, *run)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Nothing to be done" in second.stdout + second.stderr
    assert git_status(clone) == status
