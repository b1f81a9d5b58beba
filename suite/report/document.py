"""Provenance and prose of the report: the PSNR table's footnote and REPORT.md."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from pathlib import Path

import suite
from suite.report.readers import EvalResult, TrainRun

FIGURE_TITLES = {
    "speedup": "Speedup of RIB over RPB", "latency": "Latency against window size",
    "memory": "Peak memory against window size", "val_psnr": "Validation PSNR during training",
    "crop": "Visual comparison",
}
FIGURE_CAPTIONS = {
    "speedup": "Speedup of RIB over RPB (RPB time / RIB time) per window size, training step and inference, "
               "from one profile sweep. Above 1: RIB is faster. A bar replaced by \"OOM\" could not be "
               "computed because one side ran out of memory.",
    "latency": "Median milliseconds per iteration against window size (log scales) per positional bias, "
               "training step and inference. Crosses along the top: out of memory.",
    "memory": "Peak memory against window size per positional bias: the CUDA allocator's peak on a GPU, "
              "the growth of the process's peak resident memory on a CPU. Crosses: out of memory.",
    "val_psnr": "Validation PSNR (EMA weights) against training iterations for every run; dashed: bicubic "
                "on the same validation set.",
    "crop": "One test image: the full HR image with the crop marked, then the crop of HR, bicubic and each "
            "trained model. Titles give each method's PSNR over the whole image.",
}


def report_commit() -> str | None:
    """The suite checkout's commit when the report is written, with "+dirty" for local changes."""
    repo = Path(suite.__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if status else "")


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
    options = next((r.metric_options for r in evals if r.metric_options), None)
    protocol = "PSNR and SSIM on the Y channel of BT.601 YCbCr with `scale` border pixels cropped (pyiqa)"
    notes.append(f"Measured rows: {protocol}; metric options {options}." if options else f"Measured rows: {protocol}.")
    budgets = []
    for run in runs:
        summary = run.summary
        recipe = summary.get("config") if isinstance(summary.get("config"), dict) else {}
        data = recipe.get("data") if isinstance(recipe.get("data"), dict) else {}
        batch = summary.get("batch_size", data.get("batch_size"))
        patch = summary.get("lr_patch", data.get("lr_patch"))
        extra = ", ".join(part for part in (f"batch {batch}" if batch is not None else "",
                                            f"LR patch {patch}" if patch is not None else "") if part)
        wall = summary.get("wall_time_s")
        budgets.append(f"{run.name}: {int(summary['iterations'])} iterations"
                       + (f" ({extra})" if extra else "")
                       + (f", {float(wall):.0f} s wall" if wall is not None else ""))
    if budgets:
        notes.append("Training budget: " + "; ".join(budgets) + ".")
    devices = {run.summary.get("device") for run in runs} | {r.provenance.get("device") for r in evals}
    dtypes = {run.summary.get("dtype") for run in runs}
    notes.append(f"Device: {_join(devices)}; training dtype: {_join(dtypes)}.")
    commits = result_commits(evals)
    notes.append(f"Commit: {', '.join(commits) if commits else (report_commit() or 'not recorded')}.")
    return notes


def report_markdown(config_name: str, results: Path, sections: dict[str, str], figures: list[str],
                    sources: list[Path], evals: list[EvalResult], runs: list[TrainRun]) -> str:
    """REPORT.md: the tables (Markdown as written to tables/), the figures with captions, provenance."""
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    torch_versions = {r.provenance.get("torch") for r in evals} | {run.summary.get("torch_version") for run in runs}
    lines = [
        f"# Benchmark report: `{config_name}`",
        "",
        f"Written by `suite report` (suite {suite.__version__}, Python {platform.python_version()}) at {now} "
        f"from `{results}`. Evaluated at commit(s) {', '.join(result_commits(evals)) or 'not recorded'}; "
        f"report written at commit {report_commit() or 'not recorded'}; torch {_join(torch_versions)}.",
        "Every number below was read from the result files listed under Provenance, except rows and tables "
        "explicitly labelled as the paper's.",
        "",
    ]
    titles = {"psnr": "Reconstruction quality (PSNR / SSIM)", "training": "Training runs",
              "speed": "Speed and memory (profile sweep)"}
    for key, title in titles.items():
        if key in sections:
            lines += [f"## {title}", "", sections[key].rstrip(), ""]
    if figures:
        lines += ["## Figures", ""]
        for name in figures:
            lines += [f"### {FIGURE_TITLES[name]}", "", f"![{FIGURE_TITLES[name]}](figures/{name}.png)", "",
                      FIGURE_CAPTIONS[name] + f" (PDF: `figures/{name}.pdf`)", ""]
    lines += ["## Provenance", "", "Files read:", ""]
    lines += [f"- `{path}`" for path in sources]
    return "\n".join(lines) + "\n"
