"""What the research tools write, declared once: per tool its folder (analysis/<tool>/<run>/), its table (file
stem, columns, schema version; suite.rows) and the kinds of positional bias it applies to (the bias registry's
kinds). The tools write through these declarations; the report's readers and the workflow's outputs import
them. No torch here: the workflow reads it when it parses."""

from __future__ import annotations

from dataclasses import dataclass

from suite.models.biases import KINDS, REGISTRY
from suite.rows import RowsSchema


@dataclass(frozen=True)
class AnalysisOutput:
    tool: str  # `suite analyze <tool>`; its tables live in analysis/<tool>/<model>-x<scale>/
    table: RowsSchema
    kinds: tuple[str, ...]  # the bias kinds (suite.models.biases.KINDS) of the models it applies to
    text: tuple[str, ...]  # the table's columns of text; every other column holds numbers (or is empty)
    # columns a table written before they existed lacks (read as empty): the intervals added in version 2
    optional: tuple[str, ...] = ()

    @property
    def numeric(self) -> tuple[str, ...]:
        """The columns that hold numbers (an empty cell: not measured)."""
        return tuple(column for column in self.table.columns if column not in self.text)

    @property
    def biases(self) -> tuple[str, ...]:
        """The registered biases it applies to, in registry order."""
        return tuple(name for name, spec in REGISTRY.items() if spec.kind in self.kinds)


# Bias fields exist for the biases that stand for an N x N logit term: the additive ones, and the factored
# ones (Q_p K_p^T).
BIAS_FIELDS = AnalysisOutput(
    "bias",
    RowsSchema(
        "stats",
        (
            "layer",
            "block",
            "layer_in_block",
            "window",
            "bias",
            "head",
            "bias_min",
            "bias_max",
            "bias_range",
            "effective_rank_99",
            "translation_deviation",
        ),
        version=1,
    ),
    kinds=("additive", "factored"),
    text=("bias",),
)
# The SVD route to flash kernels needs a dense bias to factor: the additive ones (RPB).
LOWRANK = AnalysisOutput(
    "lowrank",
    RowsSchema(
        "lowrank",
        (
            "variant",
            "rank",
            "rank_label",
            "bias_rel_error",
            "bias_rel_error_max",
            "psnr",
            "ssim",
            "psnr_change",
            "psnr_change_low",
            "psnr_change_high",
            "ssim_change",
            "ms_median",
            "ms_iqr",
            "time_ratio",
            "time_ratio_low",
            "time_ratio_high",
            "status",
            "reason",
        ),
        version=2,
    ),
    kinds=("additive",),
    text=("variant", "rank_label", "status", "reason"),
    optional=("psnr_change_low", "psnr_change_high", "time_ratio_low", "time_ratio_high"),
)
# Every model: a bias tied to its window shows its refusal as rows.
WINDOWS = AnalysisOutput(
    "windows",
    RowsSchema(
        "windows",
        (
            "factor",
            "window_sizes",
            "status",
            "reason",
            "psnr",
            "ssim",
            "psnr_change",
            "psnr_change_low",
            "psnr_change_high",
            "ms_median",
            "ms_iqr",
            "time_ratio",
            "time_ratio_low",
            "time_ratio_high",
        ),
        version=2,
    ),
    kinds=KINDS,
    text=("window_sizes", "status", "reason"),
    optional=("psnr_change_low", "psnr_change_high", "time_ratio_low", "time_ratio_high"),
)

ANALYSIS_OUTPUTS = {output.tool: output for output in (BIAS_FIELDS, LOWRANK, WINDOWS)}
for _output in ANALYSIS_OUTPUTS.values():  # text and optional columns are columns of the table
    assert set(_output.text) | set(_output.optional) <= set(_output.table.columns), _output.tool
