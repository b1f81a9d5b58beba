"""What every figure of the report shares: matplotlib's object API (never pyplot, so no global figure state),
one colour and marker per registered bias, the paper's style, and the atomic PNG + PDF writer.

Imported by the sections' draw functions when they draw, so that reading the report's declaration (the
workflow does when it parses) does not import matplotlib."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from suite.files import atomic_write
from suite.models.biases import BIASES

# One colour and marker per registered bias, in registry order (rpb blue, rib orange, none green, ...).
BIAS_COLORS = {bias: f"C{index}" for index, bias in enumerate(BIASES)}
BIAS_MARKERS = {bias: "os^Dv<>p*h"[index % 10] for index, bias in enumerate(BIASES)}
PHASES = ("train", "infer")
PHASE_TITLES = {"train": "training step (forward + backward)", "infer": "inference (forward)"}
# The paper's values: hatched, pale bars and dashed lines with hollow markers, always labelled "paper".
PAPER_STYLE = {"hatch": "//", "alpha": 0.45, "edgecolor": "black"}


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height))


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write `stem`.png and `stem`.pdf atomically."""
    paths = []
    for ext in ("png", "pdf"):
        path = Path(stem).with_suffix(f".{ext}")
        metadata = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        atomic_write(
            path,
            lambda handle, ext=ext, metadata=metadata: fig.savefig(
                handle, format=ext, dpi=150, bbox_inches="tight", metadata=metadata
            ),
        )
        paths.append(path)
    return paths
