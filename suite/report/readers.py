"""Read a results folder: eval JSONs, training summaries and logs, the profile CSV.

Layout (what the workflow writes under results/<config>/):
    eval/<method>/<dataset>-x<scale>.json       method: "bicubic" or "<preset>-<bias>"
    images/<method>/<dataset>-x<scale>/<name>.png
    train/<preset>-<bias>-x<scale>/summary.json, train_log.csv
    profile/profile.csv

Column and key names are those of CONTRACT.md; a few spellings of the same quantity are accepted
(listed in the alias tables), and a missing required one raises ReportInputError naming the file.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

BIAS_ORDER = ("rpb", "rib", "none")
PRESET_ORDER = ("tiny", "light", "base", "base+", "large", "large+")


def order_key(value: str, order: tuple[str, ...]) -> tuple[int, str]:
    """Sort key: known values in `order`'s order, then the rest alphabetically."""
    return (order.index(value) if value in order else len(order), value)


def variant_key(variant: str) -> tuple:
    """Sort key of a profile variant ("rpb-sdpa", "rib", ...): by bias, then by name."""
    return (order_key(variant.split("-", 1)[0], BIAS_ORDER), variant)


def method_key(method: str) -> tuple:
    """Sort key of a method folder name: bicubic, then "<preset>-<bias>" by preset and bias order."""
    if method == "bicubic":
        return (0, (0, ""), (0, ""))
    preset, bias = method.rsplit("-", 1)
    return (1, order_key(preset, PRESET_ORDER), order_key(bias, BIAS_ORDER))


class ReportInputError(ValueError):
    """A result file the report cannot use; the message names the file and what is wrong."""


@dataclass(frozen=True)
class EvalResult:
    """One method on one test set at one scale (mean PSNR in dB and SSIM, and per image)."""

    method: str  # "bicubic" or "<preset>-<bias>"
    dataset: str
    scale: int
    psnr: float
    ssim: float
    images: tuple[dict, ...]  # ({"name", "psnr", "ssim"}, ...)
    provenance: dict
    metric_options: dict
    path: Path

    @property
    def preset(self) -> str:
        return "" if self.method == "bicubic" else self.method.rsplit("-", 1)[0]

    @property
    def bias(self) -> str:
        return "" if self.method == "bicubic" else self.method.rsplit("-", 1)[1]


@dataclass(frozen=True)
class TrainRun:
    """One training run: its summary.json (normalised keys) and its train_log.csv."""

    name: str  # "<preset>-<bias>-x<scale>"
    preset: str
    bias: str
    scale: int
    summary: dict
    log: pd.DataFrame = field(repr=False)  # columns: iteration, val_psnr (+ val_ssim, loss, lr if logged)
    path: Path = Path()


EVAL_NAME = re.compile(r"^(?P<dataset>[A-Za-z0-9_]+)-x(?P<scale>\d+)\.json$")
RUN_NAME = re.compile(r"^(?P<preset>[A-Za-z0-9_+]+)-(?P<bias>rpb|rib|none)-x(?P<scale>\d+)$")
MODEL_NAME = re.compile(r"^(?P<preset>[A-Za-z0-9_+]+)-(?P<bias>rpb|rib|none)$")

# summary.json: normalised key -> accepted keys, first match wins.
SUMMARY_KEYS: dict[str, tuple[str, ...]] = {
    "iterations": ("iterations", "iters", "total_iterations", "n_iterations"),
    "median_step_time_s": ("median_step_time_s", "step_time_median_s", "median_step_s",
                           "step_time_s_median", "median_step_time"),
    "wall_time_s": ("wall_time_s", "wall_s", "wall_time", "wall_clock_s"),
    "params": ("params", "n_params", "parameters", "num_params"),
    "device": ("device",),
    "dtype": ("dtype",),
    "seed": ("seed",),
    "torch_version": ("torch_version", "torch"),
    "batch_size": ("global_batch", "batch_size", "batch"),
    "lr_patch": ("lr_patch", "patch"),
}
SUMMARY_REQUIRED = ("iterations", "median_step_time_s")

TRAIN_LOG_REQUIRED = ("iteration", "val_psnr")
TRAIN_LOG_OPTIONAL = ("val_ssim", "loss", "lr", "step_time_s")

# profile.csv: normalised column -> accepted column names.
PROFILE_COLUMNS: dict[str, tuple[str, ...]] = {
    "bias": ("bias",),
    "variant": ("variant",),  # "rib", "none", "rpb-<backend>": a bias on a given attention backend
    "phase": ("phase",),
    "window": ("window", "window_size"),
    "ms": ("ms_median", "median_ms", "ms_per_iter_median", "ms_per_iter", "time_ms_median", "time_ms"),
    "patch": ("patch", "patch_size", "lr_patch"),
    "batch": ("batch", "batch_size"),
    "status": ("status",),
    "kernel": ("attention_kernels", "attention_kernel", "kernel", "kernel_family"),
    "device": ("device",),
    "dtype": ("dtype",),
    "torch_version": ("torch_version", "torch"),
}
PROFILE_REQUIRED = ("phase", "window", "ms")  # and bias or variant
# Peak memory: accepted column -> (unit shown, factor to that unit).
PROFILE_MEMORY: dict[str, tuple[str, float]] = {
    "peak_mem_mb": ("MB", 1.0), "peak_memory_mb": ("MB", 1.0), "peak_mb": ("MB", 1.0),
    "peak_mem_mib": ("MiB", 1.0), "peak_memory_mib": ("MiB", 1.0), "peak_mib": ("MiB", 1.0),
    "peak_mem_bytes": ("MiB", 1 / 2**20), "peak_memory_bytes": ("MiB", 1 / 2**20), "peak_bytes": ("MiB", 1 / 2**20),
}


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportInputError(f"{path}: not a readable JSON file ({err})") from err
    if not isinstance(data, dict):
        raise ReportInputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _number(path: Path, key: str, value: object) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ReportInputError(f"{path}: {key} = {value!r} is not a number") from None
    if math.isnan(number):
        raise ReportInputError(f"{path}: {key} is NaN")
    return number


def _normalise_name(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def read_eval(path: Path) -> EvalResult:
    """One eval JSON; its method is its folder's name, dataset and scale its file name's."""
    path = Path(path)
    match = EVAL_NAME.match(path.name)
    if not match:
        raise ReportInputError(f"{path}: eval results are named <dataset>-x<scale>.json")
    method = path.parent.name
    if method != "bicubic" and not MODEL_NAME.match(method):
        raise ReportInputError(f"{path}: folder {method!r} is neither 'bicubic' nor '<preset>-<bias>'")
    data = _load_json(path)
    missing = [key for key in ("psnr", "ssim", "scale") if key not in data]
    if missing:
        raise ReportInputError(f"{path}: missing key(s) {', '.join(missing)} (have {', '.join(sorted(data))})")
    scale = int(match["scale"])
    if int(_number(path, "scale", data["scale"])) != scale:
        raise ReportInputError(f"{path}: scale {data['scale']} in the file, x{scale} in its name")
    images = tuple(data.get("images") or ())
    return EvalResult(
        method=method, dataset=match["dataset"], scale=scale,
        psnr=_number(path, "psnr", data["psnr"]), ssim=_number(path, "ssim", data["ssim"]),
        images=images, provenance=dict(data.get("provenance") or {}),
        metric_options=dict(data.get("metric_options") or {}), path=path,
    )


def read_evals(results: Path) -> list[EvalResult]:
    return [read_eval(path) for path in sorted(Path(results).glob("eval/*/*.json"))]


def read_summary(path: Path) -> dict:
    """summary.json with keys normalised per SUMMARY_KEYS; unknown keys are kept as they are."""
    raw = _load_json(path)
    summary = dict(raw)
    lowered = {_normalise_name(key): value for key, value in raw.items()}
    for key, accepted in SUMMARY_KEYS.items():
        for name in accepted:
            if name in lowered:
                summary[key] = lowered[name]
                break
    missing = [key for key in SUMMARY_REQUIRED if key not in summary]
    if missing:
        wanted = "; ".join(f"{key} (any of {', '.join(SUMMARY_KEYS[key])})" for key in missing)
        raise ReportInputError(f"{path}: missing {wanted}")
    for key in SUMMARY_REQUIRED:
        summary[key] = _number(path, key, summary[key])
    return summary


def read_csv_columns(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = (),
                     aliases: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """A CSV with its columns renamed to the normalised names; a missing required column is an
    error naming the file and the column."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ReportInputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ReportInputError(f"{path}: not a readable CSV file ({err})") from err
    frame.columns = [_normalise_name(column) for column in frame.columns]
    aliases = aliases or {name: (name,) for name in (*required, *optional)}
    renamed: dict[str, str] = {}
    for key, accepted in aliases.items():
        for name in accepted:
            if name in frame.columns:
                renamed[name] = key
                break
    missing = [key for key in required if key not in renamed.values()]
    if missing:
        wanted = "; ".join(f"{key} (any of {', '.join(aliases[key])})" if len(aliases[key]) > 1 else key
                           for key in missing)
        raise ReportInputError(f"{path}: missing required column {wanted}; "
                               f"columns present: {', '.join(frame.columns)}")
    return frame.rename(columns=renamed)


def read_train_log(path: Path) -> pd.DataFrame:
    """train_log.csv -> rows with a validation PSNR, sorted by iteration."""
    frame = read_csv_columns(path, TRAIN_LOG_REQUIRED, TRAIN_LOG_OPTIONAL)
    keep = [column for column in (*TRAIN_LOG_REQUIRED, *TRAIN_LOG_OPTIONAL) if column in frame.columns]
    frame = frame[keep].copy()
    for column in keep:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.dropna(subset=["val_psnr"]).sort_values("iteration").reset_index(drop=True)


def read_runs(results: Path) -> list[TrainRun]:
    runs = []
    for summary_path in sorted(Path(results).glob("train/*/summary.json")):
        folder = summary_path.parent
        match = RUN_NAME.match(folder.name)
        if not match:
            raise ReportInputError(f"{folder}: training runs are named <preset>-<bias>-x<scale>")
        runs.append(TrainRun(
            name=folder.name, preset=match["preset"], bias=match["bias"], scale=int(match["scale"]),
            summary=read_summary(summary_path), log=read_train_log(folder / "train_log.csv"), path=folder,
        ))
    return sorted(runs, key=lambda run: (order_key(run.preset, PRESET_ORDER), run.scale,
                                         order_key(run.bias, BIAS_ORDER)))


@dataclass(frozen=True)
class Profile:
    """The profile sweep, one row per point: bias, variant (the bias where the CSV has no variant),
    phase, window, ms (NaN unless status is "ok"), peak_mem (in `memory_unit`, NaN if not measured),
    status ("ok", "oom", ...), and patch, batch, kernel, device, dtype where the CSV has them."""

    rows: pd.DataFrame
    memory_unit: str
    path: Path


def read_profile(path: Path) -> Profile:
    path = Path(path)
    frame = read_csv_columns(path, PROFILE_REQUIRED, aliases=PROFILE_COLUMNS)
    memory_unit, memory = "MB", pd.Series(float("nan"), index=frame.index)
    for column, (unit, factor) in PROFILE_MEMORY.items():
        if column in frame.columns:
            memory_unit, memory = unit, pd.to_numeric(frame[column], errors="coerce") * factor
            break
    if "bias" not in frame.columns and "variant" not in frame.columns:
        raise ReportInputError(f"{path}: missing required column bias (or variant); "
                               f"columns present: {', '.join(frame.columns)}")
    variant = frame["variant"] if "variant" in frame.columns else frame["bias"]
    bias = frame["bias"] if "bias" in frame.columns else variant.astype(str).str.split("-").str[0]
    bias = bias.astype(str).str.strip().str.lower()
    rows = pd.DataFrame({
        "bias": bias,
        "variant": variant.fillna(bias).astype(str).str.strip().str.lower(),
        "phase": frame["phase"].astype(str).str.strip().str.lower(),
        "window": pd.to_numeric(frame["window"], errors="coerce"),
        "ms": pd.to_numeric(frame["ms"], errors="coerce"),
        "peak_mem": memory,
        "status": (frame["status"].fillna("ok").astype(str).str.strip().str.lower()
                   if "status" in frame.columns else "ok"),
    })
    for column in ("patch", "batch", "kernel", "device", "dtype", "torch_version"):
        if column in frame.columns:
            rows[column] = frame[column]
    if rows["window"].isna().any():
        bad = frame.loc[rows["window"].isna(), "window"].iloc[0]
        raise ReportInputError(f"{path}: window {bad!r} is not a number")
    rows["window"] = rows["window"].astype(int)
    failed = rows["status"] != "ok"
    rows.loc[failed, ["ms", "peak_mem"]] = float("nan")
    unmeasured = ~failed & rows["ms"].isna()
    if unmeasured.any():
        row = rows[unmeasured].iloc[0]
        raise ReportInputError(f"{path}: status ok but no time for {row['variant']} {row['phase']} "
                               f"window {row['window']}")
    return Profile(rows=rows, memory_unit=memory_unit, path=path)
