"""Report: tables (CSV, Markdown, LaTeX), figures (PNG, PDF) and REPORT.md from a results folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from suite.files import atomic_write
from suite.report import document, figures, tables
from suite.report.crop import build_crop
from suite.report.readers import ReportInputError, read_evals, read_profile, read_runs

__all__ = ["CropRequest", "ReportInputError", "build_report"]


@dataclass(frozen=True)
class CropRequest:
    """Which test image the visual comparison shows; `hr_dir` holds its HR image."""

    dataset: str
    scale: int
    hr_dir: Path
    image: str | None = None
    size: int = 64


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_csv(path: Path, frame) -> Path:
    return write_text(path, frame.to_csv(index=False))


def build_report(results: Path, out: Path, config_name: str | None = None, val_dataset: str | None = None,
                 crop: CropRequest | None = None) -> list[Path]:
    """Read every result under `results`, write tables/, figures/ and REPORT.md under `out`; returns
    the paths written. Raises ReportInputError naming the file when a result cannot be used."""
    results, out = Path(results), Path(out)
    evals = read_evals(results)
    if not evals:
        raise ReportInputError(f"{results}: no eval results (eval/<method>/<dataset>-x<scale>.json)")
    runs = read_runs(results)
    profile_path = results / "profile" / "profile.csv"
    profile = read_profile(profile_path) if profile_path.is_file() else None
    written: list[Path] = []
    sections: dict[str, str] = {}

    psnr = tables.psnr_table(evals)
    footnote = document.psnr_footnote(evals, runs)
    sections["psnr"] = tables.psnr_markdown(psnr, footnote)
    written += [write_csv(out / "tables/psnr_ssim.csv", psnr.frame),
                write_text(out / "tables/psnr_ssim.md", sections["psnr"]),
                write_text(out / "tables/psnr_ssim.tex", tables.psnr_latex(psnr, footnote))]

    training = tables.training_table(runs)
    sections["training"] = tables.training_markdown(training)
    written += [write_csv(out / "tables/training.csv", training),
                write_text(out / "tables/training.md", sections["training"])]

    drawn = []
    if profile is not None:
        speed = tables.speed_table(profile)
        sections["speed"] = tables.speed_markdown(speed, profile)
        written += [write_csv(out / "tables/speed.csv", speed), write_text(out / "tables/speed.md", sections["speed"])]
        for name, make in (("speedup", figures.speedup_figure), ("latency", figures.latency_figure),
                           ("memory", figures.memory_figure)):
            written += figures.save_figure(make(profile), out / "figures" / name)
            drawn.append(name)

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
    markdown = document.report_markdown(config_name or results.name, results, sections, drawn, sources, evals, runs)
    written.append(write_text(out / "REPORT.md", markdown))
    return written
