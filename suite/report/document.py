"""Provenance and prose of the report: the PSNR table's footnote and REPORT.md."""

from __future__ import annotations

import datetime as _dt
import platform
from pathlib import Path

import suite
from suite.env import run_record
from suite.report.readers import EvalResult, Profile, TrainRun, lock_mismatches

FIGURE_TITLES = {
    "teaser": "The paper's teaser, from this run's results",
    "speedup": "Speedup of RIB over RPB", "latency": "Latency against window size",
    "memory": "Peak memory against window size", "val_psnr": "Validation PSNR during training",
    "crop": "Visual comparison", "rank_ablation": "Rank ablation", "biases": "Positional biases compared",
}
FIGURE_CAPTIONS = {
    "teaser": "The layout of the paper's teaser: PSNR per scale (Urban100 where measured, else the run's test "
              "set); training seconds per iteration and peak memory; inference latency and peak memory. "
              "Solid bars and lines: this run's result files (eval JSONs, the profile sweep, each bias's "
              "fastest backend); hatched bars and dashed lines: the paper's values. The title says what was "
              "measured (models, device) and at which settings.",
    "speedup": "Speedup of RIB over RPB (RPB time / RIB time) per window size, training step and inference, "
               "from one profile sweep. Above 1: RIB is faster. A bar replaced by \"OOM\" could not be "
               "computed because one side ran out of memory.",
    "latency": "Median milliseconds per iteration against window size (log scales) per positional bias "
               "(its fastest backend at each point), training step and inference. Crosses along the top: "
               "the bias did not run there (out of memory, ...).",
    "memory": "Peak memory against window size per positional bias (its fastest backend at each point): the "
              "CUDA allocator's peak on a GPU, the growth of the process's peak resident memory on a CPU. "
              "Crosses: did not run.",
    "val_psnr": "Validation PSNR (EMA weights) against training iterations for every run; dashed: bicubic "
                "on the same validation set.",
    "crop": "One test image: the full HR image with the crop marked, then the crop of HR, bicubic and each "
            "trained model. Titles give each method's PSNR over the whole image.",
    "rank_ablation": "PSNR on the test set against RIB's rank R (log scale; every layer at R), the same recipe and "
                     "seed; dashed: the model without a positional bias. Dotted, right axis: each run's median "
                     "training step time from its summary (the runs trained one at a time).",
    "biases": "Every trained model in its bias's colour and marker (tables/biases.csv). Left: PSNR on the comparison's "
              "test set against the run's median training step time from its summary. Right: the PSNR change with "
              "every attention window scaled by a factor, against factor 1 (the trained windows), from `suite analyze "
              "windows`; crosses along the top: the factors the model refused (its bias is tied to its window). "
              "Single runs, one seed each: the table's intervals cover the test images, not the training seed, "
              "so neither panel ranks the biases.",
}


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
        notes.append(f"Metric protocol `{name}`: {options.get('description', 'not described')} "
                     f"(pyiqa {options.get('pyiqa_version', '?')}; every option in each eval JSON's metric_options).")
    budgets = []
    for run in runs:
        summary = run.summary
        wall = summary.get("wall_time_s")
        budgets.append(f"{run.name}: {int(summary['iterations'])} iterations (batch {summary.get('global_batch')}, "
                       f"LR patch {summary.get('lr_patch')})" + (f", {float(wall):.0f} s wall" if wall is not None else ""))
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
            lines.append(f"> **Warning:** `{path}`: its environment could not be checked against the lock "
                         f"({lock['error']}).")
            continue
        differences = lock.get("differences") or []
        shown = "; ".join(map(str, differences[:5])) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
        lock_file = f"`{lock['lock_file']}`" if lock.get("lock_file") else "(no lock file found)"
        lines.append(f"> **Warning:** `{path}` was produced in an environment that did not match the lock "
                     f"{lock_file}" + (f" ({shown})" if shown else "") + ".")
    return lines


SECTION_TITLES = {"warnings": "Environment warnings", "psnr": "Reconstruction quality (PSNR / SSIM)",
                  "paper": "Measured against the paper", "targets": "Targets",
                  "training": "Training runs", "rank_ablation": "Rank ablation",
                  "biases": "Positional biases compared",
                  "speed": "Speed and memory (profile sweep)", "bias_fields": "Learned positional bias",
                  "lowrank": "RPB to flash by low rank", "windows": "Window extrapolation"}


def report_markdown(title: str, results: Path, sections: dict[str, str], figures: list[str],
                    sources: list[Path], evals: list[EvalResult], runs: list[TrainRun]) -> str:
    """REPORT.md: the tables (Markdown as written to tables/), the figures with captions, provenance."""
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    torch_versions = {r.provenance.get("torch") for r in evals} | {
        (run.summary.get("provenance") or {}).get("torch") for run in runs}
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
    for key, heading in SECTION_TITLES.items():
        if key in sections:
            lines += [f"## {heading}", "", sections[key].rstrip(), ""]
    if figures:
        lines += ["## Figures", ""]
        for name in figures:
            lines += [f"### {FIGURE_TITLES[name]}", "", f"![{FIGURE_TITLES[name]}](figures/{name}.png)", "",
                      FIGURE_CAPTIONS[name] + f" (PDF: `figures/{name}.pdf`)", ""]
    lines += ["## Provenance", "", "Files read:", ""]
    lines += [f"- `{path}`" for path in sources]
    return "\n".join(lines) + "\n"
