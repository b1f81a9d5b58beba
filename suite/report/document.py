"""Provenance and prose of the report: the PSNR table's footnote, the environment warnings (a section of
their own) and REPORT.md."""

from __future__ import annotations

import datetime as _dt
import platform
from pathlib import Path

import suite
from suite.analysis.outputs import ANALYSIS_OUTPUTS
from suite.env import run_record
from suite.report.declare import Built, ReportInputs, Section
from suite.report.readers import EvalResult, Profile, TrainRun, lock_mismatches


def report_commit() -> str | None:
    """The suite checkout's commit when the report is written, with "+dirty" for local changes."""
    record = run_record()
    if not record.get("git_commit"):
        return None
    return record["git_commit"] + ("+dirty" if record.get("git_dirty") else "")


def result_commits(evals: list[EvalResult]) -> list[str]:
    """Commits the evaluations recorded (provenance git_commit, "+dirty" where git_dirty)."""
    commits = set()
    for result in evals:
        commit = result.provenance.get("git_commit")
        if commit:
            commits.add(str(commit) + ("+dirty" if result.provenance.get("git_dirty") else ""))
    return sorted(commits)


def _join(values: set) -> str:
    return ", ".join(sorted(str(value) for value in values if value not in (None, ""))) or "not recorded"


def psnr_footnote(evals: list[EvalResult], runs: list[TrainRun]) -> list[str]:
    """Footnote lines: metric protocol, training budget per run, devices, commit."""
    notes = []
    for name in sorted({r.protocol for r in evals}):
        options = next(r.metric_options for r in evals if r.protocol == name)
        notes.append(
            f"Metric protocol `{name}`: {options.get('description', 'not described')} "
            f"(pyiqa {options.get('pyiqa_version', '?')}; every option in each eval JSON's metric_options)."
        )
    budgets = []
    for run in runs:
        summary = run.summary
        wall = summary.get("wall_time_s")
        budgets.append(
            f"{run.name}: {int(summary['iterations'])} iterations (batch {summary.get('global_batch')}, "
            f"LR patch {summary.get('lr_patch')})" + (f", {float(wall):.0f} s wall" if wall is not None else "")
        )
    if budgets:
        notes.append("Training budget: " + "; ".join(budgets) + ".")
    devices = {run.summary.get("device") for run in runs} | {r.provenance.get("device") for r in evals}
    precisions = {run.summary.get("precision") for run in runs}
    notes.append(f"Device: {_join(devices)}; training precision: {_join(precisions)}.")
    commits = result_commits(evals)
    notes.append(f"Commit: {', '.join(commits) if commits else (report_commit() or 'not recorded')}.")
    return notes


def lock_warnings(evals: list[EvalResult], runs: list[TrainRun], profile: Profile | None = None) -> list[str]:
    """One warning line per result whose run record says the environment did not match the lock."""
    lines = []
    for path, lock in lock_mismatches(evals, runs, profile):
        if lock.get("error"):
            lines.append(
                f"> **Warning:** `{path}`: its environment could not be checked against the lock ({lock['error']})."
            )
            continue
        differences = lock.get("differences") or []
        shown = "; ".join(map(str, differences[:5])) + (
            f"; and {len(differences) - 5} more" if len(differences) > 5 else ""
        )
        lock_file = f"`{lock['lock_file']}`" if lock.get("lock_file") else "(no lock file found)"
        lines.append(
            f"> **Warning:** `{path}` was produced in an environment that did not match the lock "
            f"{lock_file}" + (f" ({shown})" if shown else "") + "."
        )
    return lines


def build_warnings(inputs: ReportInputs) -> Built:
    return Built("\n\n".join(lock_warnings(inputs.evals, inputs.runs, inputs.profile)))


ENVIRONMENT = Section(key="warnings", title="Environment warnings", build=build_warnings)


def missing_analysis_tables(inputs: ReportInputs) -> list[str]:
    """One line per trained run that a `suite analyze` tool applies to (by its bias) but left no table for,
    where the tool has tables of other runs (a tool with none was not asked for)."""
    lines = []
    for tool, table in inputs.analysis.items():
        if table is None:
            continue
        output = ANALYSIS_OUTPUTS[tool]
        have = {path.parent.name for path in table.paths}
        for run in inputs.runs:
            if run.bias in output.biases and run.name not in have:
                expected = Path(inputs.results) / "analysis" / tool / run.name / output.table.csv_name
                lines.append(
                    f"> **Not found:** `{expected}`, the `suite analyze {tool}` table of {run.name}: the "
                    f"{tool} tables below leave that run out."
                )
    return lines


def build_missing(inputs: ReportInputs) -> Built:
    return Built("\n\n".join(missing_analysis_tables(inputs)))


MISSING = Section(key="missing", title="Results not found", build=build_missing)


def report_markdown(
    title: str,
    results: Path,
    rendered: list[tuple[Section, Built]],
    sources: list[Path],
    evals: list[EvalResult],
    runs: list[TrainRun],
    skipped: dict[str, str] | None = None,
) -> str:
    """REPORT.md: each test set left out of the evaluations with why (`skipped`, one line each, before every
    table that would have shown it), each section (its Markdown as written to tables/, then its figures with
    captions), provenance."""
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    torch_versions = {r.provenance.get("torch") for r in evals} | {
        (run.summary.get("provenance") or {}).get("torch") for run in runs
    }
    lines = [
        f"# Benchmark report: {title}",
        "",
        f"Written by `suite report` (suite {suite.__version__}, Python {platform.python_version()}) at {now} "
        f"from `{results}`. Evaluated at commit(s) {', '.join(result_commits(evals)) or 'not recorded'}; "
        f"report written at commit {report_commit() or 'not recorded'}; torch {_join(torch_versions)}.",
        "Every number below was read from the result files listed under Provenance, except rows and tables "
        "explicitly labelled as the paper's.",
        "",
    ]
    for name, why in (skipped or {}).items():
        lines += [f"> **{name} skipped:** {why}", ""]
    for section, built in rendered:
        lines += [f"## {section.title}", "", built.markdown.rstrip(), ""]
        for plot in section.figures:
            if plot.title != section.title:
                lines += [f"### {plot.title}", ""]
            lines += [
                f"![{plot.title}](figures/{plot.name}.png)",
                "",
                plot.caption + f" (PDF: `figures/{plot.name}.pdf`)",
                "",
            ]
    lines += ["## Provenance", "", "Files read:", ""]
    lines += [f"- `{path}`" for path in sources]
    return "\n".join(lines) + "\n"
