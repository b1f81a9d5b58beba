"""Section "The paper's tables": every row of the paper's values in full, one table per scale, quoted and
labelled as the paper's (the measured table shows them only in the cells this run shares)."""

from __future__ import annotations

from suite.report.declare import Built, ReportInputs, Section, Table
from suite.report.markdown import column_key, markdown_table
from suite.report.paper import PAPER, PAPER_VALUES
from suite.report.quality import paper_record, paper_sources, score_cell, score_frame


def paper_columns() -> tuple[tuple[str, int], ...]:
    """Every (dataset, scale) the paper's rows state a score in, scale by scale."""
    cells = {cell for row in PAPER_VALUES.rows.values() for cell in row.scores}
    return tuple(sorted(cells, key=lambda cell: (cell[1], column_key(cell))))


def paper_markdown() -> str:
    columns = paper_columns()
    parts = [
        f"Every row of the paper's values ({PAPER}; `{PAPER_VALUES.path}`), quoted, not measured here: "
        f"PSNR (dB) / SSIM on the Y channel as each source states it, one table per scale. The measured "
        f"table above shows a row only in the cells this run shares with it.\n"
    ]
    for scale in sorted({scale for _, scale in columns}):
        datasets = [dataset for dataset, s in columns if s == scale]
        rows = []
        for row in PAPER_VALUES.rows.values():
            scores = [row.scores.get((dataset, scale)) for dataset in datasets]
            if any(score is not None for score in scores):
                rows.append(
                    [
                        row.key,
                        row.bias or "",
                        row.note or "",
                        *(score_cell(*score) if score else score_cell(None, None) for score in scores),
                    ]
                )
        parts.append(f"### x{scale}\n\n" + markdown_table(["Method", "Bias", "Note", *datasets], rows))
    sources = "\n".join(f"- {line}" for line in paper_sources())
    parts.append(f"Sources:\n\n{sources}\n")
    return "\n".join(parts)


def build(inputs: ReportInputs) -> Built:
    columns = paper_columns()
    frame = score_frame([paper_record(row, columns) for row in PAPER_VALUES.rows.values()], columns)
    markdown = paper_markdown()
    return Built(markdown, {"paper_psnr_ssim.csv": frame, "paper_psnr_ssim.md": markdown})


SECTION = Section(
    key="paper_tables",
    title="The paper's tables",
    build=build,
    tables=(
        Table(
            "paper_psnr_ssim",
            "Every row of the paper's PSNR (dB) / SSIM values with its source, quoted "
            "from the paper and the works it cites, not measured here.",
        ),
    ),
)
