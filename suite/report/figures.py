"""Figures of the report (matplotlib's object API, written as PNG and PDF): the teaser layout, speedup,
latency and memory against window size from the profile sweep, validation PSNR against iterations,
the visual crop comparison, the rank ablation, the positional biases compared.

Figures are built as `Figure` objects, never through pyplot, so no global figure state is kept.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory

from suite.files import atomic_write
from suite.report.crop import CropComparison
from suite.report.paper import PAPER_VALUES
from suite.report.readers import EvalResult, Profile, TrainRun, method_key
from suite.report.tables import (
    BIASES,
    REFUSED,
    bias_label,
    column_key,
    model_title,
    speedup_text,
    variant_label,
    window_factor_column,
    window_factors_of,
)

# One colour and marker per registered bias, in registry order (rpb blue, rib orange, none green, ...).
BIAS_COLORS = {bias: f"C{index}" for index, bias in enumerate(BIASES)}
BIAS_MARKERS = {bias: "os^Dv<>p*h"[index % 10] for index, bias in enumerate(BIASES)}
PHASES = ("train", "infer")
PHASE_TITLES = {"train": "training step (forward + backward)", "infer": "inference (forward)"}
# The paper's values: hatched, pale bars and dashed lines with hollow markers, always labelled "paper".
PAPER_STYLE = {"hatch": "//", "alpha": 0.45, "edgecolor": "black"}
TEASER_DATASET = "Urban100"
TEASER_PAPER_ROWS = ("PFT (teaser)", "MambaIRv2-L", "SST-L+ (DF2K)")


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write `stem`.png and `stem`.pdf atomically."""
    paths = []
    for ext in ("png", "pdf"):
        path = Path(stem).with_suffix(f".{ext}")
        metadata = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        atomic_write(path, lambda handle, ext=ext, metadata=metadata: fig.savefig(
            handle, format=ext, dpi=150, bbox_inches="tight", metadata=metadata))
        paths.append(path)
    return paths


# --- profile sweep figures (from the speedup rows: per bias its fastest variant) ------------------

def _line_rows(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(points on the lines: per window the largest patch, other points) of one phase's speedup rows."""
    largest: dict[int, int] = {}
    for row in rows:
        largest[row["window"]] = max(largest.get(row["window"], row["patch"]), row["patch"])
    on_line = [row for row in rows if row["patch"] == largest[row["window"]]]
    return on_line, [row for row in rows if row["patch"] != largest[row["window"]]]


def _window_axis(ax, rows: list[dict]) -> None:
    """Log-2 window axis; each tick also names the patch of the line there when patches vary."""
    windows = sorted({row["window"] for row in rows})
    labels = [str(w) for w in windows]
    if len({row["patch"] for row in rows}) > 1:
        on_line, _ = _line_rows(rows)
        labels = [f"{w}\np{max(r['patch'] for r in on_line if r['window'] == w)}" for w in windows]
    ax.set_xscale("log", base=2)
    ax.set_xticks(windows, labels)
    ax.minorticks_off()
    ax.set_xlabel("window size (tokens per side)" + ("; p: LR patch" if "\n" in "".join(labels) else ""))


def _variants(rows: list[dict], bias: str) -> str:
    """"RPB (flex, sdpa)": the bias and the backends of its variants that were fastest somewhere."""
    backends = sorted({row[f"{bias}_variant"].partition("-")[2] for row in rows if row[f"{bias}_variant"]} - {""})
    return bias_label(bias) + (f" ({', '.join(backends)})" if backends else "")


def _per_window_figure(profile: Profile, quantity: str, ylabel: str, title: str) -> Figure:
    """`quantity` ("ms" or "peak_mem_mb") against window, one line per bias (its fastest variant at each
    point; the largest patch per window, other patches hollow), one panel per phase; points where a
    bias did not run are crosses along the top."""
    speedups = profile.speedups
    phases = [phase for phase in PHASES if any(row["phase"] == phase for row in speedups)]
    fig = Figure(figsize=(5.2 * max(1, len(phases)), 4.2))
    axes = fig.subplots(1, max(1, len(phases)), squeeze=False)[0]
    for ax, phase in zip(axes, phases):
        rows = [row for row in speedups if row["phase"] == phase]
        on_line, others = _line_rows(rows)
        top = blended_transform_factory(ax.transData, ax.transAxes)
        failed_any = False
        for bias in BIASES:
            if not any(row[f"{bias}_variant"] for row in rows):
                continue
            style = {"color": BIAS_COLORS[bias], "marker": BIAS_MARKERS[bias]}
            line = sorted((r for r in on_line if r[f"{bias}_status"] == "ok"), key=lambda r: r["window"])
            ax.plot([r["window"] for r in line], [r[f"{bias}_{quantity}"] for r in line],
                    label=_variants(rows, bias), **style)
            failed = [r for r in on_line if r[f"{bias}_status"] not in ("ok", "missing")]
            if failed:
                failed_any = True
                ax.scatter([r["window"] for r in failed], [0.96] * len(failed), marker="x", s=70,
                           color=style["color"], transform=top, clip_on=False, zorder=5)
            extra = [r for r in others if r[f"{bias}_status"] == "ok"]
            ax.scatter([r["window"] for r in extra], [r[f"{bias}_{quantity}"] for r in extra],
                       marker=style["marker"], facecolors="none", edgecolors=style["color"], zorder=4)
            for r in extra:
                ax.annotate(f"p{r['patch']}", (r["window"], r[f"{bias}_{quantity}"]), fontsize=7,
                            xytext=(4, -3), textcoords="offset points")
        measured = [r[f"{b}_{quantity}"] for r in rows for b in BIASES if r[f"{b}_status"] == "ok"]
        log_scale = bool(measured) and all(value is not None and value > 0 for value in measured)
        if log_scale:  # a log axis cannot show a zero (a CPU point whose peak memory did not grow)
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            low, high = ax.get_ylim()
            ax.set_ylim(low, high * 2.5)  # headroom for the crosses along the top
        _window_axis(ax, rows)
        ax.set_ylabel(f"{ylabel}, log scale" if log_scale else ylabel)
        ax.set_title(PHASE_TITLES.get(phase, phase))
        ax.grid(True, which="both", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if failed_any:
            handles.append(Line2D([], [], marker="x", linestyle="none", color="black"))
            labels.append("did not run (OOM, ...)")
        if handles:
            ax.legend(handles, labels, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def latency_figure(profile: Profile) -> Figure:
    return _per_window_figure(profile, "ms", "median time per iteration (ms)", "Latency against window size")


def memory_figure(profile: Profile) -> Figure:
    return _per_window_figure(profile, "peak_mem_mb", "peak memory (MB)", "Peak memory against window size")


def speedup_figure(profile: Profile) -> Figure:
    """Bars of RPB time / RIB time (each bias's fastest variant) per point, train and infer side by
    side; where one side did not run the bar is replaced by a label saying which and why."""
    speedups = profile.speedups
    keys = ["window", "patch", "batch", "precision", "compile"]
    # Train and infer share a bar group per window (and per any setting that varies within a phase;
    # the batch usually differs between the phases only).
    varying = ["window"] + [key for key in keys[1:] if any(
        len({row[key] for row in speedups if row["phase"] == phase}) > 1 for phase in PHASES)]
    points = sorted({tuple(row[key] for key in varying) for row in speedups}, key=lambda p: (p[0], *map(str, p[1:])))
    phases = [phase for phase in PHASES if any(row["phase"] == phase for row in speedups)]
    fig = Figure(figsize=(max(6.0, 1.1 * len(points) + 2), 4.2))
    ax = fig.subplots()
    width = 0.8 / max(1, len(phases))
    drawn = False
    for offset, phase in enumerate(phases):
        for position, point in enumerate(points):
            row = next((r for r in speedups if r["phase"] == phase and tuple(r[k] for k in varying) == point), None)
            if row is None or "missing" in (row["rpb_status"], row["rib_status"]):
                continue
            x = position + (offset - (len(phases) - 1) / 2) * width
            ratio = row["speedup_rpb_over_rib"]
            if ratio is None:
                ax.text(x, 0.02, speedup_text(row), rotation=90, ha="center", va="bottom", fontsize=8,
                        transform=blended_transform_factory(ax.transData, ax.transAxes))
                continue
            ax.bar(x, ratio, width=width * 0.95, color=f"C{offset + 2}", label=PHASE_TITLES[phase])
            ax.text(x, ratio, f"{ratio:.2f}x", ha="center", va="bottom", fontsize=8)
            drawn = True
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="parity (1x)")
    ax.set_xticks(range(len(points)), ["\n".join([str(point[0]), *(f"{k} {v}" for k, v in zip(varying[1:], point[1:]))])
                                       for point in points])
    ax.set_xlabel("window size" + (" / " + ", ".join(varying[1:]) if len(varying) > 1 else ""))
    ax.set_ylabel("speedup: RPB time / RIB time (x)")
    ax.set_title("RIB speedup over RPB per window size (fastest backend of each bias)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, "no point where both RPB and RIB ran", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    return fig


# --- the paper's teaser layout (12.3) -------------------------------------------------------------

PAPER_SETTING = {"rpb": (32, 64), "rib": (96, 96)}  # (window, LR patch) of the teaser's cost panels


def teaser_points(profile: Profile, phase: str) -> tuple[dict[str, dict], str]:
    """Per bias (rpb, rib) the profile's best row for the teaser's cost panels, and how they were picked:
    the paper's settings where the sweep has them, else the largest window where both ran, else the
    largest window each ran at. Returns ({bias: {variant, window, patch, ms, peak_mem_mb}}, description)."""
    rows = [row for row in profile.speedups if row["phase"] == phase]

    def entry(row: dict, bias: str) -> dict:
        return {"variant": row[f"{bias}_variant"], "window": row["window"], "patch": row["patch"],
                "ms": row[f"{bias}_ms"], "peak_mem_mb": row[f"{bias}_peak_mem_mb"]}

    at_paper = {}
    for bias, (window, patch) in PAPER_SETTING.items():
        match = [r for r in rows if r["window"] == window and r["patch"] == patch and r[f"{bias}_status"] == "ok"]
        if match:
            at_paper[bias] = entry(match[0], bias)
    if len(at_paper) == 2:
        return at_paper, "at the paper's settings"
    both = [r for r in rows if r["rpb_status"] == "ok" and r["rib_status"] == "ok"]
    if both:
        row = max(both, key=lambda r: (r["window"], r["patch"]))
        return ({bias: entry(row, bias) for bias in ("rpb", "rib")},
                f"at the largest window both ran (window {row['window']}, patch {row['patch']})")
    picked = {}
    for bias in ("rpb", "rib"):
        ran = [r for r in rows if r[f"{bias}_status"] == "ok"]
        if ran:
            picked[bias] = entry(max(ran, key=lambda r: (r["window"], r["patch"])), bias)
    return picked, "at the largest window each bias ran"


def _teaser_psnr(ax, evals: list[EvalResult]) -> str:
    """PSNR against scale: measured methods (solid) and the paper's teaser rows (dashed, hollow)."""
    urban = [r for r in evals if r.dataset == TEASER_DATASET]
    if urban:
        shown, dataset = urban, TEASER_DATASET
    else:
        # The test set with the most evaluations; ties: the PSNR table's column order.
        datasets = sorted({r.dataset for r in evals}, key=lambda d: (-sum(r.dataset == d for r in evals),
                                                                     column_key((d, 0))))
        dataset = datasets[0] if datasets else ""
        shown = [r for r in evals if r.dataset == dataset]
    for method in sorted({r.method for r in shown}, key=method_key):
        points = sorted((r.scale, r.psnr) for r in shown if r.method == method)
        bias = next(r.bias for r in shown if r.method == method)
        ax.plot(*zip(*points), marker=BIAS_MARKERS.get(bias, "D"), color=BIAS_COLORS.get(bias, "black"),
                linestyle="-", label=f"{method} ({dataset})")
    for index, key in enumerate(TEASER_PAPER_ROWS):
        row = PAPER_VALUES.rows[key]
        points = sorted((s, v[0]) for (d, s), v in row.scores.items() if d == TEASER_DATASET)
        ax.plot(*zip(*points), linestyle="--", marker="os^"[index % 3], markerfacecolor="none",
                color=f"C{index + 4}", label=f"paper: {key} ({TEASER_DATASET})")
    ax.set_xticks([2, 3, 4], ["x2", "x3", "x4"])
    ax.set_xlabel("scale")
    ax.set_ylabel("PSNR (dB, Y channel)")
    ax.set_title(f"PSNR per scale: measured on {dataset or 'nothing'}"
                 + ("" if dataset == TEASER_DATASET else f", paper on {TEASER_DATASET}"), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return dataset


def _teaser_bars(ax, measured: dict[str, dict], phase: str, quantity: str, scale: float, unit: str) -> None:
    """Measured bars (solid, per bias) then the paper's (hatched, pale), log scale, values written."""
    bars = []
    for bias in ("rpb", "rib"):
        if bias in measured and measured[bias][quantity] is not None:
            point = measured[bias]
            bars.append((f"{variant_label(point['variant'])}\nw{point['window']} p{point['patch']}",
                         point[quantity] / scale, BIAS_COLORS[bias], False))
    for cost in (c for c in PAPER_VALUES.costs if c.phase == phase):
        value = cost.ms if quantity == "ms" else cost.memory_mb
        bars.append((f"paper:\n{cost.method}", value / scale, BIAS_COLORS.get(cost.bias, "gray"), True))
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    for x, (label, value, color, paper) in enumerate(bars):
        if value <= 0:  # a log axis cannot draw it (a CPU point whose peak memory did not grow): say so
            ax.text(x, 0.02, f"{value:g}", ha="center", va="bottom", fontsize=7, transform=bottom)
            continue
        ax.bar(x, value, color=color, **(PAPER_STYLE if paper else {}))
        ax.text(x, value, f"{value:,.0f}" if value >= 100 else f"{value:.3g}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(bars)), [bar[0] for bar in bars], fontsize=7)
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    # 1-2-5 ticks over a narrow range, powers of ten over a wide one (CPU millibytes beside paper GB).
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if high / low < 300 else (1.0,)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(unit)
    ax.grid(True, axis="y", which="both", alpha=0.3)


def teaser_figure(evals: list[EvalResult], runs: list[TrainRun], profile: Profile | None) -> Figure:
    """The paper's teaser layout: PSNR per scale; training time per iteration and memory; inference
    latency and memory. This run's measurements solid, the paper's hatched or dashed and labelled."""
    fig = Figure(figsize=(13.5, 6.4))
    grid = fig.add_gridspec(2, 3)
    dataset = _teaser_psnr(fig.add_subplot(grid[:, 0]), evals)
    panels = (("train", "ms", 1000.0, "seconds per iteration", "training: time"),
              ("train", "peak_mem_mb", 1000.0, "peak memory (GB)", "training: memory"),
              ("infer", "ms", 1.0, "latency (ms)", "inference: latency"),
              ("infer", "peak_mem_mb", 1.0, "peak memory (MB)", "inference: memory"))
    how = {}
    for index, (phase, quantity, scale, unit, title) in enumerate(panels):
        ax = fig.add_subplot(grid[index % 2, 1 + index // 2])
        measured, how[phase] = teaser_points(profile, phase) if profile is not None else ({}, "no profile sweep")
        _teaser_bars(ax, measured, phase, quantity, scale, unit)
        ax.set_title(f"{title}, log scale", fontsize=9)
    devices = sorted({str(r.get("device")) for r in profile.rows}) if profile is not None else []
    presets = sorted({str(r.get("preset")) for r in profile.rows} | {run.preset for run in runs}) if profile else \
        sorted({run.preset for run in runs})
    on_cpu = devices == ["cpu"]
    fig.suptitle(
        ("What this CPU run measured: " if on_cpu else "Measured here: ")
        + f"{', '.join(presets) or 'no'} model(s), {', '.join(devices) or 'no device'} times"
        + (" (not comparable in scale with the paper's GPU figures)" if on_cpu else "")
        + f"; PSNR on {dataset or 'nothing'}.\nPaper's values (hatched bars, dashed lines) beside them. "
        + f"Costs: training {how['train']}, inference {how['infer']}.", fontsize=10)
    fig.legend(handles=[Patch(color="gray", label="measured here"), Patch(facecolor="gray", label="paper", **PAPER_STYLE)],
               loc="lower right", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return fig


# --- training and visual comparison ---------------------------------------------------------------

def val_psnr_figure(runs: list[TrainRun], bicubic: dict[int, float], val_dataset: str | None) -> Figure:
    """Validation PSNR against iteration per run; dashed lines: bicubic on the validation set."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    styles = ["-", "--", ":", "-."]
    presets = sorted({run.preset for run in runs})
    for run in runs:
        style = styles[presets.index(run.preset) % len(styles)]
        ax.plot(run.log["iteration"], run.log["val_psnr"], linestyle=style, marker="o", markersize=3,
                color=BIAS_COLORS.get(run.bias), label=f"{model_title(run.model)} x{run.scale}")
    for scale, psnr in sorted(bicubic.items()):
        ax.axhline(psnr, color="black", linestyle=(0, (4, 3)), linewidth=1,
                   label=f"bicubic x{scale} ({psnr:.2f} dB)")
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


def crop_figure(comparison: CropComparison) -> Figure:
    """The full HR image with the crop marked, then the crop of HR and of each method."""
    panels = [("HR (full image)", comparison.hr_full), *comparison.panels]
    fig = Figure(figsize=(2.6 * len(panels), 3.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    x, y, size = comparison.box
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].add_patch(Rectangle((x - 0.5, y - 0.5), size, size, fill=False, edgecolor="red", linewidth=1.5))
    fig.suptitle(f"{comparison.image} ({comparison.dataset}, x{comparison.scale}): {size}x{size} HR pixels "
                 f"at x={x}, y={y}; titles give PSNR over the whole image", fontsize=9)
    fig.tight_layout()
    return fig



def rank_ablation_figure(frame) -> Figure:
    """PSNR against RIB's rank (log2 axis; no-bias runs as dashed lines) with the median training step
    time on a second axis, one line per test set and scale, from `tables.rank_ablation_table`."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    times = ax.twinx()
    ranked, plain = frame[frame["rank"].notna()], frame[frame["rank"].isna()]
    for index, ((dataset, scale), group) in enumerate(ranked.groupby(["dataset", "scale"], sort=True)):
        group = group.sort_values("rank")
        color = f"C{index}"
        ax.plot(group["rank"], group["psnr"], marker="s", color=color, label=f"RIB PSNR, {dataset} x{scale}")
        for _, row in plain[(plain["dataset"] == dataset) & (plain["scale"] == scale)].iterrows():
            ax.axhline(row["psnr"], color=color, linestyle="--", linewidth=1,
                       label=f"no bias PSNR, {dataset} x{scale} ({row['psnr']:.2f} dB)")
    steps = ranked.drop_duplicates(["model", "scale"]).sort_values("rank")
    for index, (scale, group) in enumerate(steps.groupby("scale", sort=True)):
        times.plot(group["rank"], group["median_step_time_s"] * 1000.0, marker="o", color="tab:gray",
                   linestyle=":", label=f"RIB training step x{scale} (right axis)")
    for _, row in plain.drop_duplicates(["model", "scale"]).iterrows():
        times.axhline(row["median_step_time_s"] * 1000.0, color="tab:gray", linestyle=(0, (1, 4)), linewidth=1,
                      label=f"no-bias training step x{row['scale']} (right axis)")
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


# --- positional biases compared ------------------------------------------------------------------

def _value(value: object) -> float | None:
    """A table cell as a number, None where it is empty (None, NaN, "")."""
    if value is None or value == "":
        return None
    number = float(value)
    return None if math.isnan(number) else number


def comparison_labels(frame) -> list[str]:
    """Per row of `tables.biases_table`: the model's title ("tiny RIB rank 8"), without the preset when every
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


def biases_figure(frame) -> Figure:
    """Every trained model from `tables.biases_table`, in its bias's colour and marker: left, PSNR against the
    median training step time, each point labelled; right, the PSNR change against the window factor, the
    factors a model refused as crosses along the top."""
    fig = Figure(figsize=(13.0, 4.8))
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
            right.scatter(refused, [0.96 - 0.045 * refusing] * len(refused), marker="x", s=60, color=style["color"],
                          transform=top, clip_on=False, zorder=5)
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
    fig.suptitle("Positional biases compared: single runs, one seed each; no ranking (the intervals of "
                 "tables/biases.md cover test images, not seeds)", fontsize=10)
    fig.tight_layout()
    return fig
