"""The report's sections for the research tools (`suite analyze` tables under analysis/) and the rank
ablation (runs named <preset>-rib-r<R>), on synthetic result files in the tools' own columns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from conftest import add_run, make_results, synthetic_report, write_analysis
from suite.analysis.outputs import ANALYSIS_OUTPUTS
from suite.report import ReportInputError
from suite.report.readers import read_runs
from suite.stats import paired_bootstrap

# Rank-ablation runs: model -> (PSNR on mini_test x2, median step s). Distinct values so a swap shows.
ABLATION = {
    "tiny-rib-r2": (31.01, 0.101),
    "tiny-rib-r8": (31.08, 0.108),
    "tiny-rib-r16": (31.16, 0.116),
    "tiny-none": (30.90, 0.090),
}


WINDOW_ROW = {
    "factor": 1.0,
    "window_sizes": "32 32",
    "status": "ok",
    "reason": "",
    "psnr": 31.5,
    "ssim": 0.91,
    "psnr_change": 0.0,
    "ms_median": 120.0,
    "ms_iqr": 2.0,
    "time_ratio": 1.0,
}


def test_rank_ablation_runs_give_a_table_and_a_figure(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    # Per-image scores: r8 beats no bias on both images, r2 on one only.
    per_image = {
        "tiny-rib-r2": (0.3, -0.08),
        "tiny-rib-r8": (0.2, 0.16),
        "tiny-rib-r16": (0.3, 0.22),
        "tiny-none": (0, 0),
    }
    for model, (psnr, step) in ABLATION.items():
        images = [{"name": f"img{i}", "psnr": 31.0 + offset, "ssim": 0.9} for i, offset in enumerate(per_image[model])]
        add_run(results, model, psnr, step, images=images)
    assert {run.name: run.rank for run in read_runs(results)}["tiny-rib-r16-x2"] == 16
    out = synthetic_report(results)
    table = pd.read_csv(out / "tables/rank_ablation.csv")
    measured = table[table["dataset"] == "mini_test"]
    assert list(measured["model"]) == ["tiny-rib-r2", "tiny-rib-r8", "tiny-rib-r16", "tiny-none"]
    for row in measured.to_dict("records"):
        assert (row["psnr"], row["median_step_time_s"]) == ABLATION[row["model"]]
    assert math.isnan(measured[measured["model"] == "tiny-none"]["rank"].iloc[0])
    assert (out / "figures/rank_ablation.png").stat().st_size > 10_000
    report = (out / "REPORT.md").read_text()
    r8, r2 = (
        paired_bootstrap([a - b for a, b in zip(per_image[m], per_image["tiny-none"])])
        for m in ("tiny-rib-r8", "tiny-rib-r2")
    )
    assert "## Rank ablation" in report
    assert (
        f"| tiny-rib-r8 | 8 | x2 | mini_test | 1 | 31.0800 | – | 0.9000 | +{r8.mean:.4f} [+{r8.low:.4f}, +{r8.high:.4f}] "
        "| resolved |"
    ) in report
    assert (
        f"| tiny-rib-r2 | 2 | x2 | mini_test | 1 | 31.0100 | – | 0.9000 | +{r2.mean:.4f} [{r2.low:+.4f}, +{r2.high:.4f}] | not resolved at this size |"
        in report
    )
    assert "over 2 test images" in report
    # The PSNR table names the rank; the targets still compare only the RPB/RIB pair of the preset.
    psnr = pd.read_csv(out / "tables/psnr_ssim.csv")
    assert "rib (rank 8)" in set(psnr["bias"].fillna(""))
    assert "tiny-rib-r" not in (out / "tables/targets.md").read_text()


def test_without_ablation_runs_there_is_no_ablation_section(tmp_path: Path) -> None:
    out = synthetic_report(make_results(tmp_path))
    assert not (out / "tables/rank_ablation.csv").exists()
    assert "## Rank ablation" not in (out / "REPORT.md").read_text()


def test_analysis_tables_reach_the_report(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    write_analysis(
        results,
        "bias",
        "tiny-rpb-x2",
        [
            {
                "layer": 0,
                "block": 0,
                "layer_in_block": 0,
                "window": 32,
                "bias": "rpb",
                "head": h,
                "bias_min": -0.5,
                "bias_max": 0.25 + h,
                "bias_range": 0.75 + h,
                "effective_rank_99": 800 + h,
                "translation_deviation": 0.0,
            }
            for h in range(2)
        ],
    )
    write_analysis(
        results,
        "lowrank",
        "tiny-rpb-x2",
        [
            {
                "variant": "rpb",
                "rank": None,
                "rank_label": "-",
                "bias_rel_error": 0.0,
                "bias_rel_error_max": 0.0,
                "psnr": 31.5,
                "ssim": 0.91,
                "psnr_change": 0.0,
                "ssim_change": 0.0,
                "ms_median": 120.0,
                "ms_iqr": 2.0,
                "time_ratio": 1.0,
                "status": "ok",
                "reason": "",
            },
            {
                "variant": "lowrank-4",
                "rank": 4,
                "rank_label": "4",
                "bias_rel_error": 0.4321,
                "bias_rel_error_max": 0.6,
                "psnr": 31.2,
                "ssim": 0.905,
                "psnr_change": -0.3,
                "psnr_change_low": -0.41,
                "psnr_change_high": -0.2,
                "ssim_change": -0.005,
                "ms_median": 60.0,
                "ms_iqr": 1.0,
                "time_ratio": 0.5,
                "time_ratio_low": 0.45,
                "time_ratio_high": 0.56,
                "status": "ok",
                "reason": "",
            },
        ],
    )
    write_analysis(
        results,
        "windows",
        "tiny-rpb-x2",
        [
            {
                "factor": 0.5,
                "window_sizes": "16 16",
                "status": "refused",
                "reason": "an RPB layer trained at window 32 cannot run at window 16",
                "psnr": None,
                "ssim": None,
                "psnr_change": None,
                "ms_median": None,
                "ms_iqr": None,
                "time_ratio": None,
            },
            WINDOW_ROW,
        ],
    )
    out = synthetic_report(results)
    report = (out / "REPORT.md").read_text()
    assert (
        "| tiny-rpb-x2 | lowrank-4 | 4 | 4.32e-01 | 6.00e-01 | 31.2000 | -0.30000 [-0.41000, -0.20000] | resolved | "
        "0.9050 | 60.0 | 0.50 [0.45, 0.56] | ok |"
    ) in report
    assert (
        "| tiny-rpb-x2 | rpb | - | 0.00e+00 | 0.00e+00 | 31.5000 | +0.00000 | – | 0.9100 | 120.0 | 1.00 | ok |"
        in report
    )
    assert "| tiny-rpb-x2 | 0.5 | 16 16 | refused | – |" in report and "cannot run at window 16" in report
    assert "| tiny-rpb-x2 | 0 | 32 | 1 | -0.500 | 1.250 | 801 | 0.000 |" in report
    assert "![tiny-rpb-x2 offsets](analysis/bias/tiny-rpb-x2/offsets.png)" in report
    lowrank = pd.read_csv(out / "tables/lowrank.csv", keep_default_na=False)
    assert list(lowrank["variant"]) == ["rpb", "lowrank-4"] and set(lowrank["run"]) == {"tiny-rpb-x2"}
    assert "analysis/windows/tiny-rpb-x2/windows.csv" in report  # listed under Provenance


@pytest.mark.parametrize("tool", sorted(ANALYSIS_OUTPUTS))
def test_an_analysis_table_without_its_columns_is_refused_naming_the_file(tmp_path: Path, tool: str) -> None:
    results = make_results(tmp_path)
    path = results / "analysis" / tool / "tiny-rib-x2" / ANALYSIS_OUTPUTS[tool].table.csv_name
    required = [c for c in ANALYSIS_OUTPUTS[tool].table.columns if c not in ANALYSIS_OUTPUTS[tool].optional]
    path.parent.mkdir(parents=True)
    path.write_text("layer,whatever\n0,1\n")
    with pytest.raises(ReportInputError, match=rf"{path}: missing column\(s\) .*{required[-1]}"):
        synthetic_report(results)


def test_an_analysis_folder_not_named_after_a_run_is_refused(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    write_analysis(results, "windows", "my-model", [])
    with pytest.raises(ReportInputError, match="named after a training run"):
        synthetic_report(results)


def test_ablation_json_is_not_needed(tmp_path: Path) -> None:
    """The report reads the CSVs only; their JSON twins hold the run records for people."""
    results = make_results(tmp_path)
    add_run(results, "tiny-rib-r4", 31.05, 0.104)
    assert json.loads((results / "eval/tiny-rib-r4/mini_test-x2.json").read_text())["method"] == "tiny-rib-r4"
    assert (synthetic_report(results) / "tables/rank_ablation.csv").is_file()


def test_a_run_missing_from_an_analysis_tool_is_listed_not_dropped_silently(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    runs = sorted(path.name for path in (results / "train").iterdir())
    for run in runs[1:]:
        write_analysis(results, "windows", run, [WINDOW_ROW])
    report = (synthetic_report(results) / "REPORT.md").read_text()
    missing = results / "analysis" / "windows" / runs[0] / "windows.csv"
    assert "## Results not found" in report
    assert f"`{missing}`, the `suite analyze windows` table of {runs[0]}: the windows tables below leave" in report
    assert report.count("**Not found:**") == 1  # lowrank and bias did not run at all: nothing is missing


def test_a_non_number_in_an_analysis_table_is_refused_naming_file_column_and_row(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    path = write_analysis(results, "windows", "tiny-rpb-x2", [WINDOW_ROW, {**WINDOW_ROW, "psnr": "abc"}])
    with pytest.raises(ReportInputError, match=rf"{path}: column psnr holds 'abc' in data row 2, not a number"):
        synthetic_report(results)


def test_an_analysis_table_from_before_the_intervals_is_read_without_them(tmp_path: Path) -> None:
    """Tables written before version 2 (no psnr_change_low/high, time_ratio_low/high) still read; their changes
    show without an interval rather than refusing the committed results of earlier runs."""
    results = make_results(tmp_path)
    path = results / "analysis/windows/tiny-rib-x2/windows.csv"
    path.parent.mkdir(parents=True)
    old = [
        column
        for column in ANALYSIS_OUTPUTS["windows"].table.columns
        if column not in ANALYSIS_OUTPUTS["windows"].optional
    ]
    pd.DataFrame([{**{column: None for column in old}, **WINDOW_ROW}])[old].to_csv(path, index=False)
    report = (synthetic_report(results) / "REPORT.md").read_text()
    assert "| tiny-rib-x2 | 1 | 32 32 | ok | 31.5000 | +0.00000 | – | 0.9100 | 120.0 | 1.00 | – |" in report
