"""No difference without its interval: every column of REPORT.md that states a difference or a ratio between
two measurements holds, in each cell with a number, the number's interval in brackets. Checked on a synthetic
report with every section that states one (seeds, rank ablation, analysis tools, paper rows) and on the
committed reports of the default workflow and the CPU study."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from conftest import REPO, add_run, make_results, synthetic_report, write_analysis
from suite.stats import paired_bootstrap

# A header that names a difference or a ratio: "PSNR - no-bias", "Δ PSNR", "PSNR change", "RPB / RIB time",
# "Time vs RPB", the Targets' "Measured".
DIFFERENCE = re.compile(r" - |Δ|[Cc]hange|\S / \S|\bvs\b|^Measured")
# Not a measured difference: a ratio of peak memories (one reading per process, nothing to resample), the
# paper's quoted figures (its sections are skipped whole), a verdict column, a unit ("ms / image").
EXEMPT = re.compile(r"memory|Verdict|Over images|ms / image", re.IGNORECASE)
QUOTED_SECTIONS = ("The paper's tables",)
NUMBER = re.compile(r"^[+-]?\d")


def tables(report: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """(section title, header, rows) of every Markdown table, outside the sections quoting the paper."""
    found, section, lines = [], "", report.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("|") and index + 1 < len(lines) and set(lines[index + 1].replace("|", "")) <= set("-: "):
            header = [cell.strip() for cell in line.strip("|").split("|")]
            rows, index = [], index + 2
            while index < len(lines) and lines[index].startswith("|"):
                rows.append([cell.strip() for cell in lines[index].strip("|").split("|")])
                index += 1
            if not section.startswith(QUOTED_SECTIONS) and "As stated" not in header:
                found.append((section, header, rows))
            continue
        index += 1
    return found


def bare_differences(report: str) -> list[str]:
    """ "section / column: cell" for every number in a difference column that has no interval beside it."""
    bare = []
    for section, header, rows in tables(report):
        for column, name in enumerate(header):
            if not DIFFERENCE.search(name) or EXEMPT.search(name):
                continue
            for row in rows:
                cell = row[column] if column < len(row) else ""
                text = cell.split("= ", 1)[-1]  # "RIB - RPB = +0.008 dB [...]"
                if NUMBER.match(text) and not re.search(r"\[[^\]]+\]", text):
                    bare.append(f"{section} / {name}: {cell}")
    return bare


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The synthetic results with two seeds of a no-bias model, a rank-ablation model, analysis tables and a
    model beside its paper row: every section that states a difference."""
    results = make_results(tmp_path_factory.mktemp("intervals"))
    for model, offset in (("tiny-none-s0", 0.0), ("tiny-none-s1", 0.02), ("tiny-rib-r8", 0.05)):
        images = [{"name": f"img{i}", "psnr": 31.0 + offset + 0.01 * i, "ssim": 0.9} for i in range(2)]
        add_run(results, model, 31.0 + offset, 0.1, images=images)
    row = {"psnr": 31.0, "ssim": 0.9, "ms_median": 10.0, "ms_iqr": 1.0, "status": "ok", "reason": ""}
    interval = {"psnr_change_low": -0.1, "psnr_change_high": 0.1, "time_ratio_low": 0.9, "time_ratio_high": 1.1}
    write_analysis(
        results,
        "lowrank",
        "tiny-rpb-x2",
        [{**row, **interval, "variant": "rpb", "rank_label": "-", "psnr_change": 0.0, "time_ratio": 1.0}],
    )
    write_analysis(
        results,
        "windows",
        "tiny-rib-x2",
        [{**row, **interval, "factor": 1.0, "window_sizes": "32 32", "psnr_change": 0.0, "time_ratio": 1.0}],
    )
    out = synthetic_report(results, paper_rows={"tiny-rib": "SST-XL+ (DFLIP)"})
    return (out / "REPORT.md").read_text()


def test_the_checker_finds_a_bare_difference() -> None:
    report = "## Targets\n\n| Result | Check | Measured |\n|---|---|---|\n| PASS | x | +0.008 dB |\n"
    assert bare_differences(report) == ["Targets / Measured: +0.008 dB"]
    assert bare_differences(report.replace("+0.008 dB", "+0.008 dB [-0.01, +0.02]")) == []


def test_every_difference_of_a_full_synthetic_report_has_its_interval(full_report: str) -> None:
    for section in ("Targets", "Results over seeds", "Rank ablation", "Positional biases compared", "Speed and memory"):
        assert f"## {section}" in full_report
    checked = {section for section, header, _ in tables(full_report) if any(DIFFERENCE.search(h) for h in header)}
    assert {"Targets", "Results over seeds", "Measured against the paper", "Window extrapolation"} <= checked
    assert bare_differences(full_report) == []


@pytest.mark.parametrize("folder", ["default", "cpu-study"])
def test_the_committed_reports_state_no_difference_without_its_interval(folder: str) -> None:
    report = REPO / "results" / folder / "REPORT.md"
    assert bare_differences(report.read_text()) == []


def test_results_over_seeds_pair_by_seed_and_image(tmp_path) -> None:
    """Two seeds of RPB, RIB and no bias: the section gives each model's PSNR per seed, mean and spread, and its
    difference to no bias and to RPB from the (seeds x images) table of paired differences."""
    results = make_results(tmp_path)
    for stale in ("tiny-rpb", "tiny-rib"):  # the single-seed runs of make_results, replaced by seeded ones
        for folder in (results / "train" / f"{stale}-x2", results / "eval" / stale, results / "images" / stale):
            shutil.rmtree(folder, ignore_errors=True)
    offsets = {"rpb": (0.03, 0.05), "rib": (0.06, 0.02), "none": (0.0, 0.01)}
    scores = {}
    for bias, (first, second) in offsets.items():
        for seed, offset in enumerate((first, second)):
            psnr = [31.0 + offset + 0.1 * i + 0.01 * seed * i for i in range(2)]
            scores[bias, seed] = psnr
            images = [{"name": f"img{i}", "psnr": value, "ssim": 0.9} for i, value in enumerate(psnr)]
            add_run(results, f"tiny-{bias}-s{seed}", sum(psnr) / 2, 0.1, images=images)
    out = synthetic_report(results)
    frame = pd.read_csv(out / "tables/seeds.csv")
    rib = frame[frame["model"] == "tiny-rib"].iloc[0]
    expected = paired_bootstrap([[a - b for a, b in zip(scores["rib", seed], scores["none", seed])] for seed in (0, 1)])
    assert (rib["psnr_vs_none"], rib["psnr_vs_none_low"], rib["psnr_vs_none_high"]) == pytest.approx(
        (expected.mean, expected.low, expected.high)
    )
    assert rib["seeds"] == "0;1" and rib["psnr_sd"] == pytest.approx(
        abs(sum(scores["rib", 0]) - sum(scores["rib", 1])) / 2 / 2**0.5
    )
    none = frame[frame["model"] == "tiny-none"].iloc[0]
    assert pd.isna(none["psnr_vs_none"]) and pd.isna(none["psnr_vs_rpb"])  # itself, and RPB - no bias's mirror
    report = (out / "REPORT.md").read_text()
    assert "## Results over seeds" in report and "over 4 seed-image pairs (2 seeds x 2 test images" in report
    assert (
        f"- tiny RIB - no-bias, mini_test x2: {expected.mean:+.4f} dB [{expected.low:+.4f}, {expected.high:+.4f}]"
        in report
    )
    assert bare_differences(report) == []
