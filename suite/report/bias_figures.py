"""Figures of `suite analyze bias` (matplotlib's object API, PNG and PDF): a grid of layers (rows) by
heads (columns) per view, one colour scale per layer with its colour bar.

- offsets: the mean bias at each relative offset (dy, dx), query minus key (RPB: its table), each
  panel titled with the head's translation deviation.
- centre: the centre token's bias over the window, the token marked.

The scale of a row is symmetric around zero (blue negative, red positive), so the sign reads the
same in every row; rows differ in magnitude.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from suite.analysis.bias_fields import BiasFields, LayerField
from suite.report.plotting import save_figure

COLORMAP = "RdBu_r"
PANEL_INCHES = 1.5


def _grid(result: BiasFields, view: str, subtitle: str) -> Figure:
    """Layers x heads panels of `view` ("offsets" or "centre")."""
    layers = result.layers
    heads = max(layer.offsets.shape[0] for layer in layers)
    fig = Figure(figsize=(PANEL_INCHES * heads + 1.6, PANEL_INCHES * len(layers) + 0.9), layout="constrained")
    axes = fig.subplots(len(layers), heads, squeeze=False)
    for row, layer in zip(axes, layers):
        maps = layer.offsets if view == "offsets" else layer.centre
        limit = float(np.abs(maps).max()) or 1.0  # an all-zero layer still gets a valid scale
        image = None
        for head, ax in enumerate(row):
            if head >= maps.shape[0]:
                ax.set_axis_off()
                continue
            image = _panel(ax, layer, view, head, maps[head], limit)
        row[0].set_ylabel(
            f"layer {layer.layer} (block {layer.block}.{layer.layer_in_block})\nw={layer.window}, {layer.bias.upper()}",
            fontsize=8,
        )
        fig.colorbar(image, ax=list(row), shrink=0.9, pad=0.02).ax.tick_params(labelsize=7)
    fig.suptitle(f"{result.title}\n{subtitle}", fontsize=10)
    return fig


def _panel(ax, layer: LayerField, view: str, head: int, values: np.ndarray, limit: float):
    reach = layer.window - 1
    if view == "offsets":
        # Row index dy + w-1, column dx + w-1: offsets from -(w-1) to w-1 on both axes, dy downwards.
        extent = (-reach - 0.5, reach + 0.5, reach + 0.5, -reach - 0.5)
        title = f"head {head}  dev {layer.rows[head]['translation_deviation']:.2f}"
    else:
        extent = (-0.5, reach + 0.5, reach + 0.5, -0.5)
        title = f"head {head}"
    image = ax.imshow(values, cmap=COLORMAP, vmin=-limit, vmax=limit, extent=extent, interpolation="nearest")
    if view == "centre":
        y, x = divmod(layer.centre_token, layer.window)
        ax.plot([x], [y], marker="+", color="black", markersize=6, linestyle="none")
    ax.set_title(title, fontsize=7)
    ax.tick_params(labelsize=6)
    return image


def offsets_figure(result: BiasFields) -> Figure:
    return _grid(
        result,
        "offsets",
        "mean bias at each relative offset (x: dx, y: dy, query minus key; RPB: its table); dev: translation deviation",
    )


def centre_figure(result: BiasFields) -> Figure:
    return _grid(result, "centre", "bias of the centre token (+) over the keys of its window (x, y in tokens)")


def save_bias_figures(result: BiasFields, out: Path) -> list[Path]:
    """Write out/offsets.{png,pdf} and out/centre.{png,pdf}; returns the four paths."""
    out = Path(out)
    return [*save_figure(offsets_figure(result), out / "offsets"), *save_figure(centre_figure(result), out / "centre")]
