"""Section "Measured against the paper": each method named by --paper-rows beside its row of the paper's
values, per dataset and scale, measured - paper."""

from __future__ import annotations

import math

import pandas as pd

from suite.report.declare import Built, Contents, ReportInputs, Section, Table
from suite.report.markdown import MISSING, absent, column_key, markdown_table, protocol_caption
from suite.report.paper import PAPER_VALUES, paper_row
from suite.report.quality import paper_sources
from suite.report.readers import EvalResult

COMPARISON_COLUMNS = (
    "method",
    "paper_row",
    "scale",
    "dataset",
    "psnr_measured",
    "psnr_paper",
    "psnr_diff",
    "ssim_measured",
    "ssim_paper",
    "ssim_diff",
    "protocol",
)


def paper_comparison(evals: list[EvalResult], paper_rows: dict[str, str]) -> pd.DataFrame:
    """One row per method named in `paper_rows` (method -> paper row key), and per dataset and scale
    where either was measured or the paper states a value at a scale the method was evaluated at:
    measured, paper and measured - paper for PSNR and SSIM. A cell the run did not measure stays empty
    (NaN), so a missing evaluation shows rather than vanishing."""
    records = []
    for method, key in paper_rows.items():
        row = paper_row(key)
        measured = {(r.dataset, r.scale): r for r in evals if r.method == method}
        scales = {scale for _, scale in measured}
        cells = sorted({c for c in row.scores if c[1] in scales} | set(measured), key=lambda c: (c[1], column_key(c)))
        for dataset, scale in cells:
            psnr_paper, ssim_paper = row.scores.get((dataset, scale), (math.nan, None))
            ssim_paper = math.nan if ssim_paper is None else ssim_paper
            result = measured.get((dataset, scale))
            psnr, ssim = (result.psnr, result.ssim) if result else (math.nan, math.nan)
            records.append(
                {
                    "method": method,
                    "paper_row": key,
                    "scale": scale,
                    "dataset": dataset,
                    "psnr_measured": psnr,
                    "psnr_paper": psnr_paper,
                    "psnr_diff": psnr - psnr_paper,
                    "ssim_measured": ssim,
                    "ssim_paper": ssim_paper,
                    "ssim_diff": ssim - ssim_paper,
                    "protocol": result.protocol if result else "",
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
        "Δ PSNR",
        "SSIM measured",
        "SSIM paper",
        "Δ SSIM",
    ]

    def cell(value: float, digits: int, signed: bool = False) -> str:
        return MISSING if absent(value) else (f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}")

    rows = [
        [
            r["method"],
            r["paper_row"],
            f"x{r['scale']}",
            r["dataset"],
            cell(r["psnr_measured"], 2),
            cell(r["psnr_paper"], 2),
            cell(r["psnr_diff"], 2, True),
            cell(r["ssim_measured"], 4),
            cell(r["ssim_paper"], 4),
            cell(r["ssim_diff"], 4, True),
        ]
        for r in frame.to_dict("records")
    ]
    sources = "\n".join(f"- {line}" for line in paper_sources(keys))
    return (
        f"Measured against the paper, per dataset and scale: PSNR (dB) and SSIM on the Y channel, "
        f"{protocol_caption(compared)}; Δ = measured - paper. {MISSING}: not measured here, or not "
        f"stated by the source.\n\n{markdown_table(header, rows)}\nSources (values in "
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
