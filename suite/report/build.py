"""`build_report`: read a results folder, build every section its contents call for, write tables/, figures/
and REPORT.md."""

from __future__ import annotations

from pathlib import Path

from suite.analysis.outputs import ANALYSIS_OUTPUTS
from suite.files import write_text_atomic
from suite.report import document
from suite.report.bias_comparison import compares_biases
from suite.report.declare import Built, Contents, CropRequest, ReportInputs, Section, section_files
from suite.report.paper import paper_row
from suite.report.readers import ReportInputError, read_analysis, read_evals, read_profile, read_runs
from suite.report.sections import present_sections
from suite.report.seeds import several_seeds


def read_inputs(
    results: Path,
    paper_rows: dict[str, str] | None = None,
    val_dataset: str | None = None,
    analysis_dataset: str | None = None,
    crop: CropRequest | None = None,
) -> ReportInputs:
    """The results folder as the sections read it; ReportInputError naming the file or option that cannot be used."""
    results = Path(results)
    evals = read_evals(results)
    if not evals:
        raise ReportInputError(f"{results}: no eval results (eval/<method>/<dataset>-x<scale>.json)")
    paper_rows = dict(paper_rows or {})
    for method, key in paper_rows.items():
        paper_row(key)  # an unknown row is an error naming the choices
        if not any(r.method == method for r in evals):
            raise ReportInputError(f"{results}/eval/{method}: no eval results for --paper-rows {method}={key}")
    profile_path = results / "profile" / "profile.json"
    return ReportInputs(
        results=results,
        evals=evals,
        runs=read_runs(results),
        profile=read_profile(profile_path) if profile_path.is_file() else None,
        analysis={tool: read_analysis(results, tool) for tool in ANALYSIS_OUTPUTS},
        paper_rows=paper_rows,
        val_dataset=val_dataset,
        analysis_dataset=analysis_dataset,
        crop=crop,
    )


def contents_of(inputs: ReportInputs) -> Contents:
    """What the results hold, as the sections' conditions ask it (the workflow predicts the same from its config)."""
    return Contents(
        profile=inputs.profile is not None,
        paper_rows=bool(inputs.paper_rows),
        rank_ablation=any(run.rank is not None for run in inputs.runs),
        compared_biases=compares_biases(run.bias for run in inputs.runs),
        seeds=several_seeds(inputs.runs),
        analysis=frozenset(tool for tool, table in inputs.analysis.items() if table is not None),
        crop=inputs.crop is not None,
    )


def sources_of(inputs: ReportInputs) -> list[Path]:
    """The result files the report read, for its provenance."""
    sources = [r.path for r in inputs.evals]
    sources += [run.path / name for run in inputs.runs for name in ("summary.json", "train_log.csv")]
    sources += [inputs.profile.path] if inputs.profile is not None else []
    sources += [path for table in inputs.analysis.values() if table is not None for path in table.paths]
    return sources


def _write_section(section: Section, built: Built, inputs: ReportInputs, out: Path) -> list[Path]:
    """Write the section's declared tables (exactly those) and draw its figures."""
    declared = {file.path.removeprefix("tables/") for file in section_files(section) if file.path.startswith("tables/")}
    if set(built.files) != declared:
        raise RuntimeError(f"report section {section.key!r} built {sorted(built.files)}, declares {sorted(declared)}")
    written = []
    for name, content in built.files.items():
        text = content.to_csv(index=False) if name.endswith(".csv") else content
        written.append(write_text_atomic(out / "tables" / name, text))
    if section.figures:
        from suite.report.plotting import save_figure

        for plot in section.figures:
            written += save_figure(plot.draw(inputs, built), out / "figures" / plot.name)
    return written


def build_report(
    results: Path,
    out: Path,
    title: str | None = None,
    val_dataset: str | None = None,
    crop: CropRequest | None = None,
    paper_rows: dict[str, str] | None = None,
    analysis_dataset: str | None = None,
    skipped: dict[str, str] | None = None,
) -> list[Path]:
    """Read every result under `results`, write tables/, figures/ and REPORT.md under `out`; returns the paths
    written. `paper_rows`: eval method folder -> paper_values.yaml row to compare it with. `analysis_dataset`: the
    test set of the positional-bias comparison (default: the one most trained models were evaluated on).
    `skipped`: test sets left out of the evaluations -> why (a line each in REPORT.md). Raises
    ReportInputError naming the file when a result cannot be used."""
    inputs = read_inputs(results, paper_rows, val_dataset, analysis_dataset, crop)
    out = Path(out)
    written: list[Path] = []
    rendered: list[tuple[Section, Built]] = []
    for section in present_sections(contents_of(inputs)):
        built = section.build(inputs)
        if not built.markdown.strip() and not section.tables and not section.figures:
            continue
        written += _write_section(section, built, inputs, out)
        rendered.append((section, built))
    markdown = document.report_markdown(
        title or f"`{inputs.results.name}`",
        inputs.results,
        rendered,
        sources_of(inputs),
        inputs.evals,
        inputs.runs,
        skipped or {},
    )
    written.append(write_text_atomic(out / "REPORT.md", markdown))
    return written
