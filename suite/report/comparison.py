"""Section "Measured against the paper": each method named by --paper-rows beside its row of the paper's
values, per dataset and scale, measured - paper with its interval over test images (and seeds)."""

from __future__ import annotations

import math
import statistics

import pandas as pd

from suite.report.declare import Built, Contents, ReportInputs, Section, Table
from suite.report.differences import method_note, over_text, per_image_psnr, verdict
from suite.report.markdown import MISSING, absent, column_key, interval_cell, markdown_table, protocol_caption
from suite.report.paper import PAPER_VALUES, paper_row
from suite.report.quality import paper_sources
from suite.report.readers import EvalResult
from suite.stats import Interval, paired_bootstrap

COMPARISON_COLUMNS = (
    "method",
    "paper_row",
    "scale",
    "dataset",
    "psnr_measured",
    "psnr_paper",
    "psnr_diff",
    "psnr_diff_low",
    "psnr_diff_high",
    "verdict",
    "interval_over",
    "seeds",
    "ssim_measured",
    "ssim_paper",
    "ssim_diff",
    "ssim_diff_low",
    "ssim_diff_high",
    "protocol",
)


def against_paper(measured: list[EvalResult], paper: float, metric: str = "psnr") -> Interval | None:
    """Mean `metric` of `measured` (one evaluation per seed) minus the paper's figure, with the interval of a
    bootstrap over test images (and seeds); None without per-image scores or a paper figure."""
    if math.isnan(paper) or not all(result.images for result in measured):
        return None
    return paired_bootstrap(
        [[value - paper for _, value in sorted(per_image_psnr(r, metric).items())] for r in measured]
    )


def paper_comparison(evals: list[EvalResult], paper_rows: dict[str, str]) -> pd.DataFrame:
    """One row per method named in `paper_rows` (method -> paper row key; a model trained with several seeds
    is named without its seed), and per dataset and scale where either was measured or the paper states a
    value at a scale the method was evaluated at: measured (the mean over seeds), paper and measured - paper
    for PSNR and SSIM, the PSNR difference with its interval. A cell the run did not measure stays empty
    (NaN), so a missing evaluation shows rather than vanishing."""
    records = []
    for method, key in paper_rows.items():
        row = paper_row(key)
        measured: dict[tuple[str, int], list[EvalResult]] = {}
        for result in evals:
            if method in (result.method, result.model):
                measured.setdefault((result.dataset, result.scale), []).append(result)
        scales = {scale for _, scale in measured}
        cells = sorted({c for c in row.scores if c[1] in scales} | set(measured), key=lambda c: (c[1], column_key(c)))
        for dataset, scale in cells:
            psnr_paper, ssim_paper = row.scores.get((dataset, scale), (math.nan, None))
            ssim_paper = math.nan if ssim_paper is None else ssim_paper
            results = measured.get((dataset, scale), [])
            psnr, ssim = (
                (statistics.mean(r.psnr for r in results), statistics.mean(r.ssim for r in results))
                if results
                else (math.nan, math.nan)
            )
            interval = against_paper(results, psnr_paper) if results else None
            ssim_interval = against_paper(results, ssim_paper, "ssim") if results else None
            records.append(
                {
                    "method": method,
                    "paper_row": key,
                    "scale": scale,
                    "dataset": dataset,
                    "psnr_measured": psnr,
                    "psnr_paper": psnr_paper,
                    "psnr_diff": psnr - psnr_paper,
                    "psnr_diff_low": interval.low if interval else math.nan,
                    "psnr_diff_high": interval.high if interval else math.nan,
                    "verdict": verdict(interval) if interval else "",
                    "interval_over": over_text(interval) or "",
                    "seeds": len(results),
                    "ssim_measured": ssim,
                    "ssim_paper": ssim_paper,
                    "ssim_diff": ssim - ssim_paper,
                    "ssim_diff_low": ssim_interval.low if ssim_interval else math.nan,
                    "ssim_diff_high": ssim_interval.high if ssim_interval else math.nan,
                    "protocol": results[0].protocol if results else "",
                }
            )
    return pd.DataFrame.from_records(records, columns=list(COMPARISON_COLUMNS))


def comparison_markdown(frame: pd.DataFrame, evals: list[EvalResult]) -> str:
    compared = [r for r in evals if r.method in set(frame["method"])]
    keys = list(dict.fromkeys(frame["paper_row"]))
    header = [
        "Method",
        "Paper row",
        "Scale",
        "Dataset",
        "PSNR measured",
        "PSNR paper",
        "Δ PSNR [95% interval]",
        "Verdict",
        "SSIM measured",
        "SSIM paper",
        "Δ SSIM [95% interval]",
    ]

    def cell(value: float, digits: int) -> str:
        return MISSING if absent(value) else f"{value:.{digits}f}"

    rows = [
        [
            r["method"],
            r["paper_row"],
            f"x{r['scale']}",
            r["dataset"],
            cell(r["psnr_measured"], 2),
            cell(r["psnr_paper"], 2),
            interval_cell(r, "psnr_diff", "{:+.2f}"),
            MISSING if absent(r["verdict"]) or not r["verdict"] else r["verdict"],
            cell(r["ssim_measured"], 4),
            cell(r["ssim_paper"], 4),
            interval_cell(r, "ssim_diff", "{:+.4f}"),
        ]
        for r in frame.to_dict("records")
    ]
    sources = "\n".join(f"- {line}" for line in paper_sources(keys))
    return (
        f"Measured against the paper, per dataset and scale: PSNR (dB) and SSIM on the Y channel, "
        f"{protocol_caption(compared)}; Δ = measured - paper. {MISSING}: not measured here, or not "
        f"stated by the source.\n\n{markdown_table(header, rows)}\n"
        + method_note(frame["interval_over"]).replace(
            "mean paired PSNR difference", "mean PSNR difference to the paper's figure"
        )
        + " The paper's figure is a mean over the same test images, rounded to 0.01 dB: the interval says how far "
        "the measured mean would move with other images of the same kind, so a resolved difference on the "
        "paper's own test set is a difference in the model or the protocol, beyond the rounding.\n\nSources (values in "
        f"`{PAPER_VALUES.path}`):\n\n{sources}\n"
    )


def build(inputs: ReportInputs) -> Built:
    frame = paper_comparison(inputs.evals, inputs.paper_rows)
    markdown = comparison_markdown(frame, inputs.evals)
    return Built(markdown, {"paper_comparison.csv": frame, "paper_comparison.md": markdown})


def present(contents: Contents) -> bool:
    return contents.paper_rows


SECTION = Section(
    key="paper",
    title="Measured against the paper",
    build=build,
    present=present,
    tables=(
        Table(
            "paper_comparison",
            "Each evaluated model beside its row of the paper's values, per test set and "
            "scale: PSNR (dB) and SSIM measured, as the paper states them, and measured - paper.",
        ),
    ),
)
