"""The report's sections in report order, each declared in its own module: the measured results first, the
paper's full tables last. `suite report` builds those that `Contents` says exist; the workflow derives the
report rule's outputs and the HTML report's captions from `report_files`."""

from __future__ import annotations

from suite.report import (
    analysis,
    bias_comparison,
    comparison,
    crop,
    paper_tables,
    quality,
    rank_ablation,
    seeds,
    speed,
    targets,
    teaser,
    training,
)
from suite.report.declare import Contents, ReportFile, Section, section_files
from suite.report.document import ENVIRONMENT, MISSING

SECTIONS: tuple[Section, ...] = (
    ENVIRONMENT,
    MISSING,
    quality.SECTION,
    crop.SECTION,
    comparison.SECTION,
    targets.SECTION,
    training.SECTION,
    seeds.SECTION,
    rank_ablation.SECTION,
    bias_comparison.SECTION,
    speed.SECTION,
    analysis.BIAS_FIELDS,
    analysis.LOWRANK,
    analysis.WINDOWS,
    teaser.SECTION,
    paper_tables.SECTION,
)


def _check_unique(sections: tuple[Section, ...]) -> None:
    """Section keys and file paths are unique: two sections writing one file would overwrite each other."""
    keys = [section.key for section in sections]
    paths = [file.path for section in sections for file in section_files(section)]
    for name, values in (("section key", keys), ("report file", paths)):
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise ValueError(f"suite.report.sections: {name}(s) declared twice: {', '.join(repeated)}")


_check_unique(SECTIONS)


def present_sections(contents: Contents) -> list[Section]:
    return [section for section in SECTIONS if section.present(contents)]


def report_files(contents: Contents) -> list[ReportFile]:
    """Every file `suite report` writes for results holding `contents`, REPORT.md aside."""
    return [file for section in present_sections(contents) for file in section_files(section)]
