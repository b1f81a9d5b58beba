"""The report's declaration types: a section with its tables and figures, and when it exists.

Each section module declares one `Section` (title, builder, tables, figures with their captions, and the
condition on `Contents` under which it exists); `suite.report.sections.SECTIONS` lists them in report
order. `suite report` builds what the results hold, and the workflow derives the report rule's outputs and
the HTML report's captions from the same declarations, with `Contents` predicted from its config.

Light on purpose (no torch, no matplotlib): the workflow imports it when it parses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from suite.report.readers import AnalysisTable, EvalResult, Profile, TrainRun

TABLE_FORMATS = ("csv", "md", "tex")
FIGURE_FORMATS = ("png", "pdf")


@dataclass(frozen=True)
class Contents:
    """What the results hold, as far as it decides which sections exist: read from the result files by
    `suite report` (suite.report.build.contents_of), predicted from the config by the workflow."""

    profile: bool = False  # a profile sweep (profile/profile.json)
    paper_rows: bool = False  # eval methods to put beside rows of the paper (--paper-rows)
    rank_ablation: bool = False  # RIB trained at a rank of its own ("<preset>-rib-r<R>")
    compared_biases: bool = False  # trained runs of two positional biases or more
    seeds: bool = False  # a model trained with several seeds (train.seeds)
    analysis: frozenset[str] = frozenset()  # the `suite analyze` tools with tables
    crop: bool = False  # a visual crop comparison was asked for


@dataclass(frozen=True)
class CropRequest:
    """Which test image the visual comparison shows; `hr_dir` holds its HR image."""

    dataset: str
    scale: int
    hr_dir: Path
    image: str | None = None
    size: int = 64


@dataclass(frozen=True)
class ReportInputs:
    """Everything the sections are built from: the results folder as read, and the report's options."""

    results: Path
    evals: list[EvalResult]
    runs: list[TrainRun]
    profile: Profile | None
    analysis: dict[str, AnalysisTable | None]
    paper_rows: dict[str, str] = field(default_factory=dict)  # eval method folder -> paper row
    val_dataset: str | None = None
    analysis_dataset: str | None = None
    crop: CropRequest | None = None


@dataclass(frozen=True)
class Table:
    """tables/<name>.<format> for each of `formats`; the CSV is shown in Snakemake's HTML report with
    `caption`."""

    name: str
    caption: str
    formats: tuple[str, ...] = ("csv", "md")


@dataclass(frozen=True)
class Plot:
    """figures/<name>.png and .pdf, drawn by `draw(inputs, built)` (`built`: its section's `Built`);
    REPORT.md and Snakemake's HTML report show it with `title` and `caption`."""

    name: str
    title: str
    caption: str
    draw: Callable[[ReportInputs, "Built"], Any]  # -> matplotlib Figure


@dataclass(frozen=True)
class Built:
    """A built section: its Markdown, the content of each declared table file ("<name>.<format>": a
    DataFrame for CSV, text otherwise), and whatever its figures draw from (`data`)."""

    markdown: str
    files: dict[str, Any] = field(default_factory=dict)
    data: Any = None


def always(contents: Contents) -> bool:
    return True


@dataclass(frozen=True)
class Section:
    """One section of REPORT.md: `## title`, the builder's Markdown, then its figures with captions.
    `present(contents)` says whether it exists; a section without tables or figures whose builder returns
    empty Markdown is left out (the environment warnings when there are none)."""

    key: str
    title: str
    build: Callable[[ReportInputs], Built]
    present: Callable[[Contents], bool] = always
    tables: tuple[Table, ...] = ()
    figures: tuple[Plot, ...] = ()
    category: str = "Tables"  # the HTML report's category of its tables


@dataclass(frozen=True)
class ReportFile:
    """One file a section writes, relative to the report's folder; `caption` where the HTML report shows it."""

    key: str  # the workflow's output name: "<name>_<format>"
    path: str
    caption: str | None
    category: str


def section_files(section: Section) -> list[ReportFile]:
    """The files `section` writes: its tables (CSV shown in the HTML report), then its figures (PNG shown)."""
    files = []
    for table in section.tables:
        files += [
            ReportFile(
                f"{table.name}_{fmt}",
                f"tables/{table.name}.{fmt}",
                table.caption if fmt == "csv" else None,
                section.category,
            )
            for fmt in table.formats
        ]
    for plot in section.figures:
        files += [
            ReportFile(
                f"{plot.name}_{fmt}", f"figures/{plot.name}.{fmt}", plot.caption if fmt == "png" else None, "Figures"
            )
            for fmt in FIGURE_FORMATS
        ]
    return files
