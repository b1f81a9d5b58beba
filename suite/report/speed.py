"""Section "Speed and memory (profile sweep)": per point each bias's fastest variant, its time and peak memory
and RPB's ratios over it, the paper's cost figures quoted; speedup, latency and memory against window size."""

from __future__ import annotations

import pandas as pd

from suite.models.biases import BIASES
from suite.profiling.tables import BASELINE, memory_column, speedup_column
from suite.report.declare import Built, Contents, Plot, ReportInputs, Section, Table
from suite.report.markdown import MISSING, bias_label, markdown_table, number_cell, status_text
from suite.report.paper import PAPER_VALUES
from suite.report.readers import Profile
from suite.stats import LEVEL

SPEED_KEYS = ("phase", "window", "patch", "batch", "precision", "compile")


def speedup_text(row: dict, bottom: str = "rib", top: str = BASELINE) -> str:
    """The ratio top/bottom (RPB over `bottom`) of one speedup row as text, or which side did not run."""
    column = speedup_column(bottom)
    ratio, low, high = (row.get(f"{column}{suffix}") for suffix in ("", "_low", "_high"))
    if ratio is not None:
        if low is None or high is None:
            return f"{ratio:.2f}x"
        unresolved = " (not resolved)" if low <= 1.0 <= high else ""
        return f"{ratio:.2f}x [{low:.2f}, {high:.2f}]{unresolved}"
    for bias in (top, bottom):
        if row.get(f"{bias}_status") != "ok":
            return f"{bias_label(bias)} {status_text(row.get(f'{bias}_status'))}"
    return MISSING


def speed_table(profile: Profile) -> pd.DataFrame:
    """The speedup rows of the profile (suite.profiling.tables.speedup_rows): one row per point, per bias
    the fastest variant's time and peak memory, or its status where it did not run."""
    records = []
    for row in profile.speedups:
        record = {key: row[key] for key in SPEED_KEYS}
        for bias in BIASES:
            ran = row[f"{bias}_status"] == "ok"
            status = status_text(row[f"{bias}_status"])
            record[f"{bias}_variant"] = row[f"{bias}_variant"] or ""
            record[f"{bias}_ms"] = row[f"{bias}_ms"] if ran else status
            record[f"{bias}_peak_mem_mb"] = row[f"{bias}_peak_mem_mb"] if ran else status
            record[f"{bias}_kernels"] = ";".join(row[f"{bias}_kernels"] or [])
        for bias in BIASES:
            if bias != BASELINE:
                record[speedup_column(bias)] = speedup_text(row, bias)
                memory = row.get(memory_column(bias))
                record[memory_column(bias)] = MISSING if memory is None else f"{memory:.2f}x"
        records.append(record)
    return pd.DataFrame.from_records(records)


def _describe(rows: list[dict], column: str) -> str:
    values = sorted({str(row.get(column)) for row in rows if row.get(column) not in (None, "")})
    return ", ".join(values) if values else "an unrecorded " + column


def speed_markdown(frame: pd.DataFrame, profile: Profile) -> str:
    present = [bias for bias in BIASES if f"{bias}_variant" in frame and (frame[f"{bias}_variant"] != "").any()]
    header = ["Phase", "Window", "Patch", "Batch", "Precision", "Compile"]
    for bias in present:
        header += [f"{bias_label(bias)} variant", f"{bias_label(bias)} ms/iter", f"{bias_label(bias)} peak MB"]
    others = [bias for bias in present if bias != BASELINE] if BASELINE in present else []
    header += [f"RPB / {bias_label(bias)} time" for bias in others]
    header += [f"RPB / {bias_label(bias)} memory" for bias in others]
    rows = []
    for record in frame.to_dict("records"):
        cells = [str(record[key]) for key in SPEED_KEYS]
        for bias in present:
            cells += [
                record[f"{bias}_variant"] or MISSING,
                number_cell(record[f"{bias}_ms"]),
                number_cell(record[f"{bias}_peak_mem_mb"]),
            ]
        cells += [record[speedup_column(bias)] for bias in others]
        cells += [record[memory_column(bias)] for bias in others]
        rows.append(cells)
    intro = (
        f"Profile sweep on {_describe(profile.rows, 'device_name')} ({_describe(profile.rows, 'device')}): "
        f"median milliseconds per iteration and peak memory (MB) per positional bias, each bias's fastest "
        f"attention backend (its variant) at each point; ratios are RPB's time (memory) over the other "
        f"bias's, all from one sweep. A time ratio is the ratio of the two median step times with its "
        f"{LEVEL:.0%} interval from resampling each side's timed steps on its own (each point ran in its own "
        f"process, one after another, so the steps cannot be paired by round and the interval does not hold what "
        f"changed on the machine between the two processes); (not resolved): the interval contains 1, so the "
        f"point does not rank the two. OOM: out of memory at that point.\n\n"
    )
    paper_header = ["Phase", "Method", "As stated", "Ratio to RIB"]
    paper_rows = []
    for phase in ("train", "infer"):
        costs = [cost for cost in PAPER_VALUES.costs if cost.phase == phase]
        rib = next((cost for cost in costs if cost.bias == "rib"), None)
        for cost in costs:
            ratio = f"{cost.ms / rib.ms:.2f}x" if rib is not None and cost is not rib else ""
            paper_rows.append([phase, cost.method, cost.stated, ratio])
    paper = (
        f"\nThe paper's cost figures ({PAPER_VALUES.cost_source}; {PAPER_VALUES.cost_setting}), quoted, "
        f"not measured here:\n\n" + markdown_table(paper_header, paper_rows)
    )
    return intro + markdown_table(header, rows) + paper


# --- figures ------------------------------------------------------------------------------------


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
    """ "RPB (flex, sdpa)": the bias and the backends of its variants that were fastest somewhere."""
    backends = sorted({row[f"{bias}_variant"].partition("-")[2] for row in rows if row[f"{bias}_variant"]} - {""})
    return bias_label(bias) + (f" ({', '.join(backends)})" if backends else "")


def _per_window_figure(profile: Profile, quantity: str, ylabel: str, title: str):
    """`quantity` ("ms" or "peak_mem_mb") against window, one line per bias (its fastest variant at each
    point; the largest patch per window, other patches hollow), one panel per phase; points where a
    bias did not run are crosses along the top."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
    from matplotlib.transforms import blended_transform_factory

    from suite.report.plotting import BIAS_COLORS, BIAS_MARKERS, PHASE_TITLES, PHASES, new_figure

    speedups = profile.speedups
    phases = [phase for phase in PHASES if any(row["phase"] == phase for row in speedups)]
    fig = new_figure(5.2 * max(1, len(phases)), 4.2)
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
            ax.plot(
                [r["window"] for r in line],
                [r[f"{bias}_{quantity}"] for r in line],
                label=_variants(rows, bias),
                **style,
            )
            failed = [r for r in on_line if r[f"{bias}_status"] not in ("ok", "missing")]
            if failed:
                failed_any = True
                ax.scatter(
                    [r["window"] for r in failed],
                    [0.96] * len(failed),
                    marker="x",
                    s=70,
                    color=style["color"],
                    transform=top,
                    clip_on=False,
                    zorder=5,
                )
            extra = [r for r in others if r[f"{bias}_status"] == "ok"]
            ax.scatter(
                [r["window"] for r in extra],
                [r[f"{bias}_{quantity}"] for r in extra],
                marker=style["marker"],
                facecolors="none",
                edgecolors=style["color"],
                zorder=4,
            )
            for r in extra:
                ax.annotate(
                    f"p{r['patch']}",
                    (r["window"], r[f"{bias}_{quantity}"]),
                    fontsize=7,
                    xytext=(4, -3),
                    textcoords="offset points",
                )
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


def latency_figure(profile: Profile):
    return _per_window_figure(profile, "ms", "median time per iteration (ms)", "Latency against window size")


def memory_figure(profile: Profile):
    return _per_window_figure(profile, "peak_mem_mb", "peak memory (MB)", "Peak memory against window size")


def speedup_figure(profile: Profile):
    """Bars of RPB time / RIB time (each bias's fastest variant) per point, train and infer side by
    side; where one side did not run the bar is replaced by a label saying which and why."""
    from matplotlib.transforms import blended_transform_factory

    from suite.report.plotting import PHASE_TITLES, PHASES, new_figure

    speedups = profile.speedups
    keys = ["window", "patch", "batch", "precision", "compile"]
    # Train and infer share a bar group per window (and per any setting that varies within a phase;
    # the batch usually differs between the phases only).
    varying = ["window"] + [
        key
        for key in keys[1:]
        if any(len({row[key] for row in speedups if row["phase"] == phase}) > 1 for phase in PHASES)
    ]
    points = sorted({tuple(row[key] for key in varying) for row in speedups}, key=lambda p: (p[0], *map(str, p[1:])))
    phases = [phase for phase in PHASES if any(row["phase"] == phase for row in speedups)]
    fig = new_figure(max(6.0, 1.1 * len(points) + 2), 4.2)
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
                ax.text(
                    x,
                    0.02,
                    speedup_text(row),
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    transform=blended_transform_factory(ax.transData, ax.transAxes),
                )
                continue
            ax.bar(x, ratio, width=width * 0.95, color=f"C{offset + 2}", label=PHASE_TITLES[phase])
            ax.text(x, ratio, f"{ratio:.2f}x", ha="center", va="bottom", fontsize=8)
            drawn = True
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="parity (1x)")
    ax.set_xticks(
        range(len(points)),
        ["\n".join([str(point[0]), *(f"{k} {v}" for k, v in zip(varying[1:], point[1:]))]) for point in points],
    )
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


def build(inputs: ReportInputs) -> Built:
    frame = speed_table(inputs.profile)
    markdown = speed_markdown(frame, inputs.profile)
    return Built(markdown, {"speed.csv": frame, "speed.md": markdown})


def present(contents: Contents) -> bool:
    return contents.profile


SECTION = Section(
    key="speed",
    title="Speed and memory (profile sweep)",
    build=build,
    present=present,
    tables=(
        Table(
            "speed",
            "Profile sweep: milliseconds per iteration and peak memory per window size, phase (train, "
            "infer) and positional bias (its fastest backend at each point), and RPB's time and memory over "
            'each other bias\'s, all measured in one sweep on one device. "OOM" marks a point that ran out '
            "of memory.",
        ),
    ),
    figures=(
        Plot(
            "speedup",
            "Speedup of RIB over RPB",
            "Speedup of RIB over RPB (RPB time / RIB time) per window size, training step and inference, from one "
            'profile sweep. Above 1: RIB is faster. A bar replaced by "OOM" could not be computed because one '
            "side ran out of memory.",
            lambda inputs, built: speedup_figure(inputs.profile),
        ),
        Plot(
            "latency",
            "Latency against window size",
            "Median milliseconds per iteration against window size (log scales) per positional bias (its fastest "
            "backend at each point), training step and inference. Crosses along the top: the bias did not run "
            "there (out of memory, ...).",
            lambda inputs, built: latency_figure(inputs.profile),
        ),
        Plot(
            "memory",
            "Peak memory against window size",
            "Peak memory against window size per positional bias (its fastest backend at each point): the CUDA "
            "allocator's peak on a GPU, the growth of the process's peak resident memory on a CPU. Crosses: did "
            "not run.",
            lambda inputs, built: memory_figure(inputs.profile),
        ),
    ),
)
