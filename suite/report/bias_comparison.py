"""Section "Positional biases compared": every trained model side by side, with each bias's properties from the
registry, PSNR against the model without a positional bias (with its interval over test images), training
step time and the window extrapolation."""

from __future__ import annotations

import math
import re

import pandas as pd

from suite.models import biases as bias_registry
from suite.report.declare import Built, Contents, Plot, ReportInputs, Section, Table
from suite.report.differences import psnr_difference
from suite.report.markdown import (
    MISSING,
    absent,
    cells,
    column_key,
    interval_cell,
    markdown_table,
    model_title,
    protocol_caption,
    status_text,
)
from suite.report.readers import AnalysisTable, EvalResult, TrainRun
from suite.stats import LEVEL, RESAMPLES, unpaired_ratio

BIAS_COMPARISON_COLUMNS = (
    "run",
    "model",
    "preset",
    "bias",
    "label",
    "rank",
    "seed",
    "scale",
    "flash",
    "fixed_window",
    "params",
    "dataset",
    "psnr",
    "ssim",
    "psnr_vs_none",
    "psnr_vs_none_low",
    "psnr_vs_none_high",
    "psnr_vs_none_images",
    "median_step_time_s",
    "step_time_vs_rib",
    "step_time_vs_rib_low",
    "step_time_vs_rib_high",
    "infer_ms",
)
REFUSED = "refused"  # the status `suite analyze windows` gives a factor the model cannot run at
# "window sizes 16 16 (trained 32 32): " before the layer's own error (suite.evaluate.inference.apply_window_sizes).
_WINDOWS_PREFIX = re.compile(r"^window sizes [^:]*\(trained [^)]*\):\s*")


def compares_biases(biases) -> bool:
    """Whether the report has this section: trained models of two positional biases or more (the report passes
    its runs' biases, the workflow its configured models')."""
    return len(set(biases)) >= 2


def comparison_dataset(
    evals: list[EvalResult], runs: list[TrainRun], dataset: str | None = None
) -> tuple[str | None, str]:
    """The test set of the comparison and how it was chosen: `dataset` when given (the workflow passes its
    analysis dataset, the first of eval.datasets unless set), else the one with the most evaluations of the
    trained runs (ties: the PSNR table's column order); None when no trained run was evaluated."""
    if dataset is not None:
        return dataset, "the workflow's analysis dataset, the first of its eval datasets unless set"
    trained = {(run.model, run.scale) for run in runs}
    counts: dict[str, int] = {}
    for result in evals:
        if (result.method, result.scale) in trained:
            counts[result.dataset] = counts.get(result.dataset, 0) + 1
    if not counts:
        return None, "no trained model was evaluated"
    dataset = min(counts, key=lambda d: (-counts[d], column_key((d, 0))))
    return dataset, "the test set most trained models were evaluated on"


def refusal_clause(reason: str) -> str:
    """The first clause of a window refusal, in the layer's own words without the prefix naming the windows:
    "an RPB layer trained at window 32 cannot run at window 16"."""
    text = _WINDOWS_PREFIX.sub("", "" if absent(reason) else str(reason)).strip()
    return re.split(r"[:;]\s", text, maxsplit=1)[0].strip()


def window_factor_column(kind: str, factor: float) -> str:
    """ "psnr_change_x0.5", "status_x2", "reason_x1.5": the comparison's cells for one window factor."""
    return f"{kind}_x{factor:g}"


def window_factors_of(frame: pd.DataFrame) -> list[float]:
    """The window factors a comparison frame has columns for, ascending (1 among them where any ran)."""
    return sorted(float(column.removeprefix("status_x")) for column in frame.columns if column.startswith("status_x"))


def biases_table(
    evals: list[EvalResult], runs: list[TrainRun], windows: AnalysisTable | None, dataset: str | None
) -> pd.DataFrame:
    """One row per trained run (the runs' order: preset, scale, then the registry's order of biases; a
    rank-ablation model is its own row): the bias's properties from the registry (flash kernels, tied to its
    window), params and median training step from the run's summary, PSNR/SSIM on `dataset` from its eval, the
    PSNR difference to the no-bias run and the step-time ratio to the RIB run of the same preset and scale,
    inference ms at the trained windows and the PSNR change (or the refusal) at every other window factor from
    its `suite analyze windows` table."""
    scored = {(r.method, r.scale): r for r in evals if r.dataset == dataset}
    plain = {(run.preset, run.scale, run.bias, run.seed): run for run in runs if run.rank is None}
    by_run = {name: group for name, group in windows.frame.groupby("run", sort=False)} if windows is not None else {}
    factors = sorted({float(f) for f in windows.frame["factor"]}) if windows is not None else []
    records = []
    for run in runs:
        spec = bias_registry.REGISTRY[run.bias]
        result = scored.get((run.model, run.scale))
        none, rib = (plain.get((run.preset, run.scale, bias, run.seed)) for bias in ("none", "rib"))
        none_result = scored.get((none.model, run.scale)) if none is not None else None
        step = run.summary.get("median_step_time_s")
        interval = psnr_difference([result], [none_result]) if run is not none and result and none_result else None
        steps = (
            unpaired_ratio(run.step_times, rib.step_times)
            if rib is not None and run.step_times and rib.step_times
            else None
        )
        record = {
            "run": run.name,
            "model": run.model,
            "preset": run.preset,
            "bias": run.bias,
            "label": spec.label,
            "rank": run.rank,
            "seed": run.seed,
            "scale": run.scale,
            "flash": spec.flash,
            "fixed_window": spec.fixed_window,
            "params": run.summary.get("params"),
            "dataset": dataset,
            "psnr": result.psnr if result else None,
            "ssim": result.ssim if result else None,
            "psnr_vs_none": result.psnr - none_result.psnr if result and none_result and run is not none else None,
            "psnr_vs_none_low": interval.low if interval else None,
            "psnr_vs_none_high": interval.high if interval else None,
            "psnr_vs_none_images": interval.n if interval else None,
            "median_step_time_s": step,
            "step_time_vs_rib": step / rib.summary["median_step_time_s"] if rib is not None and step else None,
            "step_time_vs_rib_low": steps.low if steps else None,
            "step_time_vs_rib_high": steps.high if steps else None,
            "infer_ms": None,
        }
        rows = by_run.get(run.name)
        for factor in factors:
            row = (
                None
                if rows is None
                else next((r for r in rows.to_dict("records") if float(r["factor"]) == factor), None)
            )
            status = "" if row is None else str(row["status"])
            for kind in ("psnr_change", "psnr_change_low", "psnr_change_high"):
                record[window_factor_column(kind, factor)] = None if row is None else row[kind]
            record[window_factor_column("status", factor)] = status
            record[window_factor_column("reason", factor)] = refusal_clause(row["reason"]) if status == REFUSED else ""
            if factor == 1.0 and status == "ok":
                record["infer_ms"] = row["ms_median"]
        records.append(record)
    columns = [
        *BIAS_COMPARISON_COLUMNS,
        *(
            window_factor_column(kind, factor)
            for factor in factors
            for kind in ("psnr_change", "psnr_change_low", "psnr_change_high", "status", "reason")
        ),
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def _verdict_cell(record: dict) -> str:
    if absent(record["psnr_vs_none_low"]):
        return MISSING
    resolved = record["psnr_vs_none_low"] > 0 or record["psnr_vs_none_high"] < 0
    return "resolved" if resolved else "not resolved"


def _window_cell(record: dict, factor: float) -> str:
    change, status = record[window_factor_column("psnr_change", factor)], record[window_factor_column("status", factor)]
    if status == REFUSED:
        reason = record[window_factor_column("reason", factor)]
        return f"{REFUSED} ({reason})" if reason else REFUSED
    if not absent(change):
        low, high = (record[window_factor_column(kind, factor)] for kind in ("psnr_change_low", "psnr_change_high"))
        return f"{change:+.5f}" + ("" if absent(low) else f" [{low:+.5f}, {high:+.5f}]")
    return status_text(status) if status else MISSING


def biases_markdown(frame: pd.DataFrame, evals: list[EvalResult], chosen: str = "") -> str:
    """The comparison's Markdown: what each column is, the table, and what it does not show. `chosen`: how the
    test set was chosen (`comparison_dataset`)."""
    factors = [factor for factor in window_factors_of(frame) if factor != 1.0]
    header = [
        "Model",
        "Scale",
        "Flash kernels",
        "Tied to window",
        "Params",
        "PSNR (dB)",
        "SSIM",
        f"PSNR - no-bias (dB) [{LEVEL:.0%} interval over images]",
        "Over images",
        "Median training step (s)",
        f"Step time / RIB [{LEVEL:.0%} interval]",
        "Inference ms / image",
        *(f"Window x{factor:g}: PSNR change" for factor in factors),
    ]
    before = {"scale": "x{}", "params": "{:,.0f}", "psnr": "{:.4f}", "ssim": "{:.4f}"}
    after = {"median_step_time_s": "{:.4f}"}
    rows = []
    for record in frame.to_dict("records"):
        yes_no = ["yes" if record[key] else "no" for key in ("flash", "fixed_window")]
        first = cells(record, before)
        rows.append(
            [
                model_title(record["model"]),
                first[0],
                *yes_no,
                *first[1:],
                interval_cell(record, "psnr_vs_none", "{:+.4f}"),
                _verdict_cell(record),
                *cells(record, after),
                interval_cell(record, "step_time_vs_rib", "{:.2f}"),
                *cells(record, {"infer_ms": "{:.1f}"}),
                *(_window_cell(record, factor) for factor in factors),
            ]
        )
    images = sorted({int(n) for n in frame["psnr_vs_none_images"] if not absent(n)})
    datasets = sorted({str(d) for d in frame["dataset"] if not absent(d)})
    scored = [r for r in evals if r.dataset in datasets]
    return (
        f"Every trained model side by side, one row per training run (a rank-ablation model is a row of its own). "
        f"From the bias registry (`suite/models/biases.py`): flash kernels, whether flash attention can run the "
        f"bias (no dense N x N term added to the logits); tied to window, whether its weights hold one entry per "
        f"token (pair) of the trained window, so that it cannot run at another. From each run's summary: params and "
        f"the median training step time; step time / RIB is over the RIB run of the same preset, scale and seed "
        f"(the ratio of the runs' median step times, its interval from resampling each run's logged steps on its own: "
        f"the runs trained one after the other, so it does not hold what changed on the machine between them). PSNR "
        f"(dB, Y channel) and SSIM: EMA weights on {', '.join(datasets) or 'no test set'}"
        + (f" ({chosen})" if chosen else "")
        + f", {protocol_caption(scored)}; PSNR - no-bias subtracts the model without a positional bias of the same "
        f"preset and scale, with the {LEVEL:.0%} percentile-bootstrap interval of the mean paired difference over "
        f"the test images ({', '.join(map(str, images)) or 'no'} images, {RESAMPLES:,} resamples, per-image PSNR "
        f"from the eval JSONs); over images: resolved where that interval excludes 0, not resolved where it does "
        f"not. Inference ms / image: the median at the trained windows on one test image, from the "
        f"model's window-extrapolation table; each model was timed in its own `suite analyze windows` run, not "
        f"interleaved with the other models, so a ratio between two models also carries whatever changed on the "
        f"machine between their runs. Window xF: the PSNR change with every attention window scaled by F, against "
        f"the trained windows, with its {LEVEL:.0%} interval over the test images; refused: the model cannot run "
        f"there (the first clause of the layer's error). "
        f"{MISSING}: not measured.\n\n"
        + markdown_table(header, rows)
        + (
            "\nEach row is one training run (one seed), compared with the no-bias run of the same seed. Over "
            "seeds, with intervals that resample seeds too: section Results over seeds.\n"
            if frame["seed"].nunique() > 1
            else "\nEach row is a single run (one seed). The intervals cover the sampling of test images only: "
            "another training seed moves a model by more than that at this size, so a difference resolved over "
            "images is not yet resolved between the biases, and the table ranks no bias above another (train "
            "several seeds, `train.seeds`, for intervals over seeds).\n"
        )
    )


# --- figure ---------------------------------------------------------------------------------------


def _value(value: object) -> float | None:
    """A table cell as a number, None where it is empty (None, NaN, "")."""
    if value is None or value == "":
        return None
    number = float(value)
    return None if math.isnan(number) else number


def comparison_labels(frame: pd.DataFrame) -> list[str]:
    """Per row of `biases_table`: the model's title ("tiny RIB rank 8"), without the preset when every
    row shares it ("RIB rank 8"), with the scale when the rows have several."""
    one_preset = frame["preset"].nunique() == 1
    several_scales = frame["scale"].nunique() > 1
    labels = []
    for record in frame.to_dict("records"):
        title = model_title(record["model"])
        if one_preset:
            title = title.removeprefix(f"{record['preset']} ")
        labels.append(title + (f" x{record['scale']}" if several_scales else ""))
    return labels


def biases_figure(frame: pd.DataFrame):
    """Every trained model from `biases_table`, in its bias's colour and marker: left, PSNR against the
    median training step time, each point labelled; right, the PSNR change against the window factor, the
    factors a model refused as crosses along the top."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    from suite.report.plotting import BIAS_COLORS, BIAS_MARKERS, new_figure

    fig = new_figure(13.0, 4.8)
    left, right = fig.subplots(1, 2)
    records, labels = frame.to_dict("records"), comparison_labels(frame)
    factors = window_factors_of(frame)
    top = blended_transform_factory(right.transData, right.transAxes)
    refusing = 0
    seen: dict[str, int] = {}  # models of one bias so far: the second and later get other line styles
    for record, label in zip(records, labels):
        style = {"color": BIAS_COLORS.get(record["bias"], "black"), "marker": BIAS_MARKERS.get(record["bias"], "D")}
        linestyle = ("-", "--", ":", "-.")[seen.get(record["bias"], 0) % 4]
        seen[record["bias"]] = seen.get(record["bias"], 0) + 1
        psnr, step = _value(record["psnr"]), _value(record["median_step_time_s"])
        if psnr is not None and step is not None:
            left.scatter([step], [psnr], s=50, zorder=3, label=label, **style)
            left.annotate(label, (step, psnr), fontsize=7, xytext=(5, 3), textcoords="offset points")
        statuses = {factor: record[window_factor_column("status", factor)] for factor in factors}
        if not any(statuses.values()):  # no window-extrapolation table for this model
            continue
        points = [(factor, _value(record[window_factor_column("psnr_change", factor)])) for factor in factors]
        points = [(factor, change) for factor, change in points if change is not None]
        if points:
            right.plot(*zip(*points), label=label, linestyle=linestyle, **style)
        refused = [factor for factor in factors if statuses[factor] == REFUSED]
        if refused:  # one row of crosses per refusing model, so they do not hide each other
            right.scatter(
                refused,
                [0.96 - 0.045 * refusing] * len(refused),
                marker="x",
                s=60,
                color=style["color"],
                transform=top,
                clip_on=False,
                zorder=5,
            )
            refusing += 1
    datasets = sorted({str(d) for d in frame["dataset"] if isinstance(d, str)})
    left.set_xlabel("median training step (s), from each run's summary")
    left.set_ylabel("PSNR (dB, Y channel)")
    left.set_title(f"PSNR on {', '.join(datasets) or 'nothing'} against training step time", fontsize=10)
    left.grid(True, alpha=0.3)
    if not left.collections:
        left.text(0.5, 0.5, "no model with both a PSNR and a step time", transform=left.transAxes, ha="center")
    right.axhline(0.0, color="black", linewidth=0.8)
    if factors:
        right.set_xscale("log", base=2)  # 0.5 and 2 equally far from 1
        right.set_xticks(factors, [f"{factor:g}" for factor in factors])
        right.minorticks_off()
        low, high = right.get_ylim()
        right.set_ylim(low, high + (high - low) * (0.15 + 0.06 * refusing))  # room for the crosses
    right.set_xlabel("window factor (x the trained windows), log scale")
    right.set_ylabel("PSNR change against factor 1 (dB)")
    right.set_title("Window extrapolation", fontsize=10)
    right.grid(True, alpha=0.3)
    handles, names = right.get_legend_handles_labels()
    if refusing:
        handles.append(Line2D([], [], marker="x", linestyle="none", color="black"))
        names.append("refused (tied to its window)")
    if handles:
        right.legend(handles, names, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    else:
        right.text(0.5, 0.5, "no window-extrapolation tables", transform=right.transAxes, ha="center")
    fig.suptitle(
        "Positional biases compared: single runs, one seed each; no ranking (the intervals of "
        "tables/biases.md cover test images, not seeds)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def build(inputs: ReportInputs) -> Built:
    dataset, chosen = comparison_dataset(inputs.evals, inputs.runs, inputs.analysis_dataset)
    frame = biases_table(inputs.evals, inputs.runs, inputs.analysis.get("windows"), dataset)
    markdown = biases_markdown(frame, inputs.evals, chosen)
    return Built(markdown, {"biases.csv": frame, "biases.md": markdown}, data=frame)


def present(contents: Contents) -> bool:
    return contents.compared_biases


SECTION = Section(
    key="biases",
    title="Positional biases compared",
    build=build,
    present=present,
    category="Analysis",
    tables=(
        Table(
            "biases",
            "Positional biases compared: every trained model (one per bias, rank-ablation models as "
            "their own rows) with its bias's flash compatibility and window tie from the registry, parameters, "
            "test PSNR/SSIM and its difference to the no-bias model with its 95% interval over test images, "
            "median training step time and its ratio to RIB, inference ms at the trained windows (each model "
            "timed on its own, not interleaved across models) and the PSNR change at each window factor, or "
            "the refusal of a bias tied to its window. Single runs, one seed each: the intervals cover the test "
            "images, not the training seed, so the table ranks no bias above another.",
        ),
    ),
    figures=(
        Plot(
            "biases",
            "Positional biases compared",
            "Every trained model in its bias's colour and marker (tables/biases.csv). Left: PSNR on the "
            "comparison's test set against the run's median training step time from its summary. Right: the "
            "PSNR change with every attention window scaled by a factor, against factor 1 (the trained "
            "windows), from `suite analyze windows`; crosses along the top: the factors the model refused (its "
            "bias is tied to its window). Single runs, one seed each: the table's intervals cover the test "
            "images, not the training seed, so neither panel ranks the biases.",
            lambda inputs, built: biases_figure(built.data),
        ),
    ),
)
