"""The report's "Positional biases compared" section: every trained model side by side (registry properties,
params, PSNR and its difference to no bias, step time and its ratio to RIB, inference time, window
extrapolation), on synthetic result files in the suite's own formats; present only with two biases or more."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from conftest import EVALS, IMAGE_NAMES, STEP_S, add_run, make_results, synthetic_report, write_analysis
from suite.cli import main
from suite.models.biases import BIASES, REGISTRY
from suite.report import bias_comparison
from suite.report.bias_comparison import biases_figure, comparison_labels
from suite.report.plotting import BIAS_COLORS
from suite.report.readers import RUN_NAME, read_analysis, read_evals, read_runs
from suite.stats import Interval, paired_bootstrap

# Runs added beside make_results' tiny-rpb and tiny-rib: model -> (PSNR on mini_test x2, median step s, params).
# Distinct values so a number in the wrong cell shows; tiny-rib-r4 is a rank-ablation model (its own row).
ADDED = {
    "tiny-none": (31.4004, 0.15, 60000),
    "tiny-flashbias": (31.4507, 0.25, 68000),
    "tiny-rib-siren": (31.5503, 0.21, 71000),
    "tiny-rib-r4": (31.5809, 0.19, 72000),
}
PARAMS = 75000  # make_results' runs
REFUSAL = (
    "window sizes {new} {new} (trained 32 32): {article} {label} layer trained at window 32 cannot run at "
    "window {new}: its factors hold one row per token of a 32x32 window; only a bias not tied to its window "
    "can change window (rib, none, cpe, rope, rib-siren)"
)
# suite analyze windows tables: run -> {factor: (status, psnr_change, ms_median)}; no table for tiny-rib-siren.
WINDOWS = {
    "tiny-rpb-x2": {0.5: ("refused", None, None), 1.0: ("ok", 0.0, 120.0), 2.0: ("refused", None, None)},
    "tiny-rib-x2": {0.5: ("ok", -0.0123, 30.0), 1.0: ("ok", 0.0, 60.0), 2.0: ("ok", 0.0042, 250.0)},
    "tiny-none-x2": {0.5: ("ok", -0.001, 25.0), 1.0: ("ok", 0.0, 50.0), 2.0: ("ok", 0.0005, 200.0)},
    "tiny-flashbias-x2": {0.5: ("refused", None, None), 1.0: ("ok", 0.0, 55.0), 2.0: ("refused", None, None)},
    "tiny-rib-r4-x2": {0.5: ("ok", -0.02, 28.0), 1.0: ("ok", 0.0, 58.0), 2.0: ("ok", 0.01, 240.0)},
}


def refusal(bias: str, factor: float) -> str:
    label = REGISTRY[bias].label
    return REFUSAL.format(new=int(32 * factor), label=label, article="an" if label[0] in "AEIOR" else "a")


def add_windows(results: Path) -> None:
    for run, factors in WINDOWS.items():
        bias = RUN_NAME.match(run)["bias"]
        write_analysis(
            results,
            "windows",
            run,
            [
                {
                    "factor": factor,
                    "window_sizes": f"{int(32 * factor)} {int(32 * factor)}",
                    "status": status,
                    "reason": refusal(bias, factor) if status == "refused" else "",
                    "psnr": None if change is None else 31.0 + change,
                    "ssim": None if change is None else 0.9,
                    "psnr_change": change,
                    "ms_median": ms,
                    "ms_iqr": None if ms is None else 1.0,
                    "time_ratio": None if ms is None else ms / factors[1.0][2],
                }
                for factor, (status, change, ms) in factors.items()
            ],
        )


# Per-image PSNR of the no-bias model around its mean (make_results gives the others psnr + 0 and psnr + 1).
NONE_OFFSETS = (-0.2, 0.2)


def per_image(model: str, psnr: float) -> list[dict]:
    offsets = NONE_OFFSETS if model == "tiny-none" else (0.0, 1.0)
    return [{"name": name, "psnr": psnr + offset, "ssim": 0.9} for name, offset in zip(IMAGE_NAMES, offsets)]


def comparison_results(root: Path) -> Path:
    results = make_results(root)
    for model, (psnr, step, params) in ADDED.items():
        add_run(results, model, psnr, step, params, images=per_image(model, psnr))
    add_windows(results)
    return results


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One report over the comparison's synthetic results, shared by the tests that only read it."""
    return synthetic_report(comparison_results(tmp_path_factory.mktemp("compared")))


def _rows(out: Path) -> dict[str, dict]:
    frame = pd.read_csv(out / "tables/biases.csv", keep_default_na=False, na_values=[""])
    return {record["run"]: record for record in frame.to_dict("records")}


def test_one_row_per_trained_model_in_registry_order(compared: Path) -> None:
    frame = pd.read_csv(compared / "tables/biases.csv")
    assert list(frame["run"]) == [
        "tiny-rpb-x2",
        "tiny-rib-x2",
        "tiny-rib-r4-x2",
        "tiny-none-x2",
        "tiny-flashbias-x2",
        "tiny-rib-siren-x2",
    ]
    assert [BIASES.index(bias) for bias in frame["bias"]] == sorted(BIASES.index(bias) for bias in frame["bias"])
    assert list(frame["label"]) == [REGISTRY[bias].label for bias in frame["bias"]]
    for record in frame.to_dict("records"):
        spec = REGISTRY[record["bias"]]
        assert (record["flash"], record["fixed_window"]) == (spec.flash, spec.fixed_window), record["run"]
    assert set(frame["dataset"]) == {"mini_test"}  # the test set most trained models were evaluated on


def test_cells_come_from_the_summaries_evals_and_window_tables(compared: Path) -> None:
    rows = _rows(compared)
    rib, rpb, none = rows["tiny-rib-x2"], rows["tiny-rpb-x2"], rows["tiny-none-x2"]
    # PSNR minus the no-bias model's: exactly the difference of the two eval PSNRs.
    rib_psnr = EVALS[("tiny-rib", "mini_test", 2)][0]
    assert rib["psnr"] == rib_psnr and rib["psnr_vs_none"] == rib_psnr - ADDED["tiny-none"][0]
    assert rows["tiny-flashbias-x2"]["psnr_vs_none"] == ADDED["tiny-flashbias"][0] - ADDED["tiny-none"][0]
    assert math.isnan(none["psnr_vs_none"])  # no difference with itself
    # Step time over RIB's (the plain RIB run, not the rank-ablation one), params from the summaries.
    assert rpb["step_time_vs_rib"] == STEP_S["rpb"] / STEP_S["rib"] and rib["step_time_vs_rib"] == 1.0
    assert rows["tiny-rib-r4-x2"]["step_time_vs_rib"] == ADDED["tiny-rib-r4"][1] / STEP_S["rib"]
    assert (rpb["params"], none["params"], rows["tiny-rib-r4-x2"]["rank"]) == (PARAMS, 60000, 4)
    assert math.isnan(rib["rank"])
    # Inference ms: the window table's row at factor 1; a model without a window table has none.
    assert (rpb["infer_ms"], rib["infer_ms"]) == (120.0, 60.0)
    siren = rows["tiny-rib-siren-x2"]
    assert math.isnan(siren["infer_ms"]) and math.isnan(siren["psnr_change_x2"]) and pd.isna(siren["status_x2"])
    # Window extrapolation: the change where it ran, the refusal's first clause where the bias is tied to its window.
    assert (rib["psnr_change_x0.5"], rib["psnr_change_x2"], rib["status_x2"]) == (-0.0123, 0.0042, "ok")
    for run, label in (("tiny-rpb-x2", "an RPB"), ("tiny-flashbias-x2", "a FlashBias")):
        assert rows[run]["status_x2"] == "refused" and math.isnan(rows[run]["psnr_change_x2"])
        assert rows[run]["reason_x2"] == f"{label} layer trained at window 32 cannot run at window 64"


def expected_interval(model_psnr: float, none_psnr: float) -> Interval:
    """The interval the report must give a make_results model (per-image psnr + 0, psnr + 1) against no bias."""
    ours = {name: model_psnr + offset for name, offset in zip(IMAGE_NAMES, (0.0, 1.0))}
    none = {name: none_psnr + offset for name, offset in zip(IMAGE_NAMES, NONE_OFFSETS)}
    return paired_bootstrap([ours[name] - none[name] for name in sorted(ours)])


def test_psnr_differences_carry_their_interval_over_test_images(compared: Path) -> None:
    rows = _rows(compared)
    none_psnr = ADDED["tiny-none"][0]
    for run, psnr in (
        ("tiny-rpb-x2", EVALS[("tiny-rpb", "mini_test", 2)][0]),
        ("tiny-rib-siren-x2", ADDED["tiny-rib-siren"][0]),
    ):
        interval = expected_interval(psnr, none_psnr)
        assert (rows[run]["psnr_vs_none_low"], rows[run]["psnr_vs_none_high"]) == (interval.low, interval.high)
        assert rows[run]["psnr_vs_none_images"] == 2
        assert interval.low <= interval.mean <= interval.high
    assert math.isnan(rows["tiny-none-x2"]["psnr_vs_none_low"])  # no interval of the reference with itself


def test_markdown_rows(compared: Path) -> None:
    markdown = (compared / "tables/biases.md").read_text()
    rpb = expected_interval(EVALS[("tiny-rpb", "mini_test", 2)][0], ADDED["tiny-none"][0])
    verdict = "resolved" if rpb.resolved else "not resolved"
    assert (
        f"| tiny RPB | x2 | no | yes | 75,000 | 31.5012 | 0.9012 | +0.1008 [{rpb.low:+.4f}, {rpb.high:+.4f}] | "
        f"{verdict} | 0.5000 | 2.50 [2.50, 2.50] | 120.0 | "
        "refused (an RPB layer trained at window 32 cannot run at window 16) | "
        "refused (an RPB layer trained at window 32 cannot run at window 64) |"
    ) in markdown
    assert "| tiny RIB | x2 | yes | no | 75,000 | 31.6078 | 0.9123 | +0.2074 [" in markdown
    assert "| 0.2000 | 1.00 [1.00, 1.00] | 60.0 | -0.01230 | +0.00420 |" in markdown
    assert "| tiny RIB rank 4 | x2 | yes | no | 72,000 | 31.5809 |" in markdown
    assert "| tiny no-bias | x2 | yes | no | 60,000 | 31.4004 | 0.9000 | – | – | 0.1500 |" in markdown
    assert "| tiny RIB-SIREN | x2 | yes | no | 71,000 | 31.5503 | 0.9000 | +0.1499 [" in markdown
    assert "| 0.2100 | 1.05 [1.05, 1.05] | – | – | – |" in markdown
    assert "Window x1: " not in markdown and "Window x0.5: PSNR change" in markdown
    # What the numbers are, without a verdict.
    assert "single run (one seed)" in markdown and "cover the sampling of test images only" in markdown
    assert (
        "95% percentile-bootstrap interval of the mean paired difference" in markdown and "10,000 resamples" in markdown
    )
    assert "timed in its own `suite analyze windows` run" in markdown and "not interleaved" in markdown
    assert "mini_test" in markdown and "metric protocol `basicsr-y`" in markdown


def test_the_section_and_figure_reach_the_report(compared: Path) -> None:
    for ext, magic in (("png", b"\x89PNG\r\n\x1a\n"), ("pdf", b"%PDF-")):
        path = compared / f"figures/biases.{ext}"
        assert path.read_bytes()[: len(magic)] == magic and path.stat().st_size > 10_000
    report = (compared / "REPORT.md").read_text()
    assert report.count("\n## Positional biases compared\n") == 1  # the section; its figure is under Figures
    assert report.index("\n## Positional biases compared\n") < report.index("\n## Window extrapolation\n")
    assert "![Positional biases compared](figures/biases.png)" in report
    assert "| tiny FlashBias | x2 | yes | yes | 68,000 |" in report


def test_figure_draws_every_model_and_the_refusals(compared: Path) -> None:
    frame = bias_comparison.biases_table(
        read_evals(compared), read_runs(compared), read_analysis(compared, "windows"), "mini_test"
    )
    labels = comparison_labels(frame)
    assert labels == ["RPB", "RIB", "RIB rank 4", "no-bias", "FlashBias", "RIB-SIREN"]  # one preset and scale
    fig = biases_figure(frame)
    left, right = fig.axes
    points = [(collection.get_label(), tuple(collection.get_offsets()[0])) for collection in left.collections]
    assert len(points) == len(frame)
    assert dict(points)["RPB"] == (STEP_S["rpb"], EVALS[("tiny-rpb", "mini_test", 2)][0])
    assert {text.get_text() for text in left.texts} == set(labels)
    lines = {line.get_label(): line for line in right.get_lines() if not line.get_label().startswith("_")}
    assert sorted(lines) == sorted(["RPB", "RIB", "RIB rank 4", "no-bias", "FlashBias"])  # RIB-SIREN: no table
    assert list(lines["RIB"].get_xdata()) == [0.5, 1.0, 2.0] and list(lines["RPB"].get_xdata()) == [1.0]
    assert lines["FlashBias"].get_color() == BIAS_COLORS["flashbias"]
    crosses = [c for c in right.collections if len(c.get_offsets())]
    assert sorted(x for c in crosses for x, _ in c.get_offsets()) == [0.5, 0.5, 2.0, 2.0]  # RPB and FlashBias
    assert [t.get_text() for t in right.get_legend().get_texts()][-1] == "refused (tied to its window)"


def test_the_analysis_dataset_picks_the_test_set(tmp_path: Path) -> None:
    results = comparison_results(tmp_path)
    assert main(["report", "--results", str(results), "--out", str(results), "--analysis-dataset", "Set5"]) == 0
    rows = _rows(results)
    assert rows["tiny-rpb-x2"]["psnr"] == EVALS[("tiny-rpb", "Set5", 2)][0] and rows["tiny-rpb-x2"]["dataset"] == "Set5"
    assert math.isnan(rows["tiny-none-x2"]["psnr"]) and math.isnan(rows["tiny-rib-x2"]["psnr_vs_none"])
    assert "EMA weights on Set5 (the workflow's analysis dataset" in (results / "tables/biases.md").read_text()


def test_no_section_with_a_single_bias(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    for path in sorted((results / "train/tiny-rpb-x2").iterdir()):
        path.unlink()
    (results / "train/tiny-rpb-x2").rmdir()
    add_run(results, "tiny-rib-r4", 31.58, 0.19, 72000)  # a rank-ablation run is the same bias
    assert {run.bias for run in read_runs(results)} == {"rib"}
    out = synthetic_report(results)
    assert not (out / "tables/biases.csv").exists() and not (out / "figures/biases.png").exists()
    assert "Positional biases compared" not in (out / "REPORT.md").read_text()


def test_the_default_pair_gets_the_section(tmp_path: Path) -> None:
    """RPB and RIB alone (the default workflow) are two biases: the section is there, without a no-bias column
    value and without window tables."""
    out = synthetic_report(make_results(tmp_path))
    rows = _rows(out)
    assert list(rows) == ["tiny-rpb-x2", "tiny-rib-x2"]
    assert math.isnan(rows["tiny-rib-x2"]["psnr_vs_none"]) and math.isnan(rows["tiny-rib-x2"]["infer_ms"])
    assert "## Positional biases compared" in (out / "REPORT.md").read_text()
    assert (out / "figures/biases.png").is_file()


def test_refusal_clause_of_the_layers_own_error() -> None:
    """The clause is cut from the error a real model raises (suite.evaluate.inference.apply_window_sizes)."""
    from suite.evaluate.inference import WindowSizeError, apply_window_sizes
    from suite.models import build_model

    for bias in (name for name, spec in REGISTRY.items() if spec.fixed_window):
        model = build_model("tiny", bias, 2, dim=8, n_blocks=1, window_sizes=[4, 4], ranks=[2, 2])
        with pytest.raises(WindowSizeError) as error:
            apply_window_sizes(model, window_scale=2)
        label = REGISTRY[bias].label
        article = "an" if label[0] in "AEIOR" else "a"
        expected = f"{article} {label} layer trained at window 4 cannot run at window 8"
        assert bias_comparison.refusal_clause(error.value.reason) == expected
    assert (
        bias_comparison.refusal_clause(float("nan")) == ""
        and bias_comparison.refusal_clause("out of memory") == "out of memory"
    )
