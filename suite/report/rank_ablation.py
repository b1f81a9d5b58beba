"""Section "Rank ablation": RIB at each rank R (every layer) beside the model without a positional bias, the
same recipe and seeds: PSNR (mean over seeds) with its difference to no bias and that difference's interval,
and median training step time."""

from __future__ import annotations

import statistics

import pandas as pd

from suite.report.declare import Built, Contents, Plot, ReportInputs, Section, Table
from suite.report.differences import method_note, over_text, psnr_difference, seed_groups, spread, verdict
from suite.report.markdown import absent, cells, interval_cell, markdown_table
from suite.report.readers import EvalResult, TrainRun, method_key

RANK_ABLATION_COLUMNS = (
    "model",
    "preset",
    "bias",
    "rank",
    "scale",
    "dataset",
    "seeds",
    "psnr",
    "psnr_sd",
    "ssim",
    "psnr_vs_none",
    "psnr_vs_none_low",
    "psnr_vs_none_high",
    "verdict",
    "interval_over",
    "median_step_time_s",
    "wall_time_s",
    "params",
)


def rank_ablation_table(evals: list[EvalResult], runs: list[TrainRun]) -> pd.DataFrame:
    """The rank ablation: every RIB model trained at one rank ("<preset>-rib-r<R>") and every model without
    a positional bias, per test set and scale, over its seeds: mean PSNR and its spread, SSIM, the difference
    to the no-bias model with its interval (over images and seeds), and the median of the runs' median
    training steps."""
    by_group: dict[tuple[str, int], list[TrainRun]] = {}
    for run in runs:
        if run.rank is not None or run.bias == "none":
            by_group.setdefault((run.group, run.scale), []).append(run)
    groups = seed_groups(evals)
    records = []
    for model, dataset, scale in sorted(groups, key=lambda k: (k[1], k[2], method_key(k[0]))):
        found = by_group.get((model, scale))
        if found is None:
            continue
        scored, run = groups[(model, dataset, scale)], found[0]
        none = groups.get((f"{run.preset}-none", dataset, scale))
        interval = psnr_difference(scored, none) if none is not None and run.bias != "none" else None
        records.append(
            {
                "model": model,
                "preset": run.preset,
                "bias": run.bias,
                "rank": run.rank,
                "scale": run.scale,
                "dataset": dataset,
                "seeds": len(scored),
                "psnr": statistics.mean(r.psnr for r in scored),
                "psnr_sd": spread([r.psnr for r in scored]),
                "ssim": statistics.mean(r.ssim for r in scored),
                "psnr_vs_none": interval.mean if interval else None,
                "psnr_vs_none_low": interval.low if interval else None,
                "psnr_vs_none_high": interval.high if interval else None,
                "verdict": verdict(interval) if interval else None,
                "interval_over": over_text(interval),
                "median_step_time_s": statistics.median(r.summary["median_step_time_s"] for r in found),
                **{key: run.summary.get(key) for key in ("wall_time_s", "params")},
            }
        )
    return pd.DataFrame.from_records(records, columns=list(RANK_ABLATION_COLUMNS))


def rank_ablation_markdown(frame: pd.DataFrame) -> str:
    before = {"model": "{}", "rank": "{:.0f}", "scale": "x{}", "dataset": "{}", "seeds": "{:.0f}"}
    scores = {"psnr": "{:.4f}", "psnr_sd": "{:.4f}", "ssim": "{:.4f}"}
    after = {"median_step_time_s": "{:.4f}", "wall_time_s": "{:.0f}", "params": "{:,.0f}"}
    rows = [
        [
            *cells(record, before),
            *cells(record, scores),
            interval_cell(record, "psnr_vs_none", "{:+.4f}"),
            record["verdict"] if not absent(record["verdict"]) else "–",
            *cells(record, after),
        ]
        for record in frame.to_dict("records")
    ]
    header = [
        "Model",
        "Rank",
        "Scale",
        "Test set",
        "Seeds",
        "PSNR (dB, mean over seeds)",
        "Spread (sd over seeds)",
        "SSIM",
        "PSNR - no-bias (dB) [95% interval]",
        "Verdict",
        "Median training step (s)",
        "Wall (s)",
        "Params",
    ]
    intervals = [
        (record["psnr_vs_none_low"], record["psnr_vs_none_high"])
        for record in frame.to_dict("records")
        if not absent(record["psnr_vs_none"])
    ]
    return (
        "RIB at each rank R (every layer) and without a positional bias, the same recipe and seeds: PSNR on "
        "the test set (EMA weights; the mean over seeds, and its standard deviation where there are several), "
        "its difference to the model without a positional bias with that difference's interval and verdict, and "
        "the runs' median training step time, from their summaries (the median over seeds).\n\n"
        + markdown_table(header, rows)
        + "\n"
        + method_note(frame["interval_over"])
        + ("" if intervals else " No rank was compared with a model without a positional bias.")
        + "\n"
    )


def rank_ablation_figure(frame: pd.DataFrame):
    """PSNR against RIB's rank (log2 axis; no-bias runs as dashed lines) with the median training step
    time on a second axis, one line per test set and scale, from `rank_ablation_table`."""
    from suite.report.plotting import new_figure

    fig = new_figure(6.4, 4.2)
    ax = fig.subplots()
    times = ax.twinx()
    ranked, plain = frame[frame["rank"].notna()], frame[frame["rank"].isna()]
    for index, ((dataset, scale), group) in enumerate(ranked.groupby(["dataset", "scale"], sort=True)):
        group = group.sort_values("rank")
        color = f"C{index}"
        ax.plot(group["rank"], group["psnr"], marker="s", color=color, label=f"RIB PSNR, {dataset} x{scale}")
        for _, row in plain[(plain["dataset"] == dataset) & (plain["scale"] == scale)].iterrows():
            ax.axhline(
                row["psnr"],
                color=color,
                linestyle="--",
                linewidth=1,
                label=f"no bias PSNR, {dataset} x{scale} ({row['psnr']:.2f} dB)",
            )
    steps = ranked.drop_duplicates(["model", "scale"]).sort_values("rank")
    for index, (scale, group) in enumerate(steps.groupby("scale", sort=True)):
        times.plot(
            group["rank"],
            group["median_step_time_s"] * 1000.0,
            marker="o",
            color="tab:gray",
            linestyle=":",
            label=f"RIB training step x{scale} (right axis)",
        )
    for _, row in plain.drop_duplicates(["model", "scale"]).iterrows():
        times.axhline(
            row["median_step_time_s"] * 1000.0,
            color="tab:gray",
            linestyle=(0, (1, 4)),
            linewidth=1,
            label=f"no-bias training step x{row['scale']} (right axis)",
        )
    if len(ranked):
        ax.set_xscale("log", base=2)
        ranks = sorted({int(rank) for rank in ranked["rank"]})
        ax.set_xticks(ranks, [str(rank) for rank in ranks])
    ax.set_xlabel("RIB rank R (every layer)")
    ax.set_ylabel("PSNR (dB, Y channel)")
    times.set_ylabel("median training step (ms)")
    ax.grid(True, alpha=0.3)
    handles = ax.get_legend_handles_labels()[0] + times.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_title("Rank ablation: PSNR and training step time against RIB's rank", fontsize=10)
    fig.tight_layout()
    return fig


def build(inputs: ReportInputs) -> Built:
    frame = rank_ablation_table(inputs.evals, inputs.runs)
    markdown = rank_ablation_markdown(frame)
    return Built(markdown, {"rank_ablation.csv": frame, "rank_ablation.md": markdown}, data=frame)


def present(contents: Contents) -> bool:
    return contents.rank_ablation


SECTION = Section(
    key="rank_ablation",
    title="Rank ablation",
    build=build,
    present=present,
    category="Analysis",
    tables=(
        Table(
            "rank_ablation",
            "Rank ablation: RIB at each rank R (every layer) and without a positional bias, "
            "same recipe and seed; PSNR on the test set and median training step time of each run.",
        ),
    ),
    figures=(
        Plot(
            "rank_ablation",
            "Rank ablation",
            "PSNR on the test set against RIB's rank R (log scale; every layer at R), the same recipe and seed; "
            "dashed: the model without a positional bias. Dotted, right axis: each run's median training step "
            "time from its summary (the runs trained one at a time).",
            lambda inputs, built: rank_ablation_figure(built.data),
        ),
    ),
)
