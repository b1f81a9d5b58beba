"""Text shared by the report's sections: Markdown and LaTeX tables, cell formats, the names of methods
and biases as the report prints them, and the order of test sets."""

from __future__ import annotations

import math

from suite.models import biases as bias_registry
from suite.report.readers import MODEL_NAME, EvalResult

MISSING = "–"
DATASET_ORDER = ("Set5", "Set14", "B100", "Urban100", "Manga109", "DIV2K-val", "LSDIR-val")
bias_label = bias_registry.label


def absent(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, rows)]) + "\n"


def cells(record: dict, formats: dict[str, str]) -> list[str]:
    """`record`'s values at the keys of `formats`, each formatted by its format; MISSING where empty."""
    return [
        MISSING if absent(record[key]) or record[key] == "" else fmt.format(record[key]) for key, fmt in formats.items()
    ]


def interval_cell(record: dict, key: str, fmt: str) -> str:
    """ "+0.0012 [-0.0030, +0.0051]": `record[key]` with its interval `key_low`, `key_high` where the record has
    one (the value alone where not; MISSING where there is no value)."""
    if absent(record.get(key)) or record.get(key) == "":
        return MISSING
    low, high = record.get(f"{key}_low"), record.get(f"{key}_high")
    if absent(low) or absent(high) or low == "" or high == "":
        return fmt.format(record[key])
    return f"{fmt.format(record[key])} [{fmt.format(low)}, {fmt.format(high)}]"


def number_cell(value: object) -> str:
    """A time or memory cell: one decimal, or the status text the table put there (OOM, ...)."""
    if isinstance(value, str):
        return value
    return MISSING if absent(value) else f"{value:.1f}"


def status_text(status: str | None) -> str:
    return "missing" if status in (None, "missing") else ("OOM" if status == "oom" else str(status).upper())


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(char, char) for char in str(text))


def protocols_of(evals: list[EvalResult]) -> list[str]:
    return sorted({result.protocol for result in evals})


def protocol_caption(evals: list[EvalResult]) -> str:
    """ "metric protocol basicsr-y" (or several, each named) for a caption."""
    names = protocols_of(evals)
    if not names:
        return "metric protocol: none recorded"
    return ("metric protocol " if len(names) == 1 else "metric protocols (MIXED) ") + ", ".join(f"`{n}`" for n in names)


def column_key(column: tuple[str, int]) -> tuple:
    """Datasets of this run's own (not a standard benchmark) first, then the benchmarks in their usual order."""
    dataset, scale = column
    known = dataset in DATASET_ORDER
    return (known, DATASET_ORDER.index(dataset) if known else 0, dataset, scale)


def variant_label(variant: str) -> str:
    """ "rpb-sdpa" -> "RPB (sdpa)", "rib" -> "RIB", "none" -> "no-bias", "rib-siren" -> "RIB-SIREN"."""
    for bias in sorted(bias_registry.BIASES, key=len, reverse=True):
        if variant == bias or variant.startswith(bias + "-"):
            backend = variant[len(bias) + 1 :]
            return bias_label(bias) + (f" ({backend})" if backend else "")
    return variant


def method_labels(method: str) -> tuple[str, str]:
    """(method, bias) cells of a measured row: ("tiny", "rib"), ("tiny", "rib (rank 8)") for a rank-ablation
    model, (method, "") for anything else."""
    match = MODEL_NAME.match(method)
    if method == "bicubic" or match is None:
        return method, ""
    details = [f"rank {match['rank']}"] * bool(match["rank"]) + [f"seed {match['seed']}"] * (match["seed"] is not None)
    return match["preset"], match["bias"] + (f" ({', '.join(details)})" if details else "")


def model_title(method: str) -> str:
    """ "tiny-rib" -> "tiny RIB", "tiny-rib-r8" -> "tiny RIB rank 8", "tiny-rib-s1" -> "tiny RIB seed 1"; other
    names as they are."""
    match = MODEL_NAME.match(method)
    if match is None:
        return method
    return (
        f"{match['preset']} {bias_label(match['bias'])}"
        + (f" rank {match['rank']}" if match["rank"] else "")
        + (f" seed {match['seed']}" if match["seed"] is not None else "")
    )
