"""The whole workflow for real on the smallest config (workflows/config/tests.yaml) in a temporary
folder: every declared output is written, the results folder records its data, the tables parse, a
second invocation has nothing to do, and `snakemake --report` renders."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from conftest import copy_workflow, snakemake


@pytest.mark.slow
def test_workflow_runs_end_to_end(tmp_path) -> None:
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
    # The report wrote exactly the files the workflow declared for it (suite.report.sections), nothing more.
    report_files = {
        str(path.relative_to(workdir)) for folder in ("tables", "figures") for path in (results / folder).iterdir()
    }
    assert report_files == {
        path for path in outputs if path.startswith(("results/tests/tables/", "results/tests/figures/"))
    }
    assert json.loads((results / "data.json").read_text())["data_source"] == "mini"
    psnr = pd.read_csv(results / "tables/psnr_ssim.csv")
    measured = psnr[psnr["source"] == "measured"]
    assert sorted(zip(measured["method"], measured["bias"].fillna(""))) == [
        ("bicubic", ""),
        ("tiny", "rib"),
        ("tiny", "rpb"),
    ]
    assert all(math.isfinite(value) for value in measured["mini_test_x2_psnr"])
    speed = pd.read_csv(results / "tables/speed.csv", dtype=str)
    assert set(speed["phase"]) == {"train", "infer"} and {"rpb_ms", "rib_ms", "speedup_rpb_over_rib"} <= set(
        speed.columns
    )
    training = pd.read_csv(results / "tables/training.csv")
    assert sorted(training["run"]) == ["tiny-rib-x2", "tiny-rpb-x2"]
    report = (results / "REPORT.md").read_text()
    assert "## Reconstruction quality" in report
    # The research tools ran on both models (tests.yaml: rank 4, factors 0.5 and 1) and reached the report.
    for run in ("tiny-rpb-x2", "tiny-rib-x2"):
        assert (results / f"analysis/bias/{run}/offsets.png").stat().st_size > 1000
        assert f"analysis/bias/{run}/offsets.png" in report
    bias = pd.read_csv(results / "tables/bias_fields.csv")
    assert sorted(set(bias["run"])) == ["tiny-rib-x2", "tiny-rpb-x2"] and len(bias) == 2 * 4 * 2  # layers x heads
    assert (bias[bias["bias"] == "rpb"]["translation_deviation"] == 0).all()
    lowrank = pd.read_csv(results / "tables/lowrank.csv", keep_default_na=False)
    assert list(lowrank["variant"]) == ["rpb", "lowrank-4"] and set(lowrank["run"]) == {"tiny-rpb-x2"}
    windows = pd.read_csv(results / "tables/windows.csv", keep_default_na=False)
    rib, rpb = windows[windows["run"] == "tiny-rib-x2"], windows[windows["run"] == "tiny-rpb-x2"]
    assert list(rib["status"]) == ["ok", "ok"] and list(rpb["status"]) == ["refused", "ok"]
    assert "cannot run at window" in rpb["reason"].iloc[0]
    for heading in ("## Learned positional bias", "## RPB to flash by low rank", "## Window extrapolation"):
        assert heading in report

    html = snakemake(workdir, "--report", "results/tests/report.html", *config)
    assert html.returncode == 0, html.stderr[-3000:]
    assert (results / "report.html").stat().st_size > 10_000
    assert "Validation PSNR (EMA weights) against training iterations" in (results / "report.html").read_text()
