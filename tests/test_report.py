"""`suite report` on synthetic result files written in the suite's own formats: cells, OOM, GPU-sweep
labels, the paper's rows and the measured-vs-paper table, targets, the teaser figure, the lock warning,
errors naming the file."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import EVALS, EXPECTED_SPEEDUP, GPU_PROFILE, make_results, run_record, synthetic_report, write_json
from suite.cli import main
from suite.report import ReportInputError
from suite.report.crop import most_lost_detail
from suite.report.markdown import latex_escape
from suite.report.paper import (
    PAPER_KEYS,
    PAPER_VALUES,
    PaperValuesError,
    parse_paper_values,
)
from suite.report.quality import psnr_caption, psnr_table
from suite.report.readers import read_evals, read_profile, read_runs
from suite.report.speed import latency_figure, memory_figure, speedup_figure, speedup_text
from suite.report.targets import targets, targets_markdown
from suite.report.teaser import teaser_figure, teaser_points
from suite.stats import paired_bootstrap, unpaired_ratio


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One report over the synthetic results, shared by the tests that only read it."""
    return synthetic_report(make_results(tmp_path_factory.mktemp("built")))


def _row(frame: pd.DataFrame, source: str, method: str, bias: str) -> pd.Series:
    match = frame[(frame["source"] == source) & (frame["method"] == method) & (frame["bias"].fillna("") == bias)]
    assert len(match) == 1, f"expected one row {source}/{method}/{bias}, got {len(match)}"
    return match.iloc[0]


# --- PSNR table, paper rows, protocol ------------------------------------------------------------


def test_psnr_values_land_in_their_cells(built: Path) -> None:
    frame = pd.read_csv(built / "tables/psnr_ssim.csv")
    for (method, dataset, scale), (psnr, ssim) in EVALS.items():
        preset, bias = ("bicubic", "") if method == "bicubic" else method.split("-")
        row = _row(frame, "measured", preset, bias)
        assert row[f"{dataset}_x{scale}_psnr"] == psnr
        assert row[f"{dataset}_x{scale}_ssim"] == ssim
    # Only the cells this run measured: no column of a test set or scale that only the paper states.
    scores = [column for column in frame.columns if column.endswith("_psnr")]
    assert sorted(scores) == ["Set5_x2_psnr", "mini_test_x2_psnr"]
    markdown = (built / "tables/psnr_ssim.md").read_text()
    assert markdown.splitlines()[2].startswith("| Source | Method | Bias | Note | mini_test x2 | Set5 x2 |")
    rib_line = next(line for line in markdown.splitlines() if line.startswith("| measured | tiny | rib |"))
    assert "31.61 / 0.9123" in rib_line and "34.22 / 0.9344" in rib_line


def test_paper_rows_join_only_where_they_share_a_cell(built: Path) -> None:
    frame = pd.read_csv(built / "tables/psnr_ssim.csv")
    paper = frame[frame["source"] == "paper"]
    sharing = [key for key, row in PAPER_VALUES.rows.items() if ("Set5", 2) in row.scores]
    assert list(paper["method"]) == sharing and 0 < len(sharing) < len(PAPER_KEYS)
    assert list(frame["source"]) == ["measured"] * 3 + ["paper"] * len(sharing)  # measured results first
    xl = _row(frame, "paper", "SST-XL+ (DFLIP)", "rib")
    assert xl["Set5_x2_psnr"] == 38.77 and xl["Set5_x2_ssim"] == 0.9636 and math.isnan(xl["mini_test_x2_psnr"])
    assert _row(frame, "paper", "bicubic", "")["Set5_x2_psnr"] == 33.66
    assert _row(frame, "measured", "bicubic", "")["Set5_x2_psnr"] == 33.6601
    markdown = (built / "tables/psnr_ssim.md").read_text()
    assert "| paper | SST-XL+ (DFLIP) | rib |" in markdown and "SST-L+ (DF2K)" not in markdown
    assert all(PAPER_VALUES.rows[key].source in markdown for key in sharing) and "paper_values.yaml" in markdown


def test_the_papers_full_tables_have_a_section_of_their_own(built: Path) -> None:
    frame = pd.read_csv(built / "tables/paper_psnr_ssim.csv")
    assert list(frame["method"]) == list(PAPER_KEYS) == list(PAPER_VALUES.rows)
    assert set(frame["source"]) == {"paper"}
    xl = _row(frame, "paper", "SST-XL+ (DFLIP)", "rib")
    assert xl["Set5_x2_psnr"] == 38.77 and xl["Manga109_x4_psnr"] == 33.40
    assert "not the `large` preset" in xl["note"]
    assert not frame["method"].str.contains("large", case=False).any()  # no paper row claims a preset
    report = (built / "REPORT.md").read_text()
    section = report.split("## The paper's tables", 1)[1].split("\n## ", 1)[0]
    assert "### x2" in section and "### x4" in section and "| SST-XL+ (DFLIP) | rib |" in section
    assert (
        "| SST-L+ (DF2K) | rib | RIB large+ as the teaser draws it; the figure names no training set: DF2K is inferred"
        in section
    )
    assert "figs/sstxl.png" in section and "figs/escrib.png" in section and "figs/teaser.png" in section
    # Notes claim only what their source shows: MambaIRv2-L is a published result, ESC+RIB the README's DFLIP model,
    # and the two PFT rows say which is which.
    notes = {key: row.note for key, row in PAPER_VALUES.rows.items()}
    assert "not a model trained on DFLIP" in notes["MambaIRv2-L"] and "trained on DFLIP" in notes["ESC+RIB"]
    assert "PFT (teaser)" in notes["PFT"] and "published table" in notes["PFT (teaser)"]
    assert report.index("## The paper's tables") > report.index("## Reconstruction quality")


def test_every_caption_names_the_metric_protocol(built: Path) -> None:
    assert (
        (built / "tables/psnr_ssim.md")
        .read_text()
        .startswith("PSNR (dB) / SSIM, Y channel, metric protocol `basicsr-y`, in the cells this run measured.")
    )
    assert "metric protocol basicsr-y" in (built / "tables/psnr_ssim.tex").read_text()
    assert "Metric protocol `basicsr-y`: BasicSR's protocol" in (built / "REPORT.md").read_text()


def test_mixed_protocols_are_flagged(results: Path) -> None:
    path = results / "eval/tiny-rib/Set5-x2.json"
    data = json.loads(path.read_text())
    data["metric_options"]["protocol"] = "pyiqa-rounded-y"
    write_json(path, data)
    evals = read_evals(results)
    caption = psnr_caption(psnr_table(evals), evals)
    assert "metric protocols (MIXED) `basicsr-y`, `pyiqa-rounded-y`" in caption


def test_footnote_gives_budget_device_and_commit(built: Path) -> None:
    markdown = (built / "tables/psnr_ssim.md").read_text()
    assert "tiny-rpb-x2: 300 iterations (batch 4, LR patch 32), 200 s wall" in markdown
    assert "Device: cpu; training precision: fp32" in markdown and "Commit: abc1234." in markdown


# --- measured against the paper (12.2) -----------------------------------------------------------


def test_measured_against_paper_per_cell(results: Path) -> None:
    urban = [{"name": "img_001", "psnr": 35.7, "ssim": 0.9541}, {"name": "img_002", "psnr": 36.1, "ssim": 0.9561}]
    for dataset, psnr, ssim, images in (("Set5", 38.70, 0.9630, []), ("Urban100", 35.90, 0.9551, urban)):
        write_json(
            results / f"eval/sst-xl-plus-x2/{dataset}-x2.json",
            {
                "dataset": dataset,
                "scale": 2,
                "psnr": psnr,
                "ssim": ssim,
                "images": images,
                "metric_options": {"protocol": "basicsr-y"},
                "provenance": run_record(),
            },
        )
    out = synthetic_report(results, paper_rows={"sst-xl-plus-x2": "SST-XL+ (DFLIP)"})
    frame = pd.read_csv(out / "tables/paper_comparison.csv")
    set5 = frame[(frame["dataset"] == "Set5") & (frame["scale"] == 2)].iloc[0]
    assert (set5["psnr_measured"], set5["psnr_paper"]) == (38.70, 38.77)
    assert set5["psnr_diff"] == pytest.approx(38.70 - 38.77) and set5["ssim_diff"] == pytest.approx(0.9630 - 0.9636)
    assert set5["paper_row"] == "SST-XL+ (DFLIP)" and set5["protocol"] == "basicsr-y"
    # Every cell the paper states at the evaluated scale is listed; the ones not measured here stay empty.
    x2_cells = [cell for cell in PAPER_VALUES.rows["SST-XL+ (DFLIP)"].scores if cell[1] == 2]
    assert sorted(zip(frame["dataset"], frame["scale"])) == sorted(x2_cells) and len(x2_cells) == 7
    assert math.isnan(frame[frame["dataset"] == "Manga109"].iloc[0]["psnr_measured"])
    report = (out / "REPORT.md").read_text()
    assert "## Measured against the paper" in report
    # The difference's interval: a bootstrap over the test images of each image's score minus the paper's figure.
    psnr, ssim = (
        paired_bootstrap([image[key] - paper for image in urban]) for key, paper in (("psnr", 35.83), ("ssim", 0.9540))
    )
    assert (
        f"| sst-xl-plus-x2 | SST-XL+ (DFLIP) | x2 | Urban100 | 35.90 | 35.83 | +0.07 [{psnr.low:+.2f}, {psnr.high:+.2f}] | "
        f"not resolved at this size | 0.9551 | 0.9540 | +0.0011 [{ssim.low:+.4f}, {ssim.high:+.4f}] |"
    ) in report
    assert "| x2 | Set5 | 38.70 | 38.77 | -0.07 | – | 0.9630 | 0.9636 | -0.0006 |" in report  # no per-image scores
    # The same method folder also appears in the main table as a measured row under its own name.
    assert "| measured | sst-xl-plus-x2 |" in report


def test_verify_folder_with_released_models_only(tmp_path: Path) -> None:
    """The verify workflow's results: eval JSONs of released models, nothing else (no runs, no profile)."""
    results = tmp_path / "verify"
    for scale, psnr in ((2, 38.76), (4, 33.25)):
        write_json(
            results / f"eval/SSTXL_Plus_DFLIP_X{scale}/Set5-x{scale}.json",
            {
                "dataset": "Set5",
                "scale": scale,
                "psnr": psnr,
                "ssim": 0.9,
                "images": [],
                "metric_options": {"protocol": "basicsr-y"},
                "provenance": run_record(),
            },
        )
    assert (
        main(
            [
                "report",
                "--results",
                str(results),
                "--out",
                str(results),
                "--title",
                "verify",
                "--paper-rows",
                "SSTXL_Plus_DFLIP_X2=SST-XL+ (DFLIP)",
                "SSTXL_Plus_DFLIP_X4=SST-XL+ (DFLIP)",
            ]
        )
        == 0
    )
    frame = pd.read_csv(results / "tables/paper_comparison.csv")
    assert list(frame.groupby("method")["scale"].unique().map(list)) == [[2], [4]]  # no x4 rows of the x2 model
    measured = frame.dropna(subset=["psnr_measured"])
    assert list(zip(measured["method"], measured["scale"], measured["psnr_diff"].round(6))) == [
        ("SSTXL_Plus_DFLIP_X2", 2, round(38.76 - 38.77, 6)),
        ("SSTXL_Plus_DFLIP_X4", 4, round(33.25 - 33.24, 6)),
    ]
    report = (results / "REPORT.md").read_text()
    assert report.startswith("# Benchmark report: verify\n") and "## Measured against the paper" in report
    assert "No targets checked" in report and (results / "figures/teaser.png").is_file()


def test_paper_rows_option_errors_name_the_problem(results: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match=r"no paper row 'SST-L \(DF2K\)'.*choose one of SST-L\+ \(DF2K\)"):
        synthetic_report(results, paper_rows={"tiny-rib": "SST-L (DF2K)"})
    with pytest.raises(ReportInputError, match="no eval results for --paper-rows large-rib=SST-L"):
        synthetic_report(results, paper_rows={"large-rib": "SST-L+ (DF2K)"})
    assert main(["report", "--results", str(results), "--out", str(results), "--paper-rows", "tiny-rib"]) == 2
    assert "--paper-rows 'tiny-rib': expected METHOD=ROW" in capsys.readouterr().err


def test_paper_values_file_errors_name_the_entry() -> None:
    good = {
        "paper": "P",
        "groups": {"g": {"source": "S"}},
        "speed": {"group": "g"},
        "rows": {"A": {"group": "g", "scores": {"Set5 x2": [30.0, None]}}},
    }
    assert parse_paper_values(good, "f.yaml").rows["A"].scores == {("Set5", 2): (30.0, None)}
    bad_cell = {**good, "rows": {"A": {"group": "g", "scores": {"Set5 2x": [30.0, None]}}}}
    with pytest.raises(PaperValuesError, match=r"f.yaml: rows.A.scores: 'Set5 2x' is not '<Dataset> x<scale>'"):
        parse_paper_values(bad_cell, "f.yaml")
    bad_value = {**good, "rows": {"A": {"group": "g", "scores": {"Set5 x2": ["30", None]}}}}
    with pytest.raises(PaperValuesError, match=r"rows.A.scores.Set5 x2: '30' is not a number"):
        parse_paper_values(bad_value, "f.yaml")
    with pytest.raises(PaperValuesError, match="group must be one of g"):
        parse_paper_values({**good, "rows": {"A": {"group": "h", "scores": {}}}}, "f.yaml")


def test_paper_costs_are_converted_to_ms_and_mb() -> None:
    train = [cost for cost in PAPER_VALUES.costs if cost.phase == "train"]
    assert [(c.method, c.ms, c.memory_mb) for c in train] == [
        ("PFT", 1410.0, 85400.0),
        ("SST-L+ (DF2K)", 672.0, 67700.0),
    ]
    assert train[0].stated == "1.41 s/iter, 85.4 GB"


# --- speed table and figures from a GPU sweep's rows (9.1) ---------------------------------------


def test_gpu_sweep_rows_give_the_expected_speedups_in_table_and_figure(built: Path) -> None:
    speed = pd.read_csv(built / "tables/speed.csv", dtype=str)
    for (phase, window), expected in EXPECTED_SPEEDUP.items():
        row = speed[(speed["phase"] == phase) & (speed["window"] == str(window))].iloc[0]
        text = expected if isinstance(expected, str) else f"{expected:.2f}x"
        assert row["speedup_rpb_over_rib"].split(" [")[0] == text, (phase, window)
    # Each side's three timed steps (0.98, 1 and 1.03 times its median) resampled on its own.
    infer = speed[(speed["phase"] == "infer") & (speed["window"] == "32")].iloc[0]["speedup_rpb_over_rib"]
    interval = unpaired_ratio([0.98 * 9, 9, 1.03 * 9], [0.98 * 8, 8, 1.03 * 8])
    assert infer == f"1.12x [{interval.low:.2f}, {interval.high:.2f}]" and interval.low > 1.0
    # An interval that holds 1 does not rank the two, and says so.
    close = {"speedup_rpb_over_rib": 1.02, "speedup_rpb_over_rib_low": 0.97, "speedup_rpb_over_rib_high": 1.08}
    assert speedup_text(close) == "1.02x [0.97, 1.08] (not resolved)"
    train32 = speed[(speed["phase"] == "train") & (speed["window"] == "32")].iloc[0]
    assert (train32["rpb_variant"], train32["rib_variant"]) == ("rpb-flex", "rib-flash")  # by bias, not label
    train64 = speed[(speed["phase"] == "train") & (speed["window"] == "64")].iloc[0]
    assert train64["rpb_variant"] == "rpb-flex" and float(train64["rpb_ms"]) == 100.0  # sdpa's OOM ignored
    train96 = speed[(speed["phase"] == "train") & (speed["window"] == "96")].iloc[0]
    assert train96["rpb_ms"] == "OOM" and float(train96["rib_ms"]) == 50.0
    infer32 = speed[(speed["phase"] == "infer") & (speed["window"] == "32")].iloc[0]
    assert infer32["rpb_variant"] == "rpb-sdpa"  # the faster RPB backend at that point
    markdown = (built / "tables/speed.md").read_text()
    assert "| train | 96 | 96 | 2 | fp32 | False | rpb-flex | OOM | OOM | rib-flash | 50.0 | 500.0 |" in markdown
    assert "3.33x" in markdown and "quoted, not measured here" in markdown and "Test GPU" in markdown


def test_speedup_bars_are_the_measured_ratios(results: Path) -> None:
    fig = speedup_figure(read_profile(results / "profile/profile.json"))
    heights = sorted(round(bar.get_height(), 3) for bar in fig.axes[0].patches)
    assert heights == sorted(round(v, 3) for v in EXPECTED_SPEEDUP.values() if not isinstance(v, str))
    assert [t.get_text() for t in fig.axes[0].texts if "OOM" in t.get_text()] == ["RPB OOM"]
    assert "RPB time / RIB time" in fig.axes[0].get_ylabel()


def test_latency_figure_has_one_line_per_bias_and_marks_oom(results: Path) -> None:
    fig = latency_figure(read_profile(results / "profile/profile.json"))
    train_axis = fig.axes[0]
    assert train_axis.get_yscale() == "log" and "ms" in train_axis.get_ylabel()
    labels = [t.get_text() for t in train_axis.get_legend().get_texts()]
    assert labels == ["RPB (flex)", "RIB (flash)", "no-bias (flash)", "did not run (OOM, ...)"]
    rpb_line = train_axis.get_lines()[0]
    assert list(rpb_line.get_xdata()) == [32, 64] and list(rpb_line.get_ydata()) == [40.0, 100.0]
    crosses = [c for c in train_axis.collections if len(c.get_offsets())]
    assert sum(len(c.get_offsets()) for c in crosses) == 1  # RPB at window 96


def test_memory_axis_is_linear_when_a_point_grew_no_memory(tmp_path: Path) -> None:
    results = make_results(tmp_path, device="cpu")
    path = results / "profile/profile.json"
    document = json.loads(path.read_text())
    for row in document["rows"]:
        if row["bias"] == "none" and row["status"] == "ok":
            row["peak_mem_mb"] = 0.0
    path.write_text(json.dumps(document))
    fig = memory_figure(read_profile(path))
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "linear"]
    assert fig.axes[0].get_ylabel() == "peak memory (MB)"


# --- teaser figure (12.3) ------------------------------------------------------------------------


def test_teaser_uses_the_papers_settings_when_the_sweep_has_them(results: Path) -> None:
    profile = read_profile(results / "profile/profile.json")
    picked, how = teaser_points(profile, "train")
    assert how == "at the paper's settings"
    assert (picked["rpb"]["variant"], picked["rpb"]["window"], picked["rpb"]["ms"]) == ("rpb-flex", 32, 40.0)
    assert (picked["rib"]["variant"], picked["rib"]["window"], picked["rib"]["ms"]) == ("rib-flash", 96, 50.0)
    fig = teaser_figure(read_evals(results), read_runs(results), profile)
    psnr_axis, train_time = fig.axes[0], fig.axes[1]
    # Measured bars (s/iter) then the paper's, hatched.
    heights = [bar.get_height() for bar in train_time.patches]
    assert heights == pytest.approx([0.040, 0.050, 1.41, 0.672])
    assert [bool(bar.get_hatch()) for bar in train_time.patches] == [False, False, True, True]
    labels = [t.get_text() for t in psnr_axis.get_legend().get_texts()]
    assert "paper: SST-L+ (DF2K) (Urban100)" in labels and "tiny-rib (mini_test)" in labels
    paper_line = next(line for line in psnr_axis.get_lines() if line.get_label() == "paper: SST-L+ (DF2K) (Urban100)")
    assert list(paper_line.get_ydata()) == [35.63, 31.53, 29.06] and paper_line.get_linestyle() == "--"
    assert "Measured here: tiny model(s), cuda times" in fig._suptitle.get_text()


def test_teaser_of_a_cpu_run_says_so(tmp_path: Path) -> None:
    cpu = {key: ms for key, ms in GPU_PROFILE.items() if key[2] < 96}
    results = make_results(tmp_path, profile=cpu, device="cpu")
    profile = read_profile(results / "profile/profile.json")
    picked, how = teaser_points(profile, "infer")
    assert how == "at the largest window both ran (window 64, patch 64)"
    assert (picked["rpb"]["ms"], picked["rib"]["ms"]) == (90.0, 30.0)
    title = teaser_figure(read_evals(results), read_runs(results), profile)._suptitle.get_text()
    assert title.startswith("What this CPU run measured: tiny model(s), cpu times")
    assert "PSNR on mini_test" in title  # most evaluations; ties: the table's column order


# --- targets, training table, lock warning -------------------------------------------------------


def test_targets_section_passes_and_fails_with_measured_values(built: Path, results: Path) -> None:
    report = (built / "REPORT.md").read_text()
    assert "## Targets" in report
    # Every step of each run logged the same time and every image differs by the same amount: the intervals
    # collapse to the point values.
    assert (
        "| PASS | tiny x2: RIB training step >= 2x faster than RPB at the preset's 32x32 window | "
        "2.50x [2.50, 2.50] (RPB / RIB median step) |"
    ) in report
    assert (
        "| PASS | tiny x2 mini_test: RIB PSNR at most 0.1 dB below RPB | RIB - RPB = +0.107 dB [+0.107, +0.107] |"
    ) in report
    assert "| PASS | tiny x2 Set5: RPB above bicubic by more than 0.1 dB | +0.451 dB [+0.451, +0.451] |" in report
    log_path = results / "train/tiny-rib-x2/train_log.csv"
    log = pd.read_csv(log_path)
    # RIB's steps 0.28-0.32 s against RPB's 0.5 s: every resampled ratio lies below 2.
    log["step_time_s"] = [0.3, 0.32, 0.28, 0.3]
    log.to_csv(log_path, index=False)
    found = targets(read_evals(results), read_runs(results))
    assert (found[0].result, found[0].interval.high < 2.0) == ("FAIL", True)
    assert "(6 PASS, 1 FAIL)" in targets_markdown(found)
    # 0.2-0.3 s: ratios from 1.67 to 2.5, the interval straddles the target.
    log["step_time_s"] = [0.2, 0.3, 0.22, 0.28]
    log.to_csv(log_path, index=False)
    found = targets(read_evals(results), read_runs(results))
    assert found[0].result == "NOT RESOLVED" and found[0].interval.low < 2.0 < found[0].interval.high
    # A PSNR difference whose interval straddles the threshold is not resolved either way.
    rib_path = results / "eval/tiny-rib/mini_test-x2.json"
    rib = json.loads(rib_path.read_text())
    rpb = json.loads((results / "eval/tiny-rpb/mini_test-x2.json").read_text())
    spread = [-0.4, 0.2, 0.0, -0.1, 0.1, -0.3, 0.2, 0.0]
    rib["images"] = [
        {**image, "psnr": other["psnr"] - 0.1 + spread[i % len(spread)]}
        for i, (image, other) in enumerate(zip(rib["images"], rpb["images"]))
    ]
    write_json(rib_path, rib)
    drop = next(t for t in targets(read_evals(results), read_runs(results)) if "mini_test: RIB PSNR" in t.check)
    assert drop.result == "NOT RESOLVED" and drop.interval.low < -0.1 < drop.interval.high


def test_training_table_reads_summary_and_last_validation(built: Path) -> None:
    training = pd.read_csv(built / "tables/training.csv")
    rib = training[training["run"] == "tiny-rib-x2"].iloc[0]
    assert rib["median_step_time_s"] == 0.2 and rib["final_val_iteration"] == 150
    assert rib["final_val_psnr"] == 32.0 and rib["precision"] == "fp32"


def test_lock_mismatch_shows_a_warning_line(built: Path, results: Path) -> None:
    assert "Warning" not in (built / "REPORT.md").read_text()
    path = results / "eval/tiny-rib/Set5-x2.json"
    write_json(path, {**json.loads(path.read_text()), "provenance": run_record(matches=False)})
    summary_path = results / "train/tiny-rpb-x2/summary.json"
    write_json(summary_path, {**json.loads(summary_path.read_text()), "provenance": run_record(matches=False)})
    unknown = results / "eval/bicubic/Set5-x2.json"
    write_json(unknown, {**json.loads(unknown.read_text()), "provenance": {"lock": {"error": "OSError: x"}}})
    sweep = results / "profile/sweep.json"  # what `suite profile sweep` writes beside profile.json
    write_json(
        sweep,
        {
            "config": {},
            "invocations": [{**run_record(), "command": "x"}, {**run_record(matches=False), "command": "y"}],
        },
    )
    report = (synthetic_report(results) / "REPORT.md").read_text()
    assert "## Environment warnings" in report
    for file in (path, summary_path, sweep):
        assert (
            f"> **Warning:** `{file}` was produced in an environment that did not match the lock "
            f"`requirements/lock.txt` (torch 2.14.1 installed, 2.15.0 locked)."
        ) in report
    assert f"> **Warning:** `{unknown}`: its environment could not be checked against the lock (OSError: x)." in report
    assert report.count("> **Warning:**") == 4  # the sweep's first invocation matched


# --- outputs, determinism, figures without pyplot ------------------------------------------------


def test_every_output_is_written_and_report_links_them(built: Path) -> None:
    for name in ("teaser", "speedup", "latency", "memory", "val_psnr", "crop"):
        assert (built / f"figures/{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (built / f"figures/{name}.pdf").read_bytes()[:5] == b"%PDF-"
    report = (built / "REPORT.md").read_text()
    assert report.startswith("# Benchmark report: synthetic\n")
    for link in (
        "figures/teaser.png",
        "figures/teaser.pdf",
        "figures/speedup.png",
        "figures/crop.png",
        "train/tiny-rib-x2/train_log.csv",
        "profile/profile.json",
        "eval/tiny-rpb/Set5-x2.json",
    ):
        assert link in report
    assert not list(built.rglob("*.tmp")), "atomic writes left temp files behind"


def test_tables_are_identical_when_written_twice(built: Path, tmp_path: Path) -> None:
    first, second = built, synthetic_report(built, tmp_path / "again")
    for table in ("psnr_ssim.csv", "psnr_ssim.md", "psnr_ssim.tex", "speed.csv", "training.csv", "targets.md"):
        assert (first / "tables" / table).read_bytes() == (second / "tables" / table).read_bytes()


def test_report_never_touches_pyplot(results: Path) -> None:
    """Figures go through matplotlib's object API: building the whole report imports no pyplot."""
    code = (
        "import sys; from suite.report import build_report; "
        f"build_report({str(results)!r}, {str(results)!r}, 'x'); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_crop_picks_the_window_where_bicubic_lost_most() -> None:
    hr = np.zeros((64, 80, 3), dtype=np.uint8)
    bicubic = hr.copy()
    bicubic[24:40, 40:56] = 200
    assert most_lost_detail(hr, bicubic, 16) == (40, 24)


# --- bad input -----------------------------------------------------------------------------------


def test_missing_train_log_column_names_the_file(results: Path) -> None:
    path = results / "train/tiny-rib-x2/train_log.csv"
    pd.read_csv(path).drop(columns=["val_psnr"]).to_csv(path, index=False)
    with pytest.raises(ReportInputError) as error:
        synthetic_report(results)
    assert str(path) in str(error.value) and "val_psnr" in str(error.value)


def test_missing_summary_field_names_the_file(results: Path) -> None:
    path = results / "train/tiny-rpb-x2/summary.json"
    write_json(path, {"wall_time_s": 1.0})
    with pytest.raises(ReportInputError, match="iterations, median_step_time_s") as error:
        synthetic_report(results)
    assert str(path) in str(error.value) and "SUMMARY_FIELDS" in str(error.value)


def test_profile_row_missing_a_column_names_the_file(results: Path) -> None:
    path = results / "profile/profile.json"
    document = json.loads(path.read_text())
    del document["rows"][3]["window"]
    path.write_text(json.dumps(document))
    with pytest.raises(ReportInputError, match=r"rows\[3\] .* lacks window") as error:
        synthetic_report(results)
    assert str(path) in str(error.value)


def test_scale_mismatch_in_eval_names_the_file(results: Path) -> None:
    path = results / "eval/tiny-rib/Set5-x2.json"
    write_json(path, {**json.loads(path.read_text()), "scale": 4})
    with pytest.raises(ReportInputError, match="scale 4") as error:
        synthetic_report(results)
    assert str(path) in str(error.value)


def test_cli_reports_a_bad_file_in_one_line(results: Path, capsys: pytest.CaptureFixture) -> None:
    (results / "profile/profile.json").write_text("{not json")
    assert main(["report", "--results", str(results), "--out", str(results), "--title", "t"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("suite report: error: ") and error.count("\n") == 1
    assert "profile.json" in error and "not valid JSON" in error


def test_cli_refuses_half_a_crop_request_and_the_old_config_flag(results: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--results", str(results), "--out", str(results), "--crop-dataset", "mini_test"]) == 2
    error = capsys.readouterr().err
    assert "--crop-scale" in error and "--crop-hr" in error
    assert not (results / "REPORT.md").exists()
    with pytest.raises(SystemExit):
        main(["report", "--results", str(results), "--out", str(results), "--config", "default"])


def test_latex_escape() -> None:
    assert latex_escape("base+ 50% a_b & {c}") == r"base+ 50\% a\_b \& \{c\}"
