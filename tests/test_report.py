"""`suite report` on synthetic result files: cells, OOM, the paper's rows, errors naming the file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from suite.cli import main
from suite.data.io import write_png
from suite.report import CropRequest, ReportInputError, build_report, tables
from suite.report.crop import most_lost_detail
from suite.report.figures import latency_figure, memory_figure, speedup_figure
from suite.report.paper import PAPER_ROWS
from suite.report.readers import read_profile
from suite.report.tables import latex_escape

# Synthetic measurements: distinct values so a number in the wrong cell shows.
EVALS = {
    ("bicubic", "mini_test", 2): (30.1234, 0.8765),
    ("tiny-rpb", "mini_test", 2): (31.5012, 0.9012),
    ("tiny-rib", "mini_test", 2): (31.6078, 0.9123),
    ("bicubic", "Set5", 2): (33.6601, 0.9299),
    ("tiny-rpb", "Set5", 2): (34.1111, 0.9333),
    ("tiny-rib", "Set5", 2): (34.2222, 0.9344),
}
IMAGE_NAMES = ("img0", "img1")
# (bias, phase, window) -> ms per iteration, or None for out of memory
PROFILE = {
    ("rpb", "train", 8): 40.0, ("rib", "train", 8): 16.0, ("none", "train", 8): 12.0,
    ("rpb", "train", 32): None, ("rib", "train", 32): 50.0, ("none", "train", 32): 30.0,
    ("rpb", "infer", 8): 10.0, ("rib", "infer", 8): 8.0, ("none", "infer", 8): 5.0,
    ("rpb", "infer", 32): 90.0, ("rib", "infer", 32): 30.0, ("none", "infer", 32): 20.0,
}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _picture(seed: int, height: int = 64, width: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_results(root: Path) -> Path:
    """A results folder as the workflow lays it out, with known numbers."""
    results = root / "results" / "synthetic"
    for (method, dataset, scale), (psnr, ssim) in EVALS.items():
        images = [{"name": name, "psnr": psnr + i, "ssim": ssim} for i, name in enumerate(IMAGE_NAMES)]
        _write_json(results / "eval" / method / f"{dataset}-x{scale}.json", {
            "dataset": dataset, "scale": scale, "method": method, "n_images": len(images), "psnr": psnr,
            "ssim": ssim, "images": images, "metric_options": {"test_y_channel": True, "color_space": "ycbcr"},
            "provenance": {"git_commit": "abc1234", "git_dirty": False, "device": "cpu", "torch": "2.x"},
        })
    for seed, bias in enumerate(("rpb", "rib")):
        run = results / "train" / f"tiny-{bias}-x2"
        _write_json(run / "summary.json", {"iterations": 300, "median_step_time_s": 0.5 / (seed + 1),
                                           "wall_time_s": 200.0, "params": 75000, "device": "cpu",
                                           "dtype": "float32", "seed": 0, "torch_version": "2.x"})
        pd.DataFrame({"iteration": [10, 50, 100, 150], "loss": [0.1, 0.09, 0.08, 0.07],
                      "lr": [1e-3] * 4, "step_time_s": [0.5] * 4,
                      "val_psnr": [float("nan"), 30.0 + seed, float("nan"), 31.0 + seed],
                      "val_ssim": [float("nan"), 0.88, float("nan"), 0.9]}).to_csv(run / "train_log.csv", index=False)
    rows = [{"bias": bias, "phase": phase, "window": window, "patch": 64, "batch": 2,
             "ms_median": "" if ms is None else ms, "peak_mem_mb": "" if ms is None else 10 * ms,
             "status": "oom" if ms is None else "ok", "device": "cpu", "dtype": "float32"}
            for (bias, phase, window), ms in PROFILE.items()]
    (results / "profile").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(results / "profile" / "profile.csv", index=False)
    hr_dir = root / "data" / "mini_test" / "HR"
    for i, name in enumerate(IMAGE_NAMES):
        hr = _picture(i, 65, 49)  # one pixel more than the SR images: the report modcrops
        write_png(hr_dir / f"{name}.png", hr)
        for method in ("bicubic", "tiny-rpb", "tiny-rib"):
            write_png(results / "images" / method / f"mini_test-x2/{name}.png", hr[:64, :48] // 2)
    return results


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One report over the synthetic results, shared by the tests that only read it."""
    return _report(make_results(tmp_path_factory.mktemp("built")))


def _report(results: Path, out: Path | None = None) -> Path:
    out = out or results
    crop = CropRequest("mini_test", 2, results.parent.parent / "data" / "mini_test" / "HR", size=32)
    build_report(results, out, "synthetic", "mini_test", crop)
    return out


def _row(frame: pd.DataFrame, source: str, method: str, bias: str) -> pd.Series:
    match = frame[(frame["source"] == source) & (frame["method"] == method) & (frame["bias"].fillna("") == bias)]
    assert len(match) == 1, f"expected one row {source}/{method}/{bias}, got {len(match)}"
    return match.iloc[0]


def test_psnr_values_land_in_their_cells(built: Path) -> None:
    out = built
    frame = pd.read_csv(out / "tables/psnr_ssim.csv")
    for (method, dataset, scale), (psnr, ssim) in EVALS.items():
        preset, bias = ("bicubic", "") if method == "bicubic" else method.split("-")
        row = _row(frame, "measured", preset, bias)
        assert row[f"{dataset}_x{scale}_psnr"] == psnr
        assert row[f"{dataset}_x{scale}_ssim"] == ssim
    # Measured rows have nothing in the paper-only columns.
    assert math.isnan(_row(frame, "measured", "tiny", "rib")["Urban100_x4_psnr"])
    markdown = (out / "tables/psnr_ssim.md").read_text()
    rib_line = next(line for line in markdown.splitlines() if line.startswith("| measured | tiny | rib |"))
    assert "31.61 / 0.9123" in rib_line and "34.22 / 0.9344" in rib_line


def test_paper_rows_are_labelled_and_carry_the_papers_numbers(built: Path) -> None:
    out = built
    frame = pd.read_csv(out / "tables/psnr_ssim.csv")
    paper = frame[frame["source"] == "paper"]
    assert len(paper) == len(PAPER_ROWS)
    assert set(frame["source"]) == {"measured", "paper"}
    large = _row(frame, "paper", "RIB large", "rib")
    assert large["Set5_x2_psnr"] == 38.77 and large["Set5_x2_ssim"] == 0.9636
    assert large["Manga109_x4_psnr"] == 33.40
    bicubic_paper = _row(frame, "paper", "bicubic", "")
    assert bicubic_paper["Set5_x2_psnr"] == 33.66  # same column as the measured Set5 x2, another row
    assert _row(frame, "measured", "bicubic", "")["Set5_x2_psnr"] == 33.6601
    markdown = (out / "tables/psnr_ssim.md").read_text()
    assert "are the paper's figures" in markdown
    assert "| paper | RIB large+ | rib | DF2K; paper's teaser |" in markdown
    latex = (out / "tables/psnr_ssim.tex").read_text()
    assert "mini\\_test $\\times$2" in latex and "\\emph{paper}" in latex


def test_footnote_gives_budget_device_and_commit(built: Path) -> None:
    markdown = (built / "tables/psnr_ssim.md").read_text()
    assert "tiny-rpb-x2: 300 iterations, 200 s wall" in markdown
    assert "Device: cpu" in markdown and "Commit: abc1234." in markdown


def test_speed_table_shows_oom_and_measured_speedups(built: Path) -> None:
    out = built
    speed = pd.read_csv(out / "tables/speed.csv", dtype=str)
    train32 = speed[(speed["phase"] == "train") & (speed["window"] == "32")].iloc[0]
    assert train32["rpb_ms"] == "OOM" and train32["rpb_peak_mb"] == "OOM"
    assert train32["rib_speedup"] == "RPB OOM" and float(train32["rib_ms"]) == 50.0
    infer32 = speed[(speed["phase"] == "infer") & (speed["window"] == "32")].iloc[0]
    assert float(infer32["rib_speedup"]) == 90.0 / 30.0
    assert float(infer32["none_speedup"]) == 90.0 / 20.0
    assert list(speed["phase"]) == ["train", "train", "infer", "infer"]
    markdown = (out / "tables/speed.md").read_text()
    assert "| train | 32 | 64 | 2 | OOM | OOM |" in markdown
    assert "3.00x" in markdown and "quoted, not measured here" in markdown


def test_speedup_is_over_the_fastest_rpb_backend(results: Path) -> None:
    path = results / "profile/profile.csv"
    rows = pd.read_csv(path)
    rows["variant"] = rows["bias"]
    flex = rows[rows["bias"] == "rpb"].assign(variant="rpb-flex", ms_median=lambda f: f["ms_median"] / 2)
    rows.loc[rows["bias"] == "rpb", "variant"] = "rpb-sdpa"
    pd.concat([rows, flex]).to_csv(path, index=False)
    speed = tables.speed_table(read_profile(path))
    infer32 = speed[(speed["phase"] == "infer") & (speed["window"] == 32)].iloc[0]
    assert infer32["rpb_fastest"] == "rpb-flex"
    assert infer32["rib_speedup"] == 45.0 / 30.0 and infer32["rpb-sdpa_ms"] == 90.0
    assert "RPB (flex) ms/iter" in tables.speed_markdown(speed, read_profile(path))
    bars = sorted(round(bar.get_height(), 12) for bar in speedup_figure(read_profile(path)).axes[0].patches)
    assert bars == sorted(round(v, 12) for v in (20 / 16, 5 / 8, 45 / 30))


def test_training_table_reads_summary_and_last_validation(built: Path) -> None:
    training = pd.read_csv(built / "tables/training.csv")
    rib = training[training["run"] == "tiny-rib-x2"].iloc[0]
    assert rib["median_step_time_s"] == 0.25 and rib["final_val_iteration"] == 150
    assert rib["final_val_psnr"] == 32.0


def test_every_output_is_written_and_report_links_them(built: Path) -> None:
    out = built
    for name in ("speedup", "latency", "memory", "val_psnr", "crop"):
        assert (out / f"figures/{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"figures/{name}.pdf").read_bytes()[:5] == b"%PDF-"
    report = (out / "REPORT.md").read_text()
    for link in ("figures/speedup.png", "figures/crop.png", "train/tiny-rib-x2/train_log.csv",
                 "profile/profile.csv", "eval/tiny-rpb/Set5-x2.json"):
        assert link in report
    assert not list(out.rglob("*.tmp")), "atomic writes left temp files behind"
    assert "Val psnr" not in report and "### Validation PSNR during training" in report


def test_tables_are_identical_when_written_twice(built: Path, tmp_path: Path) -> None:
    first, second = built, _report(built, tmp_path / "again")
    for table in ("psnr_ssim.csv", "psnr_ssim.md", "psnr_ssim.tex", "speed.csv", "training.csv"):
        assert (first / "tables" / table).read_bytes() == (second / "tables" / table).read_bytes()


def test_speedup_bars_are_the_measured_ratios(results: Path) -> None:
    profile = read_profile(results / "profile/profile.csv")
    fig = speedup_figure(profile)
    heights = sorted(round(bar.get_height(), 12) for bar in fig.axes[0].patches)
    # train w8: 40/16; train w32: RPB OOM (no bar); infer w8: 10/8; infer w32: 90/30
    assert heights == sorted(round(v, 12) for v in (40 / 16, 10 / 8, 90 / 30))
    assert any(text.get_text() == "RPB OOM" for text in fig.axes[0].texts)
    assert "RPB time / RIB time" in fig.axes[0].get_ylabel()


def test_latency_figure_marks_oom_and_labels_axes(results: Path) -> None:
    fig = latency_figure(read_profile(results / "profile/profile.csv"))
    train_axis = fig.axes[0]
    assert train_axis.get_yscale() == "log" and "ms" in train_axis.get_ylabel()
    assert "window size" in train_axis.get_xlabel()
    oom_markers = [c for c in train_axis.collections if len(c.get_offsets())]
    assert sum(len(c.get_offsets()) for c in oom_markers) == 1  # RPB at window 32
    assert "out of memory" in [t.get_text() for t in train_axis.get_legend().get_texts()]


def test_crop_picks_the_window_where_bicubic_lost_most() -> None:
    hr = np.zeros((64, 80, 3), dtype=np.uint8)
    bicubic = hr.copy()
    bicubic[24:40, 40:56] = 200
    assert most_lost_detail(hr, bicubic, 16) == (40, 24)


@pytest.mark.parametrize("file, column", [
    ("profile/profile.csv", "window"),
    ("train/tiny-rib-x2/train_log.csv", "val_psnr"),
])
def test_missing_required_column_names_the_file(results: Path, file: str, column: str) -> None:
    path = results / file
    frame = pd.read_csv(path)
    frame.drop(columns=[column]).to_csv(path, index=False)
    with pytest.raises(ReportInputError) as error:
        _report(results)
    assert str(path) in str(error.value) and column in str(error.value)


def test_missing_summary_key_names_the_file(results: Path) -> None:
    path = results / "train/tiny-rpb-x2/summary.json"
    _write_json(path, {"wall_time_s": 1.0})
    with pytest.raises(ReportInputError, match="iterations") as error:
        _report(results)
    assert str(path) in str(error.value)


def test_scale_mismatch_in_eval_names_the_file(results: Path) -> None:
    path = results / "eval/tiny-rib/Set5-x2.json"
    data = json.loads(path.read_text())
    _write_json(path, {**data, "scale": 4})
    with pytest.raises(ReportInputError, match="scale 4") as error:
        _report(results)
    assert str(path) in str(error.value)


def test_profile_column_spellings_are_accepted(results: Path) -> None:
    path = results / "profile/profile.csv"
    frame = pd.read_csv(path).rename(columns={"ms_median": "Median ms", "bias": "variant", "peak_mem_mb": "peak_bytes"})
    frame.to_csv(path, index=False)
    profile = read_profile(path)
    assert profile.memory_unit == "MiB"
    point = profile.rows[(profile.rows["bias"] == "rib") & (profile.rows["phase"] == "train")
                         & (profile.rows["window"] == 8)].iloc[0]
    assert point["ms"] == 16.0 and point["peak_mem"] == 160.0 / 2**20


def test_cli_reports_a_bad_file_in_one_line(results: Path, capsys: pytest.CaptureFixture) -> None:
    (results / "profile/profile.csv").write_text("bias,phase\nrpb,train\n")
    assert main(["report", "--results", str(results), "--out", str(results)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("suite report: error: ") and error.count("\n") == 1
    assert "profile.csv" in error and "window" in error


def test_cli_refuses_half_a_crop_request(results: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--results", str(results), "--out", str(results), "--crop-dataset", "mini_test"]) == 2
    error = capsys.readouterr().err
    assert "--crop-scale" in error and "--crop-hr" in error
    assert not (results / "REPORT.md").exists()


def test_latex_escape() -> None:
    assert latex_escape("base+ 50% a_b & {c}") == r"base+ 50\% a\_b \& \{c\}"


def test_memory_axis_is_linear_when_a_point_grew_no_memory(results: Path) -> None:
    path = results / "profile/profile.csv"
    rows = pd.read_csv(path)
    rows.loc[rows["bias"] == "none", "peak_mem_mb"] = 0.0
    rows.to_csv(path, index=False)
    fig = memory_figure(read_profile(path))
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "linear"]
    assert fig.axes[0].get_ylabel() == "peak memory (MB)"
