"""Section "The paper's teaser, from this run's results": the teaser's layout (PSNR per scale; training time and
memory; inference latency and memory) drawn from this run's result files beside the paper's values."""

from __future__ import annotations

from suite.report.declare import Built, Plot, ReportInputs, Section
from suite.report.markdown import column_key, variant_label
from suite.report.paper import PAPER_VALUES
from suite.report.readers import EvalResult, Profile, TrainRun, method_key

TEASER_DATASET = "Urban100"
TEASER_PAPER_ROWS = ("PFT (teaser)", "MambaIRv2-L", "SST-L+ (DF2K)")

PAPER_SETTING = {"rpb": (32, 64), "rib": (96, 96)}  # (window, LR patch) of the teaser's cost panels


def teaser_points(profile: Profile, phase: str) -> tuple[dict[str, dict], str]:
    """Per bias (rpb, rib) the profile's best row for the teaser's cost panels, and how they were picked:
    the paper's settings where the sweep has them, else the largest window where both ran, else the
    largest window each ran at. Returns ({bias: {variant, window, patch, ms, peak_mem_mb}}, description)."""
    rows = [row for row in profile.speedups if row["phase"] == phase]

    def entry(row: dict, bias: str) -> dict:
        return {
            "variant": row[f"{bias}_variant"],
            "window": row["window"],
            "patch": row["patch"],
            "ms": row[f"{bias}_ms"],
            "peak_mem_mb": row[f"{bias}_peak_mem_mb"],
        }

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
        return (
            {bias: entry(row, bias) for bias in ("rpb", "rib")},
            f"at the largest window both ran (window {row['window']}, patch {row['patch']})",
        )
    picked = {}
    for bias in ("rpb", "rib"):
        ran = [r for r in rows if r[f"{bias}_status"] == "ok"]
        if ran:
            picked[bias] = entry(max(ran, key=lambda r: (r["window"], r["patch"])), bias)
    return picked, "at the largest window each bias ran"


def _teaser_psnr(ax, evals: list[EvalResult]) -> str:
    """PSNR against scale: measured methods (solid) and the paper's teaser rows (dashed, hollow)."""
    from suite.report.plotting import BIAS_COLORS, BIAS_MARKERS

    urban = [r for r in evals if r.dataset == TEASER_DATASET]
    if urban:
        shown, dataset = urban, TEASER_DATASET
    else:
        # The test set with the most evaluations; ties: the PSNR table's column order.
        datasets = sorted(
            {r.dataset for r in evals}, key=lambda d: (-sum(r.dataset == d for r in evals), column_key((d, 0)))
        )
        dataset = datasets[0] if datasets else ""
        shown = [r for r in evals if r.dataset == dataset]
    for method in sorted({r.method for r in shown}, key=method_key):
        points = sorted((r.scale, r.psnr) for r in shown if r.method == method)
        bias = next(r.bias for r in shown if r.method == method)
        ax.plot(
            *zip(*points),
            marker=BIAS_MARKERS.get(bias, "D"),
            color=BIAS_COLORS.get(bias, "black"),
            linestyle="-",
            label=f"{method} ({dataset})",
        )
    for index, key in enumerate(TEASER_PAPER_ROWS):
        row = PAPER_VALUES.rows[key]
        points = sorted((s, v[0]) for (d, s), v in row.scores.items() if d == TEASER_DATASET)
        ax.plot(
            *zip(*points),
            linestyle="--",
            marker="os^"[index % 3],
            markerfacecolor="none",
            color=f"C{index + 4}",
            label=f"paper: {key} ({TEASER_DATASET})",
        )
    ax.set_xticks([2, 3, 4], ["x2", "x3", "x4"])
    ax.set_xlabel("scale")
    ax.set_ylabel("PSNR (dB, Y channel)")
    ax.set_title(
        f"PSNR per scale: measured on {dataset or 'nothing'}"
        + ("" if dataset == TEASER_DATASET else f", paper on {TEASER_DATASET}"),
        fontsize=9,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return dataset


def _teaser_bars(ax, measured: dict[str, dict], phase: str, quantity: str, scale: float, unit: str) -> None:
    """Measured bars (solid, per bias) then the paper's (hatched, pale), log scale, values written."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
    from matplotlib.transforms import blended_transform_factory

    from suite.report.plotting import BIAS_COLORS, PAPER_STYLE

    bars = []
    for bias in ("rpb", "rib"):
        if bias in measured and measured[bias][quantity] is not None:
            point = measured[bias]
            bars.append(
                (
                    f"{variant_label(point['variant'])}\nw{point['window']} p{point['patch']}",
                    point[quantity] / scale,
                    BIAS_COLORS[bias],
                    False,
                )
            )
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


def teaser_figure(evals: list[EvalResult], runs: list[TrainRun], profile: Profile | None):
    """The paper's teaser layout: PSNR per scale; training time per iteration and memory; inference
    latency and memory. This run's measurements solid, the paper's hatched or dashed and labelled."""
    from matplotlib.patches import Patch

    from suite.report.plotting import PAPER_STYLE, new_figure

    fig = new_figure(13.5, 6.4)
    grid = fig.add_gridspec(2, 3)
    dataset = _teaser_psnr(fig.add_subplot(grid[:, 0]), evals)
    panels = (
        ("train", "ms", 1000.0, "seconds per iteration", "training: time"),
        ("train", "peak_mem_mb", 1000.0, "peak memory (GB)", "training: memory"),
        ("infer", "ms", 1.0, "latency (ms)", "inference: latency"),
        ("infer", "peak_mem_mb", 1.0, "peak memory (MB)", "inference: memory"),
    )
    how = {}
    for index, (phase, quantity, scale, unit, title) in enumerate(panels):
        ax = fig.add_subplot(grid[index % 2, 1 + index // 2])
        measured, how[phase] = teaser_points(profile, phase) if profile is not None else ({}, "no profile sweep")
        _teaser_bars(ax, measured, phase, quantity, scale, unit)
        ax.set_title(f"{title}, log scale", fontsize=9)
    devices = sorted({str(r.get("device")) for r in profile.rows}) if profile is not None else []
    presets = (
        sorted({str(r.get("preset")) for r in profile.rows} | {run.preset for run in runs})
        if profile
        else sorted({run.preset for run in runs})
    )
    on_cpu = devices == ["cpu"]
    fig.suptitle(
        ("What this CPU run measured: " if on_cpu else "Measured here: ")
        + f"{', '.join(presets) or 'no'} model(s), {', '.join(devices) or 'no device'} times"
        + (" (not comparable in scale with the paper's GPU figures)" if on_cpu else "")
        + f"; PSNR on {dataset or 'nothing'}.\nPaper's values (hatched bars, dashed lines) beside them. "
        + f"Costs: training {how['train']}, inference {how['infer']}.",
        fontsize=10,
    )
    fig.legend(
        handles=[Patch(color="gray", label="measured here"), Patch(facecolor="gray", label="paper", **PAPER_STYLE)],
        loc="lower right",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return fig


def build(inputs: ReportInputs) -> Built:
    return Built(
        "The layout of the paper's teaser figure, redrawn from this run's result files beside the paper's "
        "values (labelled as the paper's).\n"
    )


SECTION = Section(
    key="teaser",
    title="The paper's teaser, from this run's results",
    build=build,
    figures=(
        Plot(
            "teaser",
            "The paper's teaser, from this run's results",
            "The layout of the paper's teaser: PSNR per scale (Urban100 where measured, else the run's test "
            "set); training seconds per iteration and peak memory; inference latency and peak memory. Solid "
            "bars and lines: this run's result files (eval JSONs, the profile sweep, each bias's fastest "
            "backend); hatched bars and dashed lines: the paper's values. The title says what was measured "
            "(models, device) and at which settings.",
            lambda inputs, built: teaser_figure(inputs.evals, inputs.runs, inputs.profile),
        ),
    ),
)
