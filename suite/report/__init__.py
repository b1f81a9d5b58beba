"""Report: tables (CSV, Markdown, LaTeX), figures (PNG, PDF) and REPORT.md from a results folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from suite.files import write_text_atomic as write_text
from suite.report import document, figures, tables
from suite.report.crop import build_crop
from suite.report.paper import paper_row
from suite.report.readers import ReportInputError, read_analysis, read_evals, read_profile, read_runs

__all__ = ["CropRequest", "ReportInputError", "build_report"]


@dataclass(frozen=True)
class CropRequest:
    """Which test image the visual comparison shows; `hr_dir` holds its HR image."""

    dataset: str
    scale: int
    hr_dir: Path
    image: str | None = None
    size: int = 64


def write_csv(path: Path, frame) -> Path:
    return write_text(path, frame.to_csv(index=False))


def build_report(results: Path, out: Path, title: str | None = None, val_dataset: str | None = None,
                 crop: CropRequest | None = None, paper_rows: dict[str, str] | None = None,
                 analysis_dataset: str | None = None) -> list[Path]:
    """Read every result under `results`, write tables/, figures/ and REPORT.md under `out`; returns
    the paths written. `paper_rows`: eval method folder -> paper_values.yaml row to compare it with.
    `analysis_dataset`: the test set of the positional-bias comparison (default: the one most trained
    models were evaluated on). Raises ReportInputError naming the file when a result cannot be used."""
    results, out = Path(results), Path(out)
    evals = read_evals(results)
    if not evals:
        raise ReportInputError(f"{results}: no eval results (eval/<method>/<dataset>-x<scale>.json)")
    paper_rows = dict(paper_rows or {})
    for method, key in paper_rows.items():
        paper_row(key)  # an unknown row is an error naming the choices
        if not any(r.method == method for r in evals):
            raise ReportInputError(f"{results}/eval/{method}: no eval results for --paper-rows {method}={key}")
    runs = read_runs(results)
    profile_path = results / "profile" / "profile.json"
    profile = read_profile(profile_path) if profile_path.is_file() else None
    written: list[Path] = []
    sections: dict[str, str] = {}

    warnings = document.lock_warnings(evals, runs, profile)
    if warnings:
        sections["warnings"] = "\n\n".join(warnings)

    psnr = tables.psnr_table(evals)
    footnote = document.psnr_footnote(evals, runs)
    sections["psnr"] = tables.psnr_markdown(psnr, evals, footnote)
    written += [write_csv(out / "tables/psnr_ssim.csv", psnr.frame),
                write_text(out / "tables/psnr_ssim.md", sections["psnr"]),
                write_text(out / "tables/psnr_ssim.tex", tables.psnr_latex(psnr, evals, footnote))]

    if paper_rows:
        comparison = tables.paper_comparison(evals, paper_rows)
        sections["paper"] = tables.comparison_markdown(comparison, evals)
        written += [write_csv(out / "tables/paper_comparison.csv", comparison),
                    write_text(out / "tables/paper_comparison.md", sections["paper"])]

    sections["targets"] = tables.targets_markdown(tables.targets(evals, runs))
    written.append(write_text(out / "tables/targets.md", sections["targets"]))

    training = tables.training_table(runs)
    sections["training"] = tables.training_markdown(training)
    written += [write_csv(out / "tables/training.csv", training),
                write_text(out / "tables/training.md", sections["training"])]

    written += figures.save_figure(figures.teaser_figure(evals, runs, profile), out / "figures/teaser")
    drawn = ["teaser"]
    if profile is not None:
        speed = tables.speed_table(profile)
        sections["speed"] = tables.speed_markdown(speed, profile)
        written += [write_csv(out / "tables/speed.csv", speed), write_text(out / "tables/speed.md", sections["speed"])]
        for name, make in (("speedup", figures.speedup_figure), ("latency", figures.latency_figure),
                           ("memory", figures.memory_figure)):
            written += figures.save_figure(make(profile), out / "figures" / name)
            drawn.append(name)

    ablation = tables.rank_ablation_table(evals, runs)
    if any(run.rank is not None for run in runs) and len(ablation):
        sections["rank_ablation"] = tables.rank_ablation_markdown(ablation)
        written += [write_csv(out / "tables/rank_ablation.csv", ablation),
                    write_text(out / "tables/rank_ablation.md", sections["rank_ablation"])]
        written += figures.save_figure(figures.rank_ablation_figure(ablation), out / "figures/rank_ablation")
        drawn.append("rank_ablation")

    analysis = {tool: read_analysis(results, tool) for tool in ("bias", "lowrank", "windows")}
    if tables.compares_biases(runs):
        dataset, chosen = tables.comparison_dataset(evals, runs, analysis_dataset)
        compared = tables.biases_table(evals, runs, analysis["windows"], dataset)
        sections["biases"] = tables.biases_markdown(compared, evals, chosen)
        written += [write_csv(out / "tables/biases.csv", compared),
                    write_text(out / "tables/biases.md", sections["biases"])]
        written += figures.save_figure(figures.biases_figure(compared), out / "figures/biases")
        drawn.append("biases")

    analysis_sources = []
    for tool, name, markdown in (("bias", "bias_fields", tables.bias_fields_markdown),
                                 ("lowrank", "lowrank", tables.lowrank_markdown),
                                 ("windows", "windows", tables.windows_markdown)):
        table = analysis[tool]
        if table is None:
            continue
        sections[name] = markdown(table)
        written += [write_csv(out / f"tables/{name}.csv", table.frame),
                    write_text(out / f"tables/{name}.md", sections[name])]
        analysis_sources += list(table.paths)

    bicubic_val = {r.scale: r.psnr for r in evals if r.method == "bicubic" and r.dataset == val_dataset}
    written += figures.save_figure(figures.val_psnr_figure(runs, bicubic_val, val_dataset), out / "figures/val_psnr")
    drawn.append("val_psnr")

    if crop is not None:
        comparison = build_crop(results, evals, crop.dataset, crop.scale, crop.hr_dir, crop.image, crop.size)
        written += figures.save_figure(figures.crop_figure(comparison), out / "figures/crop")
        drawn.append("crop")

    sources = [r.path for r in evals]
    sources += [run.path / name for run in runs for name in ("summary.json", "train_log.csv")]
    sources += [profile.path] if profile is not None else []
    sources += analysis_sources
    markdown = document.report_markdown(title or f"`{results.name}`", results, sections, drawn, sources, evals, runs)
    written.append(write_text(out / "REPORT.md", markdown))
    return written
