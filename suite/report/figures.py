"""Figures of the report (matplotlib, written as PNG and PDF): speedup, latency and memory against
window size from the profile sweep, validation PSNR against iterations, the visual crop comparison."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from suite.files import atomic_write  # noqa: E402
from suite.report.crop import CropComparison  # noqa: E402
from suite.report.readers import Profile, TrainRun, variant_key  # noqa: E402
from suite.report.tables import OOM, fastest_rpb, variant_label  # noqa: E402

BIAS_COLORS = {"rpb": "tab:blue", "rib": "tab:orange", "none": "tab:gray"}
BIAS_MARKERS = {"rpb": "o", "rib": "s", "none": "^"}
PHASES = ("train", "infer")
PHASE_TITLES = {"train": "training step (forward + backward)", "infer": "inference (forward)"}


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write `stem`.png and `stem`.pdf atomically, then close the figure."""
    paths = []
    for ext in ("png", "pdf"):
        path = Path(stem).with_suffix(f".{ext}")
        metadata = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        atomic_write(path, lambda handle, ext=ext, metadata=metadata: fig.savefig(
            handle, format=ext, dpi=150, bbox_inches="tight", metadata=metadata))
        paths.append(path)
    plt.close(fig)
    return paths


def _line_points(rows: pd.DataFrame) -> pd.DataFrame:
    """Per variant and window the point on the line: the largest patch measured at that window."""
    if "patch" not in rows.columns:
        return rows
    largest = rows.groupby(["variant", "window"])["patch"].transform("max")
    return rows[rows["patch"] == largest]


def _window_axis(ax, rows: pd.DataFrame) -> None:
    """Log-2 window axis; each tick also names the patch of the line there when patches vary."""
    windows = sorted(rows["window"].unique().tolist())
    labels = [str(w) for w in windows]
    if "patch" in rows.columns and rows["patch"].nunique() > 1:
        line = _line_points(rows)
        labels = [f"{w}\np{int(line.loc[line['window'] == w, 'patch'].max())}" for w in windows]
    ax.set_xscale("log", base=2)
    ax.set_xticks(windows, labels)
    ax.minorticks_off()
    ax.set_xlabel("window size (tokens per side)" + ("; p: LR patch" if "\n" in "".join(labels) else ""))


def _variant_style(variant: str, variants: list[str]) -> dict:
    bias = variant.split("-", 1)[0]
    same_bias = [v for v in variants if v.split("-", 1)[0] == bias]
    return {"color": BIAS_COLORS.get(bias, "tab:purple"), "marker": BIAS_MARKERS.get(bias, "D"),
            "linestyle": ["-", "--", ":", "-."][same_bias.index(variant) % 4]}


def _per_window_figure(profile: Profile, column: str, ylabel: str, title: str) -> Figure:
    """`column` against window, one line per variant (the largest patch per window; other patches
    as hollow markers), one panel per phase; out-of-memory points are crosses along the top."""
    rows = profile.rows
    phases = [phase for phase in PHASES if phase in set(rows["phase"])] or sorted(set(rows["phase"]))
    variants = sorted(rows["variant"].unique(), key=variant_key)
    fig, axes = plt.subplots(1, len(phases), figsize=(5.2 * len(phases), 4.2), squeeze=False)
    for ax, phase in zip(axes[0], phases):
        phase_rows = rows[rows["phase"] == phase]
        line_rows = _line_points(phase_rows)
        top = blended_transform_factory(ax.transData, ax.transAxes)
        for variant in variants:
            style = _variant_style(variant, variants)
            group = line_rows[line_rows["variant"] == variant].sort_values("window")
            ok = group[group["status"] == "ok"].dropna(subset=[column])
            ax.plot(ok["window"], ok[column], label=variant_label(variant), **style)
            failed = group[group["status"] != "ok"]
            if len(failed):
                ax.scatter(failed["window"], [0.96] * len(failed), marker="x", s=70, color=style["color"],
                           transform=top, clip_on=False, zorder=5)
            others = phase_rows[(phase_rows["variant"] == variant) & ~phase_rows.index.isin(line_rows.index)
                                & (phase_rows["status"] == "ok")].dropna(subset=[column])
            ax.scatter(others["window"], others[column], marker=style["marker"], facecolors="none",
                       edgecolors=style["color"], zorder=4)
            for _, other in others.iterrows():
                ax.annotate(f"p{int(other['patch'])}", (other["window"], other[column]), fontsize=7,
                            xytext=(4, -3), textcoords="offset points")
        measured = phase_rows.loc[phase_rows["status"] == "ok", column].dropna()
        log_scale = bool(len(measured)) and bool((measured > 0).all())  # a log axis cannot show a zero
        if log_scale:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            low, high = ax.get_ylim()
            ax.set_ylim(low, high * 2.5)  # headroom for the out-of-memory crosses along the top
        _window_axis(ax, phase_rows)
        ax.set_ylabel(f"{ylabel}, log scale" if log_scale else ylabel)
        ax.set_title(PHASE_TITLES.get(phase, phase))
        ax.grid(True, which="both", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if line_rows["status"].ne("ok").any():
            handles.append(Line2D([], [], marker="x", linestyle="none", color="black"))
            labels.append("out of memory")
        if handles:
            ax.legend(handles, labels, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def latency_figure(profile: Profile) -> Figure:
    return _per_window_figure(profile, "ms", "median time per iteration (ms)", "Latency against window size")


def memory_figure(profile: Profile) -> Figure:
    return _per_window_figure(profile, "peak_mem", f"peak memory ({profile.memory_unit})",
                              "Peak memory against window size")


def speedup_figure(profile: Profile) -> Figure:
    """Bars of fastest-RPB time / fastest-RIB time per window (and patch where varied), train and
    infer side by side; where one side ran out of memory the bar is replaced by a label saying so."""
    rows = profile.rows
    keys = ["window"] + (["patch"] if "patch" in rows.columns and rows["patch"].nunique() > 1 else [])
    points = sorted({tuple(values) for values in rows[keys].itertuples(index=False)})
    phases = [phase for phase in PHASES if phase in set(rows["phase"])]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(points) + 2), 4.2))
    width = 0.8 / max(1, len(phases))
    drawn = False
    for offset, phase in enumerate(phases):
        for position, point in enumerate(points):
            mask = (rows["phase"] == phase) & np.logical_and.reduce([rows[k] == v for k, v in zip(keys, point)])
            candidates = rows[mask].to_dict("records")
            rpb = fastest_rpb(candidates)
            ribs = [c for c in candidates if c["bias"] == "rib"]
            ran = [c for c in ribs if c["status"] == "ok"]
            rib = min(ran, key=lambda c: c["ms"]) if ran else (ribs[0] if ribs else None)
            if rpb is None or rib is None:
                continue
            x = position + (offset - (len(phases) - 1) / 2) * width
            if rpb["status"] != "ok" or rib["status"] != "ok":
                failed = "RPB" if rpb["status"] != "ok" else "RIB"
                status = rpb["status"] if failed == "RPB" else rib["status"]
                ax.text(x, 0.02, f"{failed} {OOM if status == 'oom' else status.upper()}", rotation=90,
                        ha="center", va="bottom", fontsize=8,
                        transform=blended_transform_factory(ax.transData, ax.transAxes))
                continue
            ratio = rpb["ms"] / rib["ms"]
            ax.bar(x, ratio, width=width * 0.95, color=f"C{offset + 2}", label=PHASE_TITLES[phase])
            ax.text(x, ratio, f"{ratio:.2f}x", ha="center", va="bottom", fontsize=8)
            drawn = True
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="parity (1x)")
    ax.set_xticks(range(len(points)), ["\n".join([str(point[0]), *(f"patch {v}" for v in point[1:])])
                                       for point in points])
    ax.set_xlabel("window size" + (" / LR patch" if len(keys) > 1 else ""))
    ax.set_ylabel("speedup: RPB time / RIB time (x)")
    ax.set_title("RIB speedup over RPB per window size (fastest backend of each)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, "no point where both RPB and RIB ran", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    return fig


def val_psnr_figure(runs: list[TrainRun], bicubic: dict[int, float], val_dataset: str | None) -> Figure:
    """Validation PSNR against iteration per run; dashed lines: bicubic on the validation set."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    styles = ["-", "--", ":", "-."]
    presets = sorted({run.preset for run in runs})
    for run in runs:
        style = styles[presets.index(run.preset) % len(styles)]
        ax.plot(run.log["iteration"], run.log["val_psnr"], linestyle=style, marker="o", markersize=3,
                color=BIAS_COLORS.get(run.bias), label=f"{run.preset} {variant_label(run.bias)} x{run.scale}")
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
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0), squeeze=False)
    x, y, size = comparison.box
    for ax, (title, image) in zip(axes[0], panels):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].add_patch(Rectangle((x - 0.5, y - 0.5), size, size, fill=False, edgecolor="red", linewidth=1.5))
    fig.suptitle(f"{comparison.image} ({comparison.dataset}, x{comparison.scale}): {size}x{size} HR pixels "
                 f"at x={x}, y={y}; titles give PSNR over the whole image", fontsize=9)
    fig.tight_layout()
    return fig
