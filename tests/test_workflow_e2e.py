"""The whole workflow for real on the smallest config (workflows/config/tests.yaml) in a temporary
folder: every declared output is written, the tables parse, a second invocation has nothing to do,
and `snakemake --report` renders."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest
from test_workflow import copy_workflow, snakemake

# A subcommand still a placeholder lacks the option its real version has.
REQUIRED_COMMANDS = {("data",): "mini", ("train",): "--config", ("eval",): "--checkpoint", ("profile",): "sweep"}


def placeholder_commands() -> list[str]:
    missing = []
    for command, marker in REQUIRED_COMMANDS.items():
        done = subprocess.run([sys.executable, "-m", "suite", *command, "--help"], capture_output=True,
                              text=True, timeout=120)
        if marker not in done.stdout:
            missing.append(f"`suite {' '.join(command)}` (its --help has no {marker!r})")
    return missing


@pytest.mark.slow
def test_workflow_runs_end_to_end(tmp_path) -> None:
    missing = placeholder_commands()
    if missing:
        pytest.skip("the workflow's steps are not all implemented yet: " + "; ".join(missing))
    workdir = copy_workflow(tmp_path / "workflow")
    config = ("--configfile", "workflows/config/tests.yaml")

    done = snakemake(workdir, "--cores", "2", *config, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    summary = snakemake(workdir, "--summary", *config)
    assert summary.returncode == 0, summary.stderr
    outputs = [line.split("\t")[0] for line in summary.stdout.splitlines()[1:] if "\t" in line]
    assert len(outputs) >= 20, summary.stdout
    absent = [path for path in outputs if not (workdir / path).exists()]
    assert not absent, f"declared outputs not written: {absent}"

    again = snakemake(workdir, "-n", *config)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout

    results = workdir / "results" / "tests"
    psnr = pd.read_csv(results / "tables/psnr_ssim.csv")
    measured = psnr[psnr["source"] == "measured"]
    assert sorted(zip(measured["method"], measured["bias"].fillna(""))) == [("bicubic", ""), ("tiny", "rib"),
                                                                           ("tiny", "rpb")]
    assert all(math.isfinite(value) for value in measured["mini_test_x2_psnr"])
    speed = pd.read_csv(results / "tables/speed.csv", dtype=str)
    assert set(speed["phase"]) == {"train", "infer"} and {"rpb_ms", "rib_ms", "rib_speedup"} <= set(speed.columns)
    training = pd.read_csv(results / "tables/training.csv")
    assert sorted(training["run"]) == ["tiny-rib-x2", "tiny-rpb-x2"]
    assert "## Reconstruction quality" in (results / "REPORT.md").read_text()

    html = snakemake(workdir, "--report", "results/tests/report.html", *config)
    assert html.returncode == 0, html.stderr[-3000:]
    assert (results / "report.html").stat().st_size > 10_000
