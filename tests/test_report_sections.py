"""The report's declaration (suite.report.sections): the files `suite report` writes are exactly those its
sections declare for what the results hold, a section declared in one place reaches REPORT.md, the files and
the workflow's outputs, and keys and files are unique."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import make_results, synthetic_report
from suite.report import sections
from suite.report.build import contents_of, read_inputs
from suite.report.declare import Built, Contents, CropRequest, Plot, Section, Table
from suite.report.sections import report_files


def _crop(results: Path) -> CropRequest:
    return CropRequest("mini_test", 2, results.parent.parent / "data" / "mini_test" / "HR", size=32)


def _written(results: Path, out: Path, **options) -> set[str]:
    synthetic_report(results, out, **options)
    return {str(path.relative_to(out)) for path in out.rglob("*") if path.is_file()}


@pytest.mark.parametrize("with_profile", [True, False])
def test_written_files_are_the_declared_ones(tmp_path: Path, with_profile: bool) -> None:
    results = make_results(tmp_path)
    if not with_profile:
        for path in (results / "profile").iterdir():
            path.unlink()
    written = _written(results, tmp_path / "out", paper_rows={"tiny-rib": "SST-XL+ (DFLIP)"})
    contents = contents_of(read_inputs(results, {"tiny-rib": "SST-XL+ (DFLIP)"}, "mini_test", crop=_crop(results)))
    assert contents == Contents(profile=with_profile, paper_rows=True, crop=True, compared_biases=True)
    assert written == {file.path for file in report_files(contents)} | {"REPORT.md"}
    assert ("tables/speed.csv" in written) == with_profile and "tables/paper_comparison.csv" in written


def test_a_section_declared_once_reaches_every_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a section with a table and a figure touches its own module only: the report writes its files and
    shows its caption, and the workflow's outputs (report_files) list them."""
    from matplotlib.figure import Figure

    def draw(inputs, built: Built) -> Figure:
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot(built.data)
        return fig

    def build(inputs) -> Built:
        frame = pd.DataFrame({"method": [r.method for r in inputs.evals]})
        return Built(
            f"{len(inputs.evals)} evaluations.\n", {"extra.csv": frame, "extra.md": "# extra\n"}, data=[1, 3, 2]
        )

    extra = Section(
        key="extra",
        title="An extra section",
        build=build,
        present=lambda contents: contents.crop,
        tables=(Table("extra", "Every evaluated method."),),
        figures=(Plot("extra_plot", "An extra figure", "A caption written once.", draw),),
    )
    monkeypatch.setattr(sections, "SECTIONS", (*sections.SECTIONS, extra))
    files = {file.path: file for file in report_files(Contents(crop=True))}
    assert files["tables/extra.csv"].caption == "Every evaluated method." and "tables/extra.md" in files
    assert files["figures/extra_plot.png"].caption == "A caption written once."
    assert "tables/extra.csv" not in {file.path for file in report_files(Contents())}

    results = make_results(tmp_path)
    written = _written(results, tmp_path / "out")
    assert {"tables/extra.csv", "tables/extra.md", "figures/extra_plot.png", "figures/extra_plot.pdf"} <= written
    report = (tmp_path / "out" / "REPORT.md").read_text()
    assert "## An extra section\n\n6 evaluations." in report
    assert "### An extra figure" in report and "A caption written once. (PDF: `figures/extra_plot.pdf`)" in report


def test_a_section_must_build_exactly_its_declared_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = Section(
        key="wrong",
        title="Wrong",
        build=lambda inputs: Built("x", {"other.md": "x"}),
        tables=(Table("wrong", "declared", ("md",)),),
    )
    monkeypatch.setattr(sections, "SECTIONS", (*sections.SECTIONS, wrong))
    with pytest.raises(RuntimeError, match=r"section 'wrong' built \['other.md'\], declares \['wrong.md'\]"):
        synthetic_report(make_results(tmp_path))


def test_keys_and_files_are_declared_once() -> None:
    twin = Section(key="psnr", title="Twin", build=lambda inputs: Built(""), tables=(Table("speed", "again"),))
    with pytest.raises(ValueError, match=r"section key\(s\) declared twice: psnr"):
        sections._check_unique((*sections.SECTIONS, twin))
    other = Section(key="other", title="Other", build=lambda inputs: Built(""), tables=(Table("speed", "again"),))
    with pytest.raises(ValueError, match=r"report file\(s\) declared twice: tables/speed.csv, tables/speed.md"):
        sections._check_unique((*sections.SECTIONS, other))
