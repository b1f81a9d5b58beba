"""Section "Training runs": each run's summary and last validation, and validation PSNR during training."""

from __future__ import annotations

import pandas as pd

from suite.report.declare import Built, Plot, ReportInputs, Section, Table
from suite.report.markdown import MISSING, absent, markdown_table, method_labels, model_title
from suite.report.readers import TrainRun

TRAINING_COLUMNS = (
    "run",
    "preset",
    "bias",
    "scale",
    "iterations",
    "median_step_time_s",
    "wall_time_s",
    "params",
    "device",
    "precision",
    "seed",
    "final_val_iteration",
    "final_val_psnr",
)


def training_table(runs: list[TrainRun]) -> pd.DataFrame:
    records = []
    for run in runs:
        last = run.log.iloc[-1] if len(run.log) else None
        records.append(
            {
                "run": run.name,
                "preset": run.preset,
                "bias": method_labels(run.model)[1],
                "scale": run.scale,
                **{key: run.summary.get(key) for key in TRAINING_COLUMNS[4:11]},
                "final_val_iteration": None if last is None else int(last["iteration"]),
                "final_val_psnr": None if last is None else float(last["val_psnr"]),
            }
        )
    return pd.DataFrame.from_records(records, columns=list(TRAINING_COLUMNS))


def training_markdown(frame: pd.DataFrame) -> str:
    header = [
        "Run",
        "Preset",
        "Bias",
        "Scale",
        "Iterations",
        "Median step (s)",
        "Wall (s)",
        "Params",
        "Device",
        "Precision",
        "Seed",
        "Last validation at",
        "Val PSNR (dB)",
    ]
    formats = {
        "median_step_time_s": "{:.3f}",
        "wall_time_s": "{:.0f}",
        "final_val_psnr": "{:.2f}",
        "iterations": "{:.0f}",
        "params": "{:,.0f}",
    }
    rows = []
    for record in frame.to_dict("records"):
        rows.append(
            [MISSING if absent(value) else formats.get(key, "{}").format(value) for key, value in record.items()]
        )
    return markdown_table(header, rows)


def val_psnr_figure(runs: list[TrainRun], bicubic: dict[int, float], val_dataset: str | None):
    """Validation PSNR against iteration per run; dashed lines: bicubic on the validation set."""
    from suite.report.plotting import BIAS_COLORS, new_figure

    fig = new_figure(6.4, 4.2)
    ax = fig.subplots()
    styles = ["-", "--", ":", "-."]
    presets = sorted({run.preset for run in runs})
    for run in runs:
        style = styles[presets.index(run.preset) % len(styles)]
        ax.plot(
            run.log["iteration"],
            run.log["val_psnr"],
            linestyle=style,
            marker="o",
            markersize=3,
            color=BIAS_COLORS.get(run.bias),
            label=f"{model_title(run.model)} x{run.scale}",
        )
    for scale, psnr in sorted(bicubic.items()):
        ax.axhline(psnr, color="black", linestyle=(0, (4, 3)), linewidth=1, label=f"bicubic x{scale} ({psnr:.2f} dB)")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("validation PSNR (dB, Y channel)")
    ax.set_title("Validation PSNR during training" + (f" ({val_dataset})" if val_dataset else ""))
    ax.grid(True, alpha=0.3)
    if runs or bicubic:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no training runs found", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    return fig


def draw_val_psnr(inputs: ReportInputs, built: Built):
    bicubic = {r.scale: r.psnr for r in inputs.evals if r.method == "bicubic" and r.dataset == inputs.val_dataset}
    return val_psnr_figure(inputs.runs, bicubic, inputs.val_dataset)


def build(inputs: ReportInputs) -> Built:
    frame = training_table(inputs.runs)
    markdown = training_markdown(frame)
    return Built(markdown, {"training.csv": frame, "training.md": markdown})


SECTION = Section(
    key="training",
    title="Training runs",
    build=build,
    tables=(
        Table(
            "training",
            "Training runs: iterations, median step time, wall time, parameters, device, dtype and "
            "seed, read from each run's summary.json, with the final validation PSNR from its train_log.csv.",
        ),
    ),
    figures=(
        Plot(
            "val_psnr",
            "Validation PSNR during training",
            "Validation PSNR (EMA weights) against training iterations for every run; dashed: bicubic on the "
            "same validation set.",
            draw_val_psnr,
        ),
    ),
)
