"""Section "Results over seeds": where a model was trained with several seeds (train.seeds), each model's
PSNR per seed, their mean and spread, and its difference to the model without a positional bias and to RPB
with intervals that resample seeds and test images."""

from __future__ import annotations

import statistics

import pandas as pd

from suite.report.declare import Built, Contents, ReportInputs, Section, Table
from suite.report.differences import (
    method_note,
    over_text,
    psnr_difference,
    seed_groups,
    spread,
    verdict,
)
from suite.report.markdown import MISSING, absent, cells, interval_cell, markdown_table, model_title
from suite.report.readers import EvalResult, TrainRun, method_key

SEEDS_COLUMNS = (
    "model",
    "preset",
    "bias",
    "dataset",
    "scale",
    "seeds",
    "psnr_per_seed",
    "psnr",
    "psnr_sd",
    "ssim",
    "psnr_vs_none",
    "psnr_vs_none_low",
    "psnr_vs_none_high",
    "verdict_vs_none",
    "psnr_vs_rpb",
    "psnr_vs_rpb_low",
    "psnr_vs_rpb_high",
    "verdict_vs_rpb",
    "interval_over",
)
REFERENCES = ("none", "rpb")  # every model is compared with these of the same preset, test set and scale


def several_seeds(runs: list[TrainRun]) -> bool:
    """Whether some model was trained with more than one seed."""
    groups = [(run.group, run.scale) for run in runs]
    return len(groups) != len(set(groups))


def seeds_table(evals: list[EvalResult]) -> pd.DataFrame:
    """One row per trained model (over its seeds), test set and scale."""
    groups = seed_groups(evals)
    records = []
    for model, dataset, scale in sorted(groups, key=lambda k: (k[1], k[2], method_key(k[0]))):
        scored = groups[(model, dataset, scale)]
        if not scored[0].trained:
            continue
        record = {
            "model": model,
            "preset": scored[0].preset,
            "bias": scored[0].bias,
            "dataset": dataset,
            "scale": scale,
            "seeds": ";".join(str(r.seed if r.seed is not None else "-") for r in scored),
            "psnr_per_seed": ";".join(f"{r.psnr:.4f}" for r in scored),
            "psnr": statistics.mean(r.psnr for r in scored),
            "psnr_sd": spread([r.psnr for r in scored]),
            "ssim": statistics.mean(r.ssim for r in scored),
        }
        overs = []
        for index, reference in enumerate(REFERENCES):
            other = groups.get((f"{scored[0].preset}-{reference}", dataset, scale))
            # itself, or an earlier reference (no bias - RPB is RPB - no bias's mirror): not compared
            compared = other is not None and scored[0].bias not in REFERENCES[: index + 1]
            interval = psnr_difference(scored, other) if compared else None
            record[f"psnr_vs_{reference}"] = interval.mean if interval else None
            record[f"psnr_vs_{reference}_low"] = interval.low if interval else None
            record[f"psnr_vs_{reference}_high"] = interval.high if interval else None
            record[f"verdict_vs_{reference}"] = verdict(interval) if interval else None
            overs.append(over_text(interval))
        record["interval_over"] = next((over for over in overs if over), None)
        records.append(record)
    return pd.DataFrame.from_records(records, columns=list(SEEDS_COLUMNS))


def seeds_markdown(frame: pd.DataFrame) -> str:
    header = [
        "Model",
        "Test set",
        "Seeds",
        "PSNR per seed (dB)",
        "Mean (dB)",
        "Spread (sd)",
        "SSIM (mean)",
        "PSNR - no-bias [95% interval]",
        "Verdict",
        "PSNR - RPB [95% interval]",
        "Verdict",
    ]
    rows = []
    sentences = []
    for record in frame.to_dict("records"):
        rows.append(
            [
                model_title(record["model"]),
                f"{record['dataset']} x{record['scale']}",
                str(record["seeds"]).replace(";", ", "),
                str(record["psnr_per_seed"]).replace(";", ", "),
                *cells(record, {"psnr": "{:.4f}", "psnr_sd": "{:.4f}", "ssim": "{:.4f}"}),
                interval_cell(record, "psnr_vs_none", "{:+.4f}"),
                MISSING if absent(record["verdict_vs_none"]) else record["verdict_vs_none"],
                interval_cell(record, "psnr_vs_rpb", "{:+.4f}"),
                MISSING if absent(record["verdict_vs_rpb"]) else record["verdict_vs_rpb"],
            ]
        )
        for reference, label in (("none", "no-bias"), ("rpb", "RPB")):
            if not absent(record[f"verdict_vs_{reference}"]):
                sentences.append(
                    f"- {model_title(record['model'])} - {label}, {record['dataset']} x{record['scale']}: "
                    + _sentence(record, reference, label)
                )
    return (
        "Each model trained once per seed (`train.seeds`): its PSNR (dB, Y channel, EMA weights) per seed, "
        "their mean and standard deviation, and its difference to the model without a positional bias and to "
        "RPB of the same preset, paired by seed and test image.\n\n"
        + markdown_table(header, rows)
        + "\n"
        + method_note(frame["interval_over"])
        + "\n\n"
        + ("\n".join(sentences) + "\n" if sentences else "")
    )


def _sentence(record: dict, reference: str, label: str) -> str:
    mean, low, high = (record[f"psnr_vs_{reference}{suffix}"] for suffix in ("", "_low", "_high"))
    resolved = low > 0 or high < 0
    return f"{mean:+.4f} dB [{low:+.4f}, {high:+.4f}]: " + (
        f"resolved, {'higher' if low > 0 else 'lower'} than {label} (the interval excludes 0)."
        if resolved
        else "not resolved at this size (the interval contains 0)."
    )


def build(inputs: ReportInputs) -> Built:
    frame = seeds_table(inputs.evals)
    markdown = seeds_markdown(frame)
    return Built(markdown, {"seeds.csv": frame, "seeds.md": markdown})


def present(contents: Contents) -> bool:
    return contents.seeds


SECTION = Section(
    key="seeds",
    title="Results over seeds",
    build=build,
    present=present,
    tables=(
        Table(
            "seeds",
            "Every model trained with several seeds: PSNR per seed, mean and spread over seeds, and the "
            "difference to no bias and to RPB with 95% intervals that resample seeds and test images.",
        ),
    ),
)
