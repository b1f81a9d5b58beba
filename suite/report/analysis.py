"""Sections of the research tools (`suite analyze`): the learned positional bias, RPB to flash by low rank,
and window extrapolation; each exists where its tool wrote tables (analysis/<tool>/<run>/)."""

from __future__ import annotations

from suite.report.declare import Built, Contents, ReportInputs, Section, Table
from suite.report.differences import NOT_RESOLVED, RESOLVED
from suite.report.markdown import MISSING, absent, cells, interval_cell, markdown_table
from suite.report.readers import AnalysisTable
from suite.stats import LEVEL, RESAMPLES


def bias_fields_markdown(table: AnalysisTable) -> str:
    """Per layer and head of every model: window, range, effective rank, translation deviation; the maps."""
    formats = {
        "run": "{}",
        "layer": "{}",
        "window": "{}",
        "head": "{}",
        "bias_min": "{:.3f}",
        "bias_max": "{:.3f}",
        "effective_rank_99": "{}",
        "translation_deviation": "{:.3f}",
    }
    rows = [cells(record, formats) for record in table.frame.to_dict("records")]
    header = [
        "Run",
        "Layer",
        "Window",
        "Head",
        "Min",
        "Max",
        "Effective rank (99% energy)",
        "Deviation from translation invariance",
    ]
    maps = []
    for path in table.paths:
        run = path.parent.name
        folder = f"analysis/bias/{run}"
        maps.append(
            f"- {run}: mean bias at each relative offset ![{run} offsets]({folder}/offsets.png), the "
            f"centre token's bias over the window ![{run} centre]({folder}/centre.png) "
            f"(PDFs beside them; the maps in `{folder}/fields.npz`)"
        )
    return (
        "The positional bias each model learned (`suite analyze bias`), per attention layer and head: its "
        "range, the effective rank of the dense N x N bias (singular values needed for 99% of the squared "
        "Frobenius norm) and its deviation from translation invariance (RMS of the bias minus its mean at "
        "the same relative offset, over the RMS of the bias; 0 for RPB by construction).\n\n"
        + markdown_table(header, rows)
        + "\n"
        + "\n".join(maps)
        + "\n"
    )


def change_verdict(record: dict, reference: bool) -> str:
    """Whether a row's PSNR change is resolved by its interval over test images ("–" for the reference row)."""
    low, high = record.get("psnr_change_low"), record.get("psnr_change_high")
    if reference or absent(low) or absent(high):
        return MISSING
    return RESOLVED if low > 0 or high < 0 else NOT_RESOLVED


def intervals_note(reference: str) -> str:
    return (
        f"PSNR change: against {reference}, on the same test images, with the {LEVEL:.0%} percentile-bootstrap "
        f"interval of the mean per-image difference ({RESAMPLES:,} resamples; resolved where it excludes 0). Time "
        f"ratio: the geometric mean of the per-round ratios with its {LEVEL:.0%} bootstrap interval over the "
        f"interleaved rounds; a ratio whose interval contains 1 does not rank the two."
    )


def lowrank_markdown(table: AnalysisTable) -> str:
    formats = {
        "run": "{}",
        "variant": "{}",
        "rank_label": "{}",
        "bias_rel_error": "{:.2e}",
        "bias_rel_error_max": "{:.2e}",
        "psnr": "{:.4f}",
    }
    rows = [
        [
            *cells(record, formats),
            interval_cell(record, "psnr_change", "{:+.5f}"),
            change_verdict(record, record["variant"] == "rpb"),
            *cells(record, {"ssim": "{:.4f}", "ms_median": "{:.1f}"}),
            interval_cell(record, "time_ratio", "{:.2f}"),
            *cells(record, {"status": "{}"}),
        ]
        for record in table.frame.to_dict("records")
    ]
    header = [
        "Run",
        "Variant",
        "Rank",
        "Bias error (relative Frobenius)",
        "Worst layer/head",
        "PSNR (dB)",
        "PSNR change [95% interval]",
        "Verdict",
        "SSIM",
        "ms / image",
        "Time vs RPB [95% interval]",
        "Status",
    ]
    return (
        "The trained RPB model converted to fixed rank-R factors by truncated SVD of each layer's dense bias "
        "(`suite analyze lowrank`; FlashBias's SVD route), run through RIB's concatenation path, so nothing "
        "N x N is built and flash kernels may run. Changes and time ratios are against the RPB model "
        "(first row of each run); `no-bias` (rank 0) is the RPB network with its bias dropped, which shows how "
        "much the bias matters at all. Times are medians of interleaved rounds on one test image, from one "
        "run (device, threads and rounds in each `lowrank.json`).\n\n"
        + markdown_table(header, rows)
        + "\n"
        + intervals_note("the RPB model")
        + "\n"
    )


def windows_markdown(table: AnalysisTable) -> str:
    formats = {"run": "{}", "factor": "{:g}", "window_sizes": "{}", "status": "{}", "psnr": "{:.4f}"}
    rows = [
        [
            *cells(record, formats),
            interval_cell(record, "psnr_change", "{:+.5f}"),
            change_verdict(record, record["factor"] == 1.0),
            *cells(record, {"ssim": "{:.4f}", "ms_median": "{:.1f}"}),
            interval_cell(record, "time_ratio", "{:.2f}"),
            *cells(record, {"reason": "{}"}),
        ]
        for record in table.frame.to_dict("records")
    ]
    header = [
        "Run",
        "Window factor",
        "Windows",
        "Status",
        "PSNR (dB)",
        "PSNR change [95% interval]",
        "Verdict",
        "SSIM",
        "ms / image",
        "Time vs factor 1 [95% interval]",
        "Reason",
    ]
    return (
        "Each model evaluated with every attention window scaled by a factor (`suite analyze windows`): RIB's "
        "bias is a function of normalised coordinates and runs at any window; RPB's table fixes its window, "
        "so it refuses (the error is shown). Changes and time ratios are against factor 1 (the trained "
        "windows); times are medians of interleaved rounds on one test image, from one run.\n\n"
        + markdown_table(header, rows)
        + "\n"
        + intervals_note("factor 1")
        + "\n"
    )


def analysis_section(tool: str, key: str, title: str, markdown, caption: str) -> Section:
    """The section of `tool`'s tables: present where the tool ran, its stacked table as tables/<key>.*."""

    def build(inputs: ReportInputs) -> Built:
        table = inputs.analysis[tool]
        text = markdown(table)
        return Built(text, {f"{key}.csv": table.frame, f"{key}.md": text})

    def present(contents: Contents) -> bool:
        return tool in contents.analysis

    return Section(
        key=key, title=title, build=build, present=present, category="Analysis", tables=(Table(key, caption),)
    )


BIAS_FIELDS = analysis_section(
    "bias",
    "bias_fields",
    "Learned positional bias",
    bias_fields_markdown,
    "Learned positional bias per layer and head of every model with an N x N logit term (`suite analyze bias`): "
    "range, effective rank of the dense N x N bias at 99% energy, and deviation from translation invariance. The "
    "maps are under analysis/bias/<model>-x<scale>/.",
)
LOWRANK = analysis_section(
    "lowrank",
    "lowrank",
    "RPB to flash by low rank",
    lowrank_markdown,
    "The trained RPB model converted to fixed rank-R factors by truncated SVD (`suite analyze lowrank`), run through "
    "RIB's concatenation path: relative Frobenius error of the bias, PSNR/SSIM change on the test set and inference "
    "time against the RPB model, timed in one interleaved run.",
)
WINDOWS = analysis_section(
    "windows",
    "windows",
    "Window extrapolation",
    windows_markdown,
    "Window extrapolation (`suite analyze windows`): each model evaluated with every window scaled by a factor; "
    "PSNR/SSIM and inference time against factor 1. A model whose bias is tied to its window refuses other factors, "
    "with the error shown.",
)
