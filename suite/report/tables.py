"""Tables of the report as DataFrames (written as CSV) and their Markdown and LaTeX renderings."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from suite.models import biases as bias_registry
from suite.profiling.tables import BASELINE, memory_column, speedup_column
from suite.stats import LEVEL, RESAMPLES, Interval, paired_bootstrap, paired_differences
from suite.report.paper import PAPER, PAPER_SOURCE, PAPER_VALUES, PaperRow, paper_row
from suite.report.readers import (
    MODEL_NAME,
    AnalysisTable,
    EvalResult,
    Profile,
    ReportInputError,
    TrainRun,
    method_key,
)

DATASET_ORDER = ("Set5", "Set14", "B100", "Urban100", "Manga109", "DIV2K-val", "LSDIR-val")
MEASURED = "measured"
MISSING = "–"
BIASES = bias_registry.BIASES
LABELS = ("source", "method", "bias", "note")
bias_label = bias_registry.label


def variant_label(variant: str) -> str:
    """"rpb-sdpa" -> "RPB (sdpa)", "rib" -> "RIB", "none" -> "no-bias", "rib-siren" -> "RIB-SIREN"."""
    for bias in sorted(BIASES, key=len, reverse=True):
        if variant == bias or variant.startswith(bias + "-"):
            backend = variant[len(bias) + 1:]
            return bias_label(bias) + (f" ({backend})" if backend else "")
    return variant


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, rows)]) + "\n"


def protocols_of(evals: list[EvalResult]) -> list[str]:
    return sorted({result.protocol for result in evals})


def protocol_caption(evals: list[EvalResult]) -> str:
    """"metric protocol basicsr-y" (or several, each named) for a caption."""
    names = protocols_of(evals)
    if not names:
        return "metric protocol: none recorded"
    return ("metric protocol " if len(names) == 1 else "metric protocols (MIXED) ") + ", ".join(f"`{n}`" for n in names)


# --- PSNR / SSIM ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PsnrTable:
    """Rows: measured methods (bicubic first), then the paper's rows; columns: `columns` as (dataset,
    scale), each a `<dataset>_x<scale>_psnr` and `_ssim` column of `frame`."""

    frame: pd.DataFrame
    columns: tuple[tuple[str, int], ...]


def column_name(dataset: str, scale: int, metric: str) -> str:
    return f"{dataset}_x{scale}_{metric}"


def _method_labels(method: str) -> tuple[str, str]:
    """(method, bias) cells of a measured row: ("tiny", "rib"), ("tiny", "rib (rank 8)") for a rank-ablation
    model, (method, "") for anything else."""
    match = MODEL_NAME.match(method)
    if method == "bicubic" or match is None:
        return method, ""
    return match["preset"], match["bias"] + (f" (rank {match['rank']})" if match["rank"] else "")


def model_title(method: str) -> str:
    """"tiny-rib" -> "tiny RIB", "tiny-rib-r8" -> "tiny RIB rank 8"; other names as they are."""
    match = MODEL_NAME.match(method)
    if match is None:
        return method
    return f"{match['preset']} {bias_label(match['bias'])}" + (f" rank {match['rank']}" if match["rank"] else "")


def psnr_table(evals: list[EvalResult], paper_rows: tuple[PaperRow, ...] | None = None) -> PsnrTable:
    paper_rows = tuple(PAPER_VALUES.rows.values()) if paper_rows is None else paper_rows
    # Every measured column, plus the paper's columns: the paper's rows stay visible even where this
    # run measured none of their datasets (the default config's mini benchmark).
    columns = tuple(sorted({(result.dataset, result.scale) for result in evals}
                           | {key for row in paper_rows for key in row.scores}, key=column_key))
    records = []
    for method in sorted({result.method for result in evals}, key=method_key):
        name, bias = _method_labels(method)
        record = {"source": MEASURED, "method": name, "bias": bias, "note": ""}
        for result in evals:
            if result.method == method:
                record[column_name(result.dataset, result.scale, "psnr")] = result.psnr
                record[column_name(result.dataset, result.scale, "ssim")] = result.ssim
        records.append(record)
    for row in paper_rows:
        record = {"source": PAPER_SOURCE, "method": row.key, "bias": row.bias, "note": row.note}
        for (dataset, scale), (psnr, ssim) in row.scores.items():
            record[column_name(dataset, scale, "psnr")] = psnr
            record[column_name(dataset, scale, "ssim")] = ssim
        records.append(record)
    value_columns = [column_name(d, s, m) for d, s in columns for m in ("psnr", "ssim")]
    frame = pd.DataFrame.from_records(records).reindex(columns=[*LABELS, *value_columns])
    frame[value_columns] = frame[value_columns].astype(float)
    return PsnrTable(frame=frame, columns=columns)


def column_key(column: tuple[str, int]) -> tuple:
    """Datasets of this run's own (not a standard benchmark) first, then the benchmarks in their usual order."""
    dataset, scale = column
    known = dataset in DATASET_ORDER
    return (known, DATASET_ORDER.index(dataset) if known else 0, dataset, scale)


def _score(psnr: float, ssim: float) -> str:
    if _absent(psnr):
        return MISSING
    return f"{psnr:.2f}" if _absent(ssim) else f"{psnr:.2f} / {ssim:.4f}"


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


def psnr_caption(evals: list[EvalResult]) -> str:
    return (f"PSNR (dB) / SSIM, Y channel, {protocol_caption(evals)}. Rows with source **{PAPER_SOURCE}** are "
            f"published figures (sources below), not measured here.")


def paper_sources(keys: list[str] | None = None) -> list[str]:
    """One line per source of the quoted rows."""
    rows = PAPER_VALUES.rows.values() if keys is None else [paper_row(key) for key in keys]
    by_source: dict[str, list[str]] = {}
    for row in rows:
        by_source.setdefault(row.source, []).append(row.key)
    return [f"{', '.join(names)}: {source}" for source, names in by_source.items()]


def psnr_markdown(table: PsnrTable, evals: list[EvalResult], footnote: list[str]) -> str:
    header, rows = psnr_cells(table)
    notes = "\n".join(f"- {text}" for text in footnote)
    sources = "\n".join(f"- {text}" for text in paper_sources())
    return (f"{psnr_caption(evals)}\n\n{markdown_table(header, rows)}\nSources of the paper rows "
            f"({PAPER}; values in `{PAPER_VALUES.path}`):\n\n{sources}\n\nNotes:\n\n{notes}\n")


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(char, char) for char in str(text))


def psnr_latex(table: PsnrTable, evals: list[EvalResult], footnote: list[str]) -> str:
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
    caption = (latex_escape(psnr_caption(evals).replace("**", "").replace("`", "")) + " "
               + " ".join(latex_escape(note) for note in [*paper_sources(), *footnote]))
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{caption}}}", "\\label{tab:psnr-ssim}",
              "\\end{table}"]
    return "\n".join(lines) + "\n"


# --- measured against the paper (12.2) -----------------------------------------------------------

COMPARISON_COLUMNS = ("method", "paper_row", "scale", "dataset", "psnr_measured", "psnr_paper", "psnr_diff",
                      "ssim_measured", "ssim_paper", "ssim_diff", "protocol")


def paper_comparison(evals: list[EvalResult], paper_rows: dict[str, str]) -> pd.DataFrame:
    """One row per method named in `paper_rows` (method -> paper row key), and per dataset and scale
    where either was measured or the paper states a value at a scale the method was evaluated at:
    measured, paper and measured - paper for PSNR and SSIM. A cell the run did not measure stays empty
    (NaN), so a missing evaluation shows rather than vanishing."""
    records = []
    for method, key in paper_rows.items():
        row = paper_row(key)
        measured = {(r.dataset, r.scale): r for r in evals if r.method == method}
        scales = {scale for _, scale in measured}
        cells = sorted({c for c in row.scores if c[1] in scales} | set(measured), key=lambda c: (c[1], column_key(c)))
        for dataset, scale in cells:
            psnr_paper, ssim_paper = row.scores.get((dataset, scale), (math.nan, None))
            ssim_paper = math.nan if ssim_paper is None else ssim_paper
            result = measured.get((dataset, scale))
            psnr, ssim = (result.psnr, result.ssim) if result else (math.nan, math.nan)
            records.append({"method": method, "paper_row": key, "scale": scale, "dataset": dataset,
                            "psnr_measured": psnr, "psnr_paper": psnr_paper, "psnr_diff": psnr - psnr_paper,
                            "ssim_measured": ssim, "ssim_paper": ssim_paper, "ssim_diff": ssim - ssim_paper,
                            "protocol": result.protocol if result else ""})
    return pd.DataFrame.from_records(records, columns=list(COMPARISON_COLUMNS))


def comparison_markdown(frame: pd.DataFrame, evals: list[EvalResult]) -> str:
    compared = [r for r in evals if r.method in set(frame["method"])]
    keys = list(dict.fromkeys(frame["paper_row"]))
    header = ["Method", "Paper row", "Scale", "Dataset", "PSNR measured", "PSNR paper", "Δ PSNR",
              "SSIM measured", "SSIM paper", "Δ SSIM"]

    def cell(value: float, digits: int, signed: bool = False) -> str:
        return MISSING if _absent(value) else (f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}")

    rows = [[r["method"], r["paper_row"], f"x{r['scale']}", r["dataset"],
             cell(r["psnr_measured"], 2), cell(r["psnr_paper"], 2), cell(r["psnr_diff"], 2, True),
             cell(r["ssim_measured"], 4), cell(r["ssim_paper"], 4), cell(r["ssim_diff"], 4, True)]
            for r in frame.to_dict("records")]
    sources = "\n".join(f"- {line}" for line in paper_sources(keys))
    return (f"Measured against the paper, per dataset and scale: PSNR (dB) and SSIM on the Y channel, "
            f"{protocol_caption(compared)}; Δ = measured - paper. {MISSING}: not measured here, or not "
            f"stated by the source.\n\n{markdown_table(header, rows)}\nSources (values in "
            f"`{PAPER_VALUES.path}`):\n\n{sources}\n")


# --- speed (profile sweep) ------------------------------------------------------------------------

SPEED_KEYS = ("phase", "window", "patch", "batch", "precision", "compile")


def _status_text(status: str | None) -> str:
    return "missing" if status in (None, "missing") else ("OOM" if status == "oom" else str(status).upper())


def speedup_text(row: dict, bottom: str = "rib", top: str = BASELINE) -> str:
    """The ratio top/bottom (RPB over `bottom`) of one speedup row as text, or which side did not run."""
    ratio = row.get(speedup_column(bottom))
    if ratio is not None:
        return f"{ratio:.2f}x"
    for bias in (top, bottom):
        if row.get(f"{bias}_status") != "ok":
            return f"{bias_label(bias)} {_status_text(row.get(f'{bias}_status'))}"
    return MISSING


def speed_table(profile: Profile) -> pd.DataFrame:
    """The speedup rows of the profile (suite.profiling.tables.speedup_rows): one row per point, per bias
    the fastest variant's time and peak memory, or its status where it did not run."""
    records = []
    for row in profile.speedups:
        record = {key: row[key] for key in SPEED_KEYS}
        for bias in BIASES:
            ran = row[f"{bias}_status"] == "ok"
            status = _status_text(row[f"{bias}_status"])
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
            cells += [record[f"{bias}_variant"] or MISSING, _number_cell(record[f"{bias}_ms"]),
                      _number_cell(record[f"{bias}_peak_mem_mb"])]
        cells += [record[speedup_column(bias)] for bias in others]
        cells += [record[memory_column(bias)] for bias in others]
        rows.append(cells)
    intro = (f"Profile sweep on {_describe(profile.rows, 'device_name')} ({_describe(profile.rows, 'device')}): "
             f"median milliseconds per iteration and peak memory (MB) per positional bias, each bias's fastest "
             f"attention backend (its variant) at each point; ratios are RPB's time (memory) over the other "
             f"bias's, all from one sweep. OOM: out of memory at that point.\n\n")
    paper_header = ["Phase", "Method", "As stated", "Ratio to RIB"]
    paper_rows = []
    for phase in ("train", "infer"):
        costs = [cost for cost in PAPER_VALUES.costs if cost.phase == phase]
        rib = next((cost for cost in costs if cost.bias == "rib"), None)
        for cost in costs:
            ratio = f"{cost.ms / rib.ms:.2f}x" if rib is not None and cost is not rib else ""
            paper_rows.append([phase, cost.method, cost.stated, ratio])
    paper = (f"\nThe paper's cost figures ({PAPER_VALUES.cost_source}; {PAPER_VALUES.cost_setting}), quoted, "
             f"not measured here:\n\n" + markdown_table(paper_header, paper_rows))
    return intro + markdown_table(header, rows) + paper


def _number_cell(value: object) -> str:
    if isinstance(value, str):
        return value
    return MISSING if _absent(value) else f"{value:.1f}"


# --- training runs --------------------------------------------------------------------------------

TRAINING_COLUMNS = ("run", "preset", "bias", "scale", "iterations", "median_step_time_s", "wall_time_s",
                    "params", "device", "precision", "seed", "final_val_iteration", "final_val_psnr")


def training_table(runs: list[TrainRun]) -> pd.DataFrame:
    records = []
    for run in runs:
        last = run.log.iloc[-1] if len(run.log) else None
        records.append({
            "run": run.name, "preset": run.preset, "bias": _method_labels(run.model)[1], "scale": run.scale,
            **{key: run.summary.get(key) for key in TRAINING_COLUMNS[4:11]},
            "final_val_iteration": None if last is None else int(last["iteration"]),
            "final_val_psnr": None if last is None else float(last["val_psnr"]),
        })
    return pd.DataFrame.from_records(records, columns=list(TRAINING_COLUMNS))


def training_markdown(frame: pd.DataFrame) -> str:
    header = ["Run", "Preset", "Bias", "Scale", "Iterations", "Median step (s)", "Wall (s)", "Params",
              "Device", "Precision", "Seed", "Last validation at", "Val PSNR (dB)"]
    formats = {"median_step_time_s": "{:.3f}", "wall_time_s": "{:.0f}", "final_val_psnr": "{:.2f}",
               "iterations": "{:.0f}", "params": "{:,.0f}"}
    rows = []
    for record in frame.to_dict("records"):
        rows.append([MISSING if _absent(value) else formats.get(key, "{}").format(value)
                     for key, value in record.items()])
    return markdown_table(header, rows)


# --- targets (the checks of the former smoke benchmark) -------------------------------------------

MIN_SPEEDUP = 2.0  # RIB's training step at least this much faster than RPB's at the preset's window
MAX_PSNR_DROP_DB = 0.1  # RIB's PSNR at most this far below RPB's
MIN_MARGIN_DB = 0.1  # both above bicubic by more than this


@dataclass(frozen=True)
class Target:
    check: str
    passed: bool
    measured: str
    sources: tuple[str, ...]


def targets(evals: list[EvalResult], runs: list[TrainRun]) -> list[Target]:
    """The smoke benchmark's checks, for every preset and scale trained with both RPB and RIB: the
    training step ratio from the runs' summaries, PSNR on every test set both were evaluated on."""
    found = []
    runs = [run for run in runs if run.rank is None]  # the rank ablation's runs have no RPB twin
    by_key = {(run.preset, run.scale, run.bias): run for run in runs}
    for preset, scale in sorted({(run.preset, run.scale) for run in runs}, key=lambda k: (method_key(f"{k[0]}-rib"), k[1])):
        rpb, rib = by_key.get((preset, scale, "rpb")), by_key.get((preset, scale, "rib"))
        if rpb is None or rib is None:
            continue
        speedup = rpb.summary["median_step_time_s"] / rib.summary["median_step_time_s"]
        window = rib.window
        found.append(Target(
            f"{preset} x{scale}: RIB training step >= {MIN_SPEEDUP:g}x faster than RPB"
            + (f" at the preset's {window}x{window} window" if window else ""),
            speedup >= MIN_SPEEDUP, f"{speedup:.2f}x (median step {rpb.summary['median_step_time_s']:.4f} s / "
                                    f"{rib.summary['median_step_time_s']:.4f} s)",
            (str(rpb.path / "summary.json"), str(rib.path / "summary.json"))))
        scored = {(r.method, r.dataset): r for r in evals if r.scale == scale}
        for dataset in sorted({d for (m, d) in scored if m == f"{preset}-rib"}):
            pair = scored.get((f"{preset}-rpb", dataset)), scored.get((f"{preset}-rib", dataset))
            bicubic = scored.get(("bicubic", dataset))
            if pair[0] is None:
                continue
            rpb_eval, rib_eval = pair
            drop = rpb_eval.psnr - rib_eval.psnr
            found.append(Target(f"{preset} x{scale} {dataset}: RIB PSNR at most {MAX_PSNR_DROP_DB:g} dB below RPB",
                                drop <= MAX_PSNR_DROP_DB, f"RIB - RPB = {-drop:+.3f} dB",
                                (str(rpb_eval.path), str(rib_eval.path))))
            if bicubic is None:
                continue
            for label, result in (("RPB", rpb_eval), ("RIB", rib_eval)):
                margin = result.psnr - bicubic.psnr
                found.append(Target(f"{preset} x{scale} {dataset}: {label} above bicubic by more than "
                                    f"{MIN_MARGIN_DB:g} dB", margin > MIN_MARGIN_DB, f"{margin:+.3f} dB",
                                    (str(result.path), str(bicubic.path))))
    return found


def targets_markdown(found: list[Target]) -> str:
    if not found:
        return ("No targets checked: they need a preset trained with both RPB and RIB at one scale "
                "(train/<preset>-rpb-x<s>, train/<preset>-rib-x<s>).\n")
    rows = [["PASS" if t.passed else "FAIL", t.check, t.measured] for t in found]
    verdict = "all pass" if all(t.passed for t in found) else f"{sum(not t.passed for t in found)} FAIL"
    return (f"The checks of the former smoke benchmark ({verdict}): training step time from the runs' "
            f"summaries (median over the iterations), PSNR from the evaluations.\n\n"
            + markdown_table(["Result", "Check", "Measured"], rows))


# --- research tools (suite analyze) and the rank ablation -----------------------------------------

def _cells(record: dict, formats: dict[str, str]) -> list[str]:
    return [MISSING if _absent(record[key]) or record[key] == "" else fmt.format(record[key])
            for key, fmt in formats.items()]


def bias_fields_markdown(table: AnalysisTable) -> str:
    """Per layer and head of every model: window, range, effective rank, translation deviation; the maps."""
    formats = {"run": "{}", "layer": "{}", "window": "{}", "head": "{}", "bias_min": "{:.3f}", "bias_max": "{:.3f}",
               "effective_rank_99": "{}", "translation_deviation": "{:.3f}"}
    rows = [_cells(record, formats) for record in table.frame.to_dict("records")]
    header = ["Run", "Layer", "Window", "Head", "Min", "Max", "Effective rank (99% energy)",
              "Deviation from translation invariance"]
    maps = []
    for path in table.paths:
        run = path.parent.name
        folder = f"analysis/bias/{run}"
        maps.append(f"- {run}: mean bias at each relative offset ![{run} offsets]({folder}/offsets.png), the "
                    f"centre token's bias over the window ![{run} centre]({folder}/centre.png) "
                    f"(PDFs beside them; the maps in `{folder}/fields.npz`)")
    return ("The positional bias each model learned (`suite analyze bias`), per attention layer and head: its "
            "range, the effective rank of the dense N x N bias (singular values needed for 99% of the squared "
            "Frobenius norm) and its deviation from translation invariance (RMS of the bias minus its mean at "
            "the same relative offset, over the RMS of the bias; 0 for RPB by construction).\n\n"
            + markdown_table(header, rows) + "\n" + "\n".join(maps) + "\n")


def lowrank_markdown(table: AnalysisTable) -> str:
    formats = {"run": "{}", "variant": "{}", "rank_label": "{}", "bias_rel_error": "{:.2e}",
               "bias_rel_error_max": "{:.2e}", "psnr": "{:.4f}", "psnr_change": "{:+.5f}", "ssim": "{:.4f}",
               "ssim_change": "{:+.1e}", "ms_median": "{:.1f}", "time_ratio": "{:.2f}x", "status": "{}"}
    rows = [_cells(record, formats) for record in table.frame.to_dict("records")]
    header = ["Run", "Variant", "Rank", "Bias error (relative Frobenius)", "Worst layer/head", "PSNR (dB)",
              "PSNR change", "SSIM", "SSIM change", "ms / image", "Time vs RPB", "Status"]
    return ("The trained RPB model converted to fixed rank-R factors by truncated SVD of each layer's dense bias "
            "(`suite analyze lowrank`; FlashBias's SVD route), run through RIB's concatenation path, so nothing "
            "N x N is built and flash kernels may run. Changes and time ratios are against the RPB model "
            "(first row of each run); `no-bias` (rank 0) is the RPB network with its bias dropped, which shows how "
            "much the bias matters at all. Times are medians of interleaved rounds on one test image, from one "
            "run (device, threads and rounds in each `lowrank.json`).\n\n" + markdown_table(header, rows))


def windows_markdown(table: AnalysisTable) -> str:
    formats = {"run": "{}", "factor": "{:g}", "window_sizes": "{}", "status": "{}", "psnr": "{:.4f}",
               "psnr_change": "{:+.5f}", "ssim": "{:.4f}", "ms_median": "{:.1f}", "time_ratio": "{:.2f}x",
               "reason": "{}"}
    rows = [_cells(record, formats) for record in table.frame.to_dict("records")]
    header = ["Run", "Window factor", "Windows", "Status", "PSNR (dB)", "PSNR change", "SSIM", "ms / image",
              "Time vs factor 1", "Reason"]
    return ("Each model evaluated with every attention window scaled by a factor (`suite analyze windows`): RIB's "
            "bias is a function of normalised coordinates and runs at any window; RPB's table fixes its window, "
            "so it refuses (the error is shown). Changes and time ratios are against factor 1 (the trained "
            "windows); times are medians of interleaved rounds on one test image, from one run.\n\n"
            + markdown_table(header, rows))


RANK_ABLATION_COLUMNS = ("model", "preset", "bias", "rank", "scale", "dataset", "psnr", "ssim",
                         "median_step_time_s", "wall_time_s", "params")


def rank_ablation_table(evals: list[EvalResult], runs: list[TrainRun]) -> pd.DataFrame:
    """The rank ablation: every RIB model trained at one rank ("<preset>-rib-r<R>") and every model without
    a positional bias, per test set and scale: PSNR, SSIM, and the run's median training step."""
    by_model = {(run.model, run.scale): run for run in runs if run.rank is not None or run.bias == "none"}
    records = []
    for result in sorted(evals, key=lambda r: (r.dataset, r.scale, method_key(r.method))):
        run = by_model.get((result.method, result.scale))
        if run is None:
            continue
        records.append({"model": run.model, "preset": run.preset, "bias": run.bias, "rank": run.rank,
                        "scale": run.scale, "dataset": result.dataset, "psnr": result.psnr, "ssim": result.ssim,
                        **{key: run.summary.get(key) for key in ("median_step_time_s", "wall_time_s", "params")}})
    return pd.DataFrame.from_records(records, columns=list(RANK_ABLATION_COLUMNS))


def rank_ablation_markdown(frame: pd.DataFrame) -> str:
    formats = {"model": "{}", "rank": "{:.0f}", "scale": "x{}", "dataset": "{}", "psnr": "{:.4f}",
               "ssim": "{:.4f}", "median_step_time_s": "{:.4f}", "wall_time_s": "{:.0f}", "params": "{:,.0f}"}
    rows = [_cells(record, formats) for record in frame.to_dict("records")]
    header = ["Model", "Rank", "Scale", "Test set", "PSNR (dB)", "SSIM", "Median training step (s)", "Wall (s)",
              "Params"]
    return ("RIB at each rank R (every layer) and without a positional bias, the same recipe and seed: PSNR on "
            "the test set (EMA weights) and each run's median training step time, from its summary.\n\n"
            + markdown_table(header, rows))


# --- positional biases compared (every trained model side by side) --------------------------------

BIAS_COMPARISON_COLUMNS = ("run", "model", "preset", "bias", "label", "rank", "scale", "flash", "fixed_window",
                           "params", "dataset", "psnr", "ssim", "psnr_vs_none", "psnr_vs_none_low",
                           "psnr_vs_none_high", "psnr_vs_none_images", "median_step_time_s", "step_time_vs_rib",
                           "infer_ms")
REFUSED = "refused"  # the status `suite analyze windows` gives a factor the model cannot run at
# "window sizes 16 16 (trained 32 32): " before the layer's own error (suite.evaluate.inference.apply_window_sizes).
_WINDOWS_PREFIX = re.compile(r"^window sizes [^:]*\(trained [^)]*\):\s*")


def compares_biases(runs: list[TrainRun]) -> bool:
    """Whether the report has a "Positional biases compared" section: trained runs of two biases or more
    (the workflow's `report_outputs` asks the same of the configured models)."""
    return len({run.bias for run in runs}) >= 2


def comparison_dataset(evals: list[EvalResult], runs: list[TrainRun],
                       dataset: str | None = None) -> tuple[str | None, str]:
    """The test set of the comparison and how it was chosen: `dataset` when given (the workflow passes its
    analysis dataset, the first of eval.datasets unless set), else the one with the most evaluations of the
    trained runs (ties: the PSNR table's column order); None when no trained run was evaluated."""
    if dataset is not None:
        return dataset, "the workflow's analysis dataset, the first of its eval datasets unless set"
    trained = {(run.model, run.scale) for run in runs}
    counts: dict[str, int] = {}
    for result in evals:
        if (result.method, result.scale) in trained:
            counts[result.dataset] = counts.get(result.dataset, 0) + 1
    if not counts:
        return None, "no trained model was evaluated"
    dataset = min(counts, key=lambda d: (-counts[d], column_key((d, 0))))
    return dataset, "the test set most trained models were evaluated on"


def refusal_clause(reason: str) -> str:
    """The first clause of a window refusal, in the layer's own words without the prefix naming the windows:
    "an RPB layer trained at window 32 cannot run at window 16"."""
    text = _WINDOWS_PREFIX.sub("", "" if _absent(reason) else str(reason)).strip()
    return re.split(r"[:;]\s", text, maxsplit=1)[0].strip()


def window_factor_column(kind: str, factor: float) -> str:
    """"psnr_change_x0.5", "status_x2", "reason_x1.5": the comparison's cells for one window factor."""
    return f"{kind}_x{factor:g}"


def window_factors_of(frame: pd.DataFrame) -> list[float]:
    """The window factors a comparison frame has columns for, ascending (1 among them where any ran)."""
    return sorted(float(column.removeprefix("status_x")) for column in frame.columns if column.startswith("status_x"))


def biases_table(evals: list[EvalResult], runs: list[TrainRun], windows: AnalysisTable | None,
                 dataset: str | None) -> pd.DataFrame:
    """One row per trained run (the runs' order: preset, scale, then the registry's order of biases; a
    rank-ablation model is its own row): the bias's properties from the registry (flash kernels, tied to its
    window), params and median training step from the run's summary, PSNR/SSIM on `dataset` from its eval, the
    PSNR difference to the no-bias run and the step-time ratio to the RIB run of the same preset and scale,
    inference ms at the trained windows and the PSNR change (or the refusal) at every other window factor from
    its `suite analyze windows` table."""
    scored = {(r.method, r.scale): r for r in evals if r.dataset == dataset}
    plain = {(run.preset, run.scale, run.bias): run for run in runs if run.rank is None}
    by_run = {name: group for name, group in windows.frame.groupby("run", sort=False)} if windows is not None else {}
    factors = sorted({float(f) for f in windows.frame["factor"]}) if windows is not None else []
    records = []
    for run in runs:
        spec = bias_registry.REGISTRY[run.bias]
        result = scored.get((run.model, run.scale))
        none, rib = plain.get((run.preset, run.scale, "none")), plain.get((run.preset, run.scale, "rib"))
        none_result = scored.get((none.model, run.scale)) if none is not None else None
        step = run.summary.get("median_step_time_s")
        interval = _image_interval(result, none_result) if run is not none else None
        record = {
            "run": run.name, "model": run.model, "preset": run.preset, "bias": run.bias, "label": spec.label,
            "rank": run.rank, "scale": run.scale, "flash": spec.flash, "fixed_window": spec.fixed_window,
            "params": run.summary.get("params"), "dataset": dataset,
            "psnr": result.psnr if result else None, "ssim": result.ssim if result else None,
            "psnr_vs_none": result.psnr - none_result.psnr if result and none_result else None,
            "psnr_vs_none_low": interval.low if interval else None,
            "psnr_vs_none_high": interval.high if interval else None,
            "psnr_vs_none_images": interval.n if interval else None,
            "median_step_time_s": step,
            "step_time_vs_rib": step / rib.summary["median_step_time_s"] if rib is not None and step else None,
            "infer_ms": None,
        }
        rows = by_run.get(run.name)
        for factor in factors:
            row = None if rows is None else next(
                (r for r in rows.to_dict("records") if float(r["factor"]) == factor), None)
            status = "" if row is None else str(row["status"])
            record[window_factor_column("psnr_change", factor)] = None if row is None else row["psnr_change"]
            record[window_factor_column("status", factor)] = status
            record[window_factor_column("reason", factor)] = refusal_clause(row["reason"]) if status == REFUSED else ""
            if factor == 1.0 and status == "ok":
                record["infer_ms"] = row["ms_median"]
        records.append(record)
    columns = [*BIAS_COMPARISON_COLUMNS, *(window_factor_column(kind, factor) for factor in factors
                                           for kind in ("psnr_change", "status", "reason"))]
    return pd.DataFrame.from_records(records, columns=columns)


def _image_interval(result: EvalResult | None, reference: EvalResult | None) -> Interval | None:
    """The paired-bootstrap interval of `result` - `reference` over their test images (per-image PSNR of the
    eval JSONs), or None where either side has no per-image scores."""
    if result is None or reference is None or not result.images or not reference.images:
        return None
    try:
        differences = paired_differences({image["name"]: float(image["psnr"]) for image in result.images},
                                         {image["name"]: float(image["psnr"]) for image in reference.images})
        return paired_bootstrap(differences)
    except (KeyError, TypeError, ValueError) as err:
        raise ReportInputError(f"{result.path} against {reference.path}: {err}") from None


def _difference_cell(record: dict) -> str:
    """"+0.0696 [+0.0312, +0.1103]": the PSNR difference to no bias with its interval over test images."""
    if _absent(record["psnr_vs_none"]):
        return MISSING
    cell = f"{record['psnr_vs_none']:+.4f}"
    if _absent(record["psnr_vs_none_low"]):
        return cell
    return cell + f" [{record['psnr_vs_none_low']:+.4f}, {record['psnr_vs_none_high']:+.4f}]"


def _verdict_cell(record: dict) -> str:
    if _absent(record["psnr_vs_none_low"]):
        return MISSING
    resolved = record["psnr_vs_none_low"] > 0 or record["psnr_vs_none_high"] < 0
    return "resolved" if resolved else "not resolved"


def _window_cell(record: dict, factor: float) -> str:
    change, status = record[window_factor_column("psnr_change", factor)], record[window_factor_column("status", factor)]
    if status == REFUSED:
        reason = record[window_factor_column("reason", factor)]
        return f"{REFUSED} ({reason})" if reason else REFUSED
    if not _absent(change):
        return f"{change:+.5f}"
    return _status_text(status) if status else MISSING


def biases_markdown(frame: pd.DataFrame, evals: list[EvalResult], chosen: str = "") -> str:
    """The comparison's Markdown: what each column is, the table, and what it does not show. `chosen`: how the
    test set was chosen (`comparison_dataset`)."""
    factors = [factor for factor in window_factors_of(frame) if factor != 1.0]
    header = ["Model", "Scale", "Flash kernels", "Tied to window", "Params", "PSNR (dB)", "SSIM",
              f"PSNR - no-bias (dB) [{LEVEL:.0%} interval over images]", "Over images",
              "Median training step (s)", "Step time / RIB", "Inference ms / image",
              *(f"Window x{factor:g}: PSNR change" for factor in factors)]
    before = {"scale": "x{}", "params": "{:,.0f}", "psnr": "{:.4f}", "ssim": "{:.4f}"}
    after = {"median_step_time_s": "{:.4f}", "step_time_vs_rib": "{:.2f}x", "infer_ms": "{:.1f}"}
    rows = []
    for record in frame.to_dict("records"):
        yes_no = ["yes" if record[key] else "no" for key in ("flash", "fixed_window")]
        first = _cells(record, before)
        rows.append([model_title(record["model"]), first[0], *yes_no, *first[1:], _difference_cell(record),
                     _verdict_cell(record), *_cells(record, after),
                     *(_window_cell(record, factor) for factor in factors)])
    images = sorted({int(n) for n in frame["psnr_vs_none_images"] if not _absent(n)})
    datasets = sorted({str(d) for d in frame["dataset"] if not _absent(d)})
    scored = [r for r in evals if r.dataset in datasets]
    return (
        f"Every trained model side by side, one row per training run (a rank-ablation model is a row of its own). "
        f"From the bias registry (`suite/models/biases.py`): flash kernels, whether flash attention can run the "
        f"bias (no dense N x N term added to the logits); tied to window, whether its weights hold one entry per "
        f"token (pair) of the trained window, so that it cannot run at another. From each run's summary: params and "
        f"the median training step time; step time / RIB is over the RIB run of the same preset and scale. PSNR "
        f"(dB, Y channel) and SSIM: EMA weights on {', '.join(datasets) or 'no test set'}"
        + (f" ({chosen})" if chosen else "")
        + f", {protocol_caption(scored)}; PSNR - no-bias subtracts the model without a positional bias of the same "
        f"preset and scale, with the {LEVEL:.0%} percentile-bootstrap interval of the mean paired difference over "
        f"the test images ({', '.join(map(str, images)) or 'no'} images, {RESAMPLES:,} resamples, per-image PSNR "
        f"from the eval JSONs); over images: resolved where that interval excludes 0, not resolved where it does "
        f"not. Inference ms / image: the median at the trained windows on one test image, from the "
        f"model's window-extrapolation table; each model was timed in its own `suite analyze windows` run, not "
        f"interleaved with the other models, so a ratio between two models also carries whatever changed on the "
        f"machine between their runs. Window xF: the PSNR change with every attention window scaled by F, against "
        f"the trained windows; refused: the model cannot run there (the first clause of the layer's error). "
        f"{MISSING}: not measured.\n\n"
        + markdown_table(header, rows)
        + "\nEach row is a single run (one seed). The intervals cover the sampling of test images only: another "
          "training seed moves a model by more than that at this size, so a difference resolved over images is "
          "not yet resolved between the biases, and the table ranks no bias above another.\n")
