"""Tables of the report as DataFrames (written as CSV) and their Markdown and LaTeX renderings."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from suite.report.paper import PAPER, PAPER_ROWS, PAPER_SOURCE, PAPER_SPEED, PAPER_SPEED_SETTING, PaperRow
from suite.report.readers import EvalResult, Profile, TrainRun, method_key, variant_key

DATASET_ORDER = ("Set5", "Set14", "B100", "Urban100", "Manga109")
MEASURED = "measured"
OOM = "OOM"
MISSING = "–"
BIAS_LABELS = {"rpb": "RPB", "rib": "RIB", "none": "no-bias"}
LABELS = ("source", "method", "bias", "note")


@dataclass(frozen=True)
class PsnrTable:
    """Rows: measured methods x bias (bicubic first), then the paper's rows; columns: `columns`
    as (dataset, scale), each a `<dataset>_x<scale>_psnr` and `_ssim` column of `frame`."""

    frame: pd.DataFrame
    columns: tuple[tuple[str, int], ...]


def column_name(dataset: str, scale: int, metric: str) -> str:
    return f"{dataset}_x{scale}_{metric}"


def psnr_table(evals: list[EvalResult], paper_rows: tuple[PaperRow, ...] = PAPER_ROWS) -> PsnrTable:
    # Every measured column, plus the paper's columns: the paper's rows stay visible even where this
    # run measured none of their datasets (the default config's mini benchmark).
    columns = tuple(sorted({(result.dataset, result.scale) for result in evals}
                           | {key for row in paper_rows for key in row.scores}, key=_column_key))

    methods = sorted({result.method for result in evals}, key=method_key)
    records = []
    for method in methods:
        preset, bias = ("bicubic", "") if method == "bicubic" else method.rsplit("-", 1)
        record = {"source": MEASURED, "method": preset, "bias": bias, "note": ""}
        for result in evals:
            if result.method == method:
                record[column_name(result.dataset, result.scale, "psnr")] = result.psnr
                record[column_name(result.dataset, result.scale, "ssim")] = result.ssim
        records.append(record)
    for row in paper_rows:
        record = {"source": PAPER_SOURCE, "method": row.method, "bias": row.bias, "note": row.note}
        for (dataset, scale), (psnr, ssim) in row.scores.items():
            record[column_name(dataset, scale, "psnr")] = psnr
            record[column_name(dataset, scale, "ssim")] = ssim
        records.append(record)
    value_columns = [column_name(d, s, m) for d, s in columns for m in ("psnr", "ssim")]
    frame = pd.DataFrame.from_records(records).reindex(columns=[*LABELS, *value_columns])
    frame[value_columns] = frame[value_columns].astype(float)
    return PsnrTable(frame=frame, columns=columns)


def _column_key(column: tuple[str, int]) -> tuple:
    """Datasets of this run's own (not a standard benchmark) first, then the benchmarks in their usual order."""
    dataset, scale = column
    known = dataset in DATASET_ORDER
    return (known, DATASET_ORDER.index(dataset) if known else 0, dataset, scale)


def _score(psnr: float, ssim: float) -> str:
    if _absent(psnr):
        return MISSING
    return f"{psnr:.2f}" if _absent(ssim) else f"{psnr:.2f} / {ssim:.4f}"


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def psnr_cells(table: PsnrTable) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table as text: one "PSNR / SSIM" cell per dataset and scale."""
    header = ["Source", "Method", "Bias", "Note", *(f"{d} x{s}" for d, s in table.columns)]
    rows = []
    for record in table.frame.to_dict("records"):
        cells = [str(record[label]) if not _absent(record[label]) else "" for label in LABELS]
        cells += [_score(record[column_name(d, s, "psnr")], record[column_name(d, s, "ssim")])
                  for d, s in table.columns]
        rows.append(cells)
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, rows)]) + "\n"


def psnr_markdown(table: PsnrTable, footnote: list[str]) -> str:
    header, rows = psnr_cells(table)
    notes = "\n".join(f"- {text}" for text in footnote)
    return (f"PSNR (dB) / SSIM. Rows with source **{PAPER_SOURCE}** are the paper's figures "
            f"({PAPER}), not measured here.\n\n{markdown_table(header, rows)}\nNotes:\n\n{notes}\n")


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(char, char) for char in str(text))


def psnr_latex(table: PsnrTable, footnote: list[str]) -> str:
    header, rows = psnr_cells(table)
    header = [latex_escape(cell).replace(" x", r" $\times$") for cell in header]
    lines = [
        "% PSNR (dB) / SSIM table written by `suite report`; needs \\usepackage{booktabs}.",
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        "\\begin{tabular}{llll" + "c" * len(table.columns) + "}",
        "\\toprule",
        " & ".join(header) + " \\\\",
        "\\midrule",
    ]
    previous = None
    for cells in rows:
        if previous is not None and cells[0] != previous:
            lines.append("\\midrule")
        previous = cells[0]
        lines.append(" & ".join(latex_escape(cell).replace("–", "--") for cell in cells) + " \\\\")
    caption = (f"PSNR (dB) / SSIM. Rows with source \\emph{{{PAPER_SOURCE}}} are the paper's figures "
               f"({latex_escape(PAPER)}), not measured here. " + " ".join(latex_escape(note) for note in footnote))
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{caption}}}", "\\label{tab:psnr-ssim}",
              "\\end{table}"]
    return "\n".join(lines) + "\n"


def speed_table(profile: Profile) -> pd.DataFrame:
    """One row per phase, window (and patch, batch); per variant (a bias on a backend: "rib",
    "rpb-sdpa", ...) the median ms per iteration, peak memory, attention kernels and speedup over RPB:
    the fastest RPB variant's time at that point / this variant's time. A point that ran out of
    memory reads "OOM" in each of its cells."""
    rows = profile.rows
    keys = ["phase", "window"] + [column for column in ("patch", "batch") if column in rows.columns]
    variants = sorted(rows["variant"].unique(), key=variant_key)
    several_rpb = len({v for v, b in zip(rows["variant"], rows["bias"]) if b == "rpb"}) > 1
    memory = f"peak_{profile.memory_unit.lower()}"
    records = []
    for key_values, group in rows.groupby(keys, sort=True, dropna=False):
        record = dict(zip(keys, key_values))
        points = group.to_dict("records")
        by_variant = {point["variant"]: point for point in points}
        reference = fastest_rpb(points)
        if several_rpb:
            record["rpb_fastest"] = reference["variant"] if reference and not _failed(reference) else ""
        for variant in variants:
            point = by_variant.get(variant)
            record[f"{variant}_ms"] = _measurement(point, "ms")
            record[f"{variant}_{memory}"] = _measurement(point, "peak_mem")
            if "kernel" in rows.columns:
                record[f"{variant}_kernel"] = "" if point is None or _absent(point.get("kernel")) else point["kernel"]
            if point is None or point["bias"] != "rpb":
                record[f"{variant}_speedup"] = _speedup(reference, point)
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    order = {"train": 0, "infer": 1}
    return frame.sort_values(keys, key=lambda s: s.map(order) if s.name == "phase" else s, ignore_index=True)


def fastest_rpb(points: list[dict]) -> dict | None:
    """The RPB point with the smallest time among `points` (one setting, several backends); where
    none ran, the first failed one; None without RPB points."""
    rpb = [point for point in points if point["bias"] == "rpb"]
    ran = [point for point in rpb if not _failed(point)]
    if ran:
        return min(ran, key=lambda point: point["ms"])
    return rpb[0] if rpb else None


def _failed(point: dict) -> str | None:
    status = point["status"]
    return None if status == "ok" else (OOM if status == "oom" else status.upper())


def _measurement(point: dict | None, key: str) -> object:
    if point is None:
        return float("nan")
    failure = _failed(point)
    return failure if failure else point[key]


def _speedup(reference: dict | None, point: dict | None) -> object:
    if reference is None or point is None:
        return float("nan")
    if _failed(point):
        return _failed(point)
    if _failed(reference):
        return f"RPB {_failed(reference)}"
    return reference["ms"] / point["ms"]


def speed_markdown(frame: pd.DataFrame, profile: Profile) -> str:
    header = [_speed_header(column, profile.memory_unit) for column in frame.columns]
    rows = [[_speed_cell(column, value) for column, value in record.items()]
            for record in frame.to_dict("records")]
    device = _describe(profile.rows, "device")
    dtype = _describe(profile.rows, "dtype")
    intro = (f"Profile sweep on {device} ({dtype}): median milliseconds per iteration, peak memory "
             f"({profile.memory_unit}) and speedup over RPB (the fastest RPB variant's time / this variant's "
             f"time), all from one sweep. {OOM}: out of memory at that point.\n\n")
    paper_header = ["Phase", "Method", "Time", "Memory", "Speedup"]
    paper_rows = [[row["phase"], row["method"], row["time"], row["memory"], row["speedup"]] for row in PAPER_SPEED]
    paper = (f"\nThe paper's speed figures ({PAPER}; {PAPER_SPEED_SETTING}), quoted, not measured here:\n\n"
             + markdown_table(paper_header, paper_rows))
    return intro + markdown_table(header, rows) + paper


def _describe(rows: pd.DataFrame, column: str) -> str:
    if column not in rows.columns:
        return "an unrecorded " + column
    values = sorted({str(value) for value in rows[column].dropna()})
    return ", ".join(values) if values else "an unrecorded " + column


def _speed_header(column: str, memory_unit: str) -> str:
    if column in ("phase", "window", "patch", "batch"):
        return column.capitalize()
    if column == "rpb_fastest":
        return "fastest RPB"
    variant, _, quantity = column.partition("_")
    label = {"ms": "ms/iter", "kernel": "kernels", "speedup": "speedup"}.get(quantity, f"peak {memory_unit}")
    return f"{variant_label(variant)} {label}"


def variant_label(variant: str) -> str:
    """"rpb-sdpa" -> "RPB (sdpa)", "rib" -> "RIB", "none" -> "no-bias"."""
    bias, _, backend = variant.partition("-")
    return BIAS_LABELS.get(bias, bias) + (f" ({backend})" if backend else "")


def _speed_cell(column: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if _absent(value):
        return MISSING
    if column.endswith("_speedup"):
        return f"{value:.2f}x"
    if column.endswith("_ms") or "_peak_" in column:
        return f"{value:.1f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


TRAINING_COLUMNS = ("run", "preset", "bias", "scale", "iterations", "median_step_time_s", "wall_time_s",
                    "params", "device", "dtype", "seed", "final_val_iteration", "final_val_psnr")


def training_table(runs: list[TrainRun]) -> pd.DataFrame:
    records = []
    for run in runs:
        last = run.log.iloc[-1] if len(run.log) else None
        records.append({
            "run": run.name, "preset": run.preset, "bias": run.bias, "scale": run.scale,
            **{key: run.summary.get(key) for key in TRAINING_COLUMNS[4:11]},
            "final_val_iteration": None if last is None else int(last["iteration"]),
            "final_val_psnr": None if last is None else float(last["val_psnr"]),
        })
    return pd.DataFrame.from_records(records, columns=list(TRAINING_COLUMNS))


def training_markdown(frame: pd.DataFrame) -> str:
    header = ["Run", "Preset", "Bias", "Scale", "Iterations", "Median step (s)", "Wall (s)", "Params",
              "Device", "Dtype", "Seed", "Last validation at", "Val PSNR (dB)"]
    formats = {"median_step_time_s": "{:.3f}", "wall_time_s": "{:.0f}", "final_val_psnr": "{:.2f}",
               "iterations": "{:.0f}", "params": "{:,.0f}"}
    rows = []
    for record in frame.to_dict("records"):
        rows.append([MISSING if _absent(value) else formats.get(key, "{}").format(value)
                     for key, value in record.items()])
    return markdown_table(header, rows)
