"""Section "Reconstruction quality": PSNR / SSIM of every measured method in the cells this run measured,
with the paper's rows only where they share a cell (its full tables: suite.report.paper_tables)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from suite.report.declare import Built, ReportInputs, Section, Table
from suite.report.document import psnr_footnote
from suite.report.markdown import (
    MISSING,
    absent,
    column_key,
    latex_escape,
    markdown_table,
    method_labels,
    protocol_caption,
)
from suite.report.paper import PAPER, PAPER_SOURCE, PAPER_VALUES, PaperRow, paper_row
from suite.report.readers import EvalResult, method_key

MEASURED = "measured"
LABELS = ("source", "method", "bias", "note")


@dataclass(frozen=True)
class PsnrTable:
    """Rows: measured methods (bicubic first), then rows of `paper_rows` that share a cell with them;
    columns: `columns` as (dataset, scale), each a `<dataset>_x<scale>_psnr` and `_ssim` column of `frame`."""

    frame: pd.DataFrame
    columns: tuple[tuple[str, int], ...]


def column_name(dataset: str, scale: int, metric: str) -> str:
    return f"{dataset}_x{scale}_{metric}"


def score_frame(records: list[dict], columns: tuple[tuple[str, int], ...]) -> pd.DataFrame:
    """Rows of LABELS and scores as a frame with one PSNR and one SSIM column per (dataset, scale)."""
    value_columns = [column_name(d, s, m) for d, s in columns for m in ("psnr", "ssim")]
    frame = pd.DataFrame.from_records(records).reindex(columns=[*LABELS, *value_columns])
    frame[value_columns] = frame[value_columns].astype(float)
    return frame


def paper_record(row: PaperRow, columns: tuple[tuple[str, int], ...]) -> dict:
    """One paper row's labels and its scores in `columns` (the cells it states)."""
    record = {"source": PAPER_SOURCE, "method": row.key, "bias": row.bias, "note": row.note}
    for (dataset, scale), (psnr, ssim) in row.scores.items():
        if (dataset, scale) in columns:
            record[column_name(dataset, scale, "psnr")] = psnr
            record[column_name(dataset, scale, "ssim")] = ssim
    return record


def psnr_table(evals: list[EvalResult], paper_rows: tuple[PaperRow, ...] | None = None) -> PsnrTable:
    """The measured cells only; a paper row joins where it states a score in one of them."""
    paper_rows = tuple(PAPER_VALUES.rows.values()) if paper_rows is None else paper_rows
    columns = tuple(sorted({(result.dataset, result.scale) for result in evals}, key=column_key))
    records = []
    for method in sorted({result.method for result in evals}, key=method_key):
        name, bias = method_labels(method)
        record = {"source": MEASURED, "method": name, "bias": bias, "note": ""}
        for result in evals:
            if result.method == method:
                record[column_name(result.dataset, result.scale, "psnr")] = result.psnr
                record[column_name(result.dataset, result.scale, "ssim")] = result.ssim
        records.append(record)
    records += [paper_record(row, columns) for row in paper_rows if set(row.scores) & set(columns)]
    return PsnrTable(frame=score_frame(records, columns), columns=columns)


def score_cell(psnr: float, ssim: float) -> str:
    if absent(psnr):
        return MISSING
    return f"{psnr:.2f}" if absent(ssim) else f"{psnr:.2f} / {ssim:.4f}"


def psnr_cells(table: PsnrTable) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table as text: one "PSNR / SSIM" cell per dataset and scale."""
    header = ["Source", "Method", "Bias", "Note", *(f"{d} x{s}" for d, s in table.columns)]
    rows = []
    for record in table.frame.to_dict("records"):
        row = [str(record[label]) if not absent(record[label]) else "" for label in LABELS]
        row += [
            score_cell(record[column_name(d, s, "psnr")], record[column_name(d, s, "ssim")]) for d, s in table.columns
        ]
        rows.append(row)
    return header, rows


def paper_keys(table: PsnrTable) -> list[str]:
    return [str(key) for key in table.frame.loc[table.frame["source"] == PAPER_SOURCE, "method"]]


def psnr_caption(table: PsnrTable, evals: list[EvalResult]) -> str:
    caption = f"PSNR (dB) / SSIM, Y channel, {protocol_caption(evals)}, in the cells this run measured."
    if paper_keys(table):
        return caption + (
            f" Rows with source **{PAPER_SOURCE}** are published figures in the same cells "
            f"(sources below), not measured here."
        )
    return (
        caption
        + " No row of the paper states a score in these cells; the paper's tables are in a section of their own."
    )


def paper_sources(keys: list[str] | None = None) -> list[str]:
    """One line per source of the quoted rows."""
    rows = PAPER_VALUES.rows.values() if keys is None else [paper_row(key) for key in keys]
    by_source: dict[str, list[str]] = {}
    for row in rows:
        by_source.setdefault(row.source, []).append(row.key)
    return [f"{', '.join(names)}: {source}" for source, names in by_source.items()]


def psnr_markdown(table: PsnrTable, evals: list[EvalResult], footnote: list[str]) -> str:
    header, rows = psnr_cells(table)
    notes = "\n".join(f"- {text}" for text in footnote)
    keys = paper_keys(table)
    sources = ""
    if keys:
        lines = "\n".join(f"- {text}" for text in paper_sources(keys))
        sources = f"Sources of the paper rows ({PAPER}; values in `{PAPER_VALUES.path}`):\n\n{lines}\n\n"
    return f"{psnr_caption(table, evals)}\n\n{markdown_table(header, rows)}\n{sources}Notes:\n\n{notes}\n"


def psnr_latex(table: PsnrTable, evals: list[EvalResult], footnote: list[str]) -> str:
    header, rows = psnr_cells(table)
    header = [latex_escape(cell).replace(" x", r" $\times$") for cell in header]
    lines = [
        "% PSNR (dB) / SSIM table written by `suite report`; needs \\usepackage{booktabs}.",
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        "\\begin{tabular}{llll" + "c" * len(table.columns) + "}",
        "\\toprule",
        " & ".join(header) + " \\\\",
        "\\midrule",
    ]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            lines.append("\\midrule")
        previous = row[0]
        lines.append(" & ".join(latex_escape(cell).replace("–", "--") for cell in row) + " \\\\")
    caption = (
        latex_escape(psnr_caption(table, evals).replace("**", "").replace("`", ""))
        + " "
        + " ".join(latex_escape(note) for note in [*paper_sources(paper_keys(table)), *footnote])
    )
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{caption}}}", "\\label{tab:psnr-ssim}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def build(inputs: ReportInputs) -> Built:
    table = psnr_table(inputs.evals)
    footnote = psnr_footnote(inputs.evals, inputs.runs)
    markdown = psnr_markdown(table, inputs.evals, footnote)
    return Built(
        markdown,
        {
            "psnr_ssim.csv": table.frame,
            "psnr_ssim.md": markdown,
            "psnr_ssim.tex": psnr_latex(table, inputs.evals, footnote),
        },
    )


SECTION = Section(
    key="psnr",
    title="Reconstruction quality (PSNR / SSIM)",
    build=build,
    tables=(
        Table(
            "psnr_ssim",
            "PSNR (dB) / SSIM of every method this run evaluated (rows) on each test set and "
            'scale it measured (columns), bicubic first; rows whose source is "paper" are published '
            "figures in the same cells, not measured here.",
            ("csv", "md", "tex"),
        ),
    ),
)
