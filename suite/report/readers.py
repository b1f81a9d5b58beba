"""Read a results folder through the schemas of the parts that wrote it.

Layout (what the workflow writes under results/<config>/):
    eval/<method>/<dataset>-x<scale>.json       method: "bicubic", "<preset>-<bias>" or, in the rank
                                                ablation, "<preset>-rib-r<R>" (a trained run), each with
                                                "-s<seed>" where the workflow trains several seeds, or
                                                any other name (e.g. a released model)
    images/<method>/<dataset>-x<scale>/<name>.png
    train/<model>-x<scale>/summary.json, train_log.csv
    profile/profile.json
    analysis/<tool>/<model>-x<scale>/<table>.csv     (suite analyze; suite.analysis.outputs)

Summaries are read through the trainer's own field list (`SUMMARY_FIELDS`), training logs through its
CSV columns, the profile through `suite.profiling.tables.read_profile`. A file that does not follow its
schema raises ReportInputError naming the file and the field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from suite.analysis.outputs import ANALYSIS_OUTPUTS
from suite.models.biases import BIASES
from suite.profiling import tables as profile_tables
from suite.train import SUMMARY_FIELDS
from suite.train.monitor import CSV_FIELDS as TRAIN_LOG_FIELDS

BIAS_ORDER = BIASES
PRESET_ORDER = ("tiny", "light", "base", "base+", "large", "large+")


def order_key(value: str, order: tuple[str, ...]) -> tuple[int, str]:
    """Sort key: known values in `order`'s order, then the rest alphabetically."""
    return (order.index(value) if value in order else len(order), value)


def method_key(method: str) -> tuple:
    """Sort key of a method folder name: bicubic, then "<preset>-<bias>" by preset and bias, then others."""
    if method == "bicubic":
        return (0, (0, ""), (0, ""), 0, 0)
    match = MODEL_NAME.match(method)
    if match is None:
        return (2, (0, method), (0, ""), 0, 0)
    return (
        1,
        order_key(match["preset"], PRESET_ORDER),
        order_key(match["bias"], BIAS_ORDER),
        int(match["rank"] or 0),
        int(match["seed"] or 0),
    )


def seedless(method: str) -> str:
    """The model a method's runs share over seeds: "tiny-rib-s1" -> "tiny-rib"; any other name as it is."""
    match = MODEL_NAME.match(method)
    if match is None or match["seed"] is None:
        return method
    return method[: match.start("seed") - 2]


def seed_of(method: str) -> int | None:
    """The seed a method's name carries ("tiny-rib-s1" -> 1), None for a name without one."""
    match = MODEL_NAME.match(method)
    return int(match["seed"]) if match and match["seed"] is not None else None


class ReportInputError(ValueError):
    """A result file the report cannot use; the message names the file and what is wrong."""


EVAL_NAME = re.compile(r"^(?P<dataset>[A-Za-z0-9_.+-]+?)-x(?P<scale>\d+)\.json$")
METHOD_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
# A trained model: "<preset>-<bias>", or "<preset>-rib-r<R>" for rank R in every layer (the rank ablation),
# followed by "-s<seed>" where the workflow trains several seeds (train.seeds).
# Longest names first, so that "rib-siren" is not read as "rib" with a rest.
_BIAS_ALTERNATIVES = "|".join(re.escape(bias) for bias in sorted(BIASES, key=len, reverse=True))
MODEL_PATTERN = rf"(?P<preset>[A-Za-z0-9_+]+)-(?P<bias>{_BIAS_ALTERNATIVES})(?:-r(?P<rank>\d+))?(?:-s(?P<seed>\d+))?"
MODEL_NAME = re.compile(f"^{MODEL_PATTERN}$")
RUN_NAME = re.compile(rf"^{MODEL_PATTERN}-x(?P<scale>\d+)$")


@dataclass(frozen=True)
class EvalResult:
    """One method on one test set at one scale (mean PSNR in dB and SSIM, and per image)."""

    method: str  # "bicubic", "<preset>-<bias>", or another name (a released model)
    dataset: str
    scale: int
    psnr: float
    ssim: float
    images: tuple[dict, ...]  # ({"name", "psnr", "ssim"}, ...)
    provenance: dict
    metric_options: dict
    path: Path

    @property
    def trained(self) -> bool:
        return MODEL_NAME.match(self.method) is not None

    @property
    def preset(self) -> str:
        return MODEL_NAME.match(self.method)["preset"] if self.trained else ""

    @property
    def bias(self) -> str:
        return MODEL_NAME.match(self.method)["bias"] if self.trained else ""

    @property
    def rank(self) -> int | None:
        """The rank of a rank-ablation model ("<preset>-rib-r<R>"), else None."""
        match = MODEL_NAME.match(self.method)
        return int(match["rank"]) if match and match["rank"] else None

    @property
    def model(self) -> str:
        """The model without its seed ("tiny-rib-s1" -> "tiny-rib"): what results over seeds are grouped by."""
        return seedless(self.method)

    @property
    def seed(self) -> int | None:
        return seed_of(self.method)

    @property
    def protocol(self) -> str:
        """The metric protocol's name (suite.metrics.PROTOCOLS), as the eval recorded it."""
        return str(self.metric_options.get("protocol") or "unrecorded")


@dataclass(frozen=True)
class TrainRun:
    """One training run: its summary.json (the trainer's SUMMARY_FIELDS) and its train_log.csv."""

    name: str  # "<preset>-<bias>-x<scale>" or "<preset>-rib-r<R>-x<scale>", "-s<seed>" before "-x" with seeds
    preset: str
    bias: str
    scale: int
    summary: dict
    log: pd.DataFrame = field(repr=False)  # the trainer's log columns, rows with a validation PSNR
    path: Path = Path()
    rank: int | None = None  # R of a rank-ablation run (rank R in every layer), else None
    step_times: tuple[float, ...] = ()  # seconds, every logged iteration's step (train_log.csv)

    @property
    def model(self) -> str:
        """The model's name without the scale, as its eval folder is named."""
        return self.name.rsplit("-x", 1)[0]

    @property
    def seed(self) -> int:
        """The seed the run trained with (its summary's)."""
        return int(self.summary.get("seed") or 0)

    @property
    def group(self) -> str:
        """The model without its seed: what runs are grouped by over seeds."""
        return seedless(self.model)

    @property
    def window(self) -> int | None:
        """The largest attention window of the run's model."""
        windows = (self.summary.get("model") or {}).get("window_sizes") or []
        return max(windows) if windows else None


def _load_json(path: Path) -> dict:
    try:
        # Infinity: BasicSR's PSNR of an image identical to its reference.
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


def read_eval(path: Path) -> EvalResult:
    """One eval JSON; its method is its folder's name, dataset and scale its file name's."""
    path = Path(path)
    match = EVAL_NAME.match(path.name)
    if not match:
        raise ReportInputError(f"{path}: eval results are named <dataset>-x<scale>.json")
    method = path.parent.name
    if not METHOD_NAME.match(method):
        raise ReportInputError(f"{path}: method folder {method!r} may hold only letters, digits and _.+-")
    data = _load_json(path)
    missing = [key for key in ("psnr", "ssim", "scale") if key not in data]
    if missing:
        raise ReportInputError(f"{path}: missing key(s) {', '.join(missing)} (have {', '.join(sorted(data))})")
    scale = int(match["scale"])
    if int(_number(path, "scale", data["scale"])) != scale:
        raise ReportInputError(f"{path}: scale {data['scale']} in the file, x{scale} in its name")
    return EvalResult(
        method=method,
        dataset=match["dataset"],
        scale=scale,
        psnr=_number(path, "psnr", data["psnr"]),
        ssim=_number(path, "ssim", data["ssim"]),
        images=tuple(data.get("images") or ()),
        provenance=dict(data.get("provenance") or {}),
        metric_options=dict(data.get("metric_options") or {}),
        path=path,
    )


def read_evals(results: Path) -> list[EvalResult]:
    return [read_eval(path) for path in sorted(Path(results).glob("eval/*/*.json"))]


def read_summary(path: Path) -> dict:
    """summary.json: every field of the trainer's SUMMARY_FIELDS must be there; times are numbers."""
    summary = _load_json(path)
    missing = [key for key in SUMMARY_FIELDS if key not in summary]
    if missing:
        raise ReportInputError(
            f"{path}: missing field(s) {', '.join(missing)} of the trainer's summary "
            f"(suite.train.SUMMARY_FIELDS); re-run the training with this suite"
        )
    for key in ("iterations", "median_step_time_s"):
        summary[key] = _number(path, key, summary[key])
    return summary


def read_train_log(path: Path) -> pd.DataFrame:
    """train_log.csv (the trainer's columns) as numbers, sorted by iteration (empty cells NaN)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ReportInputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ReportInputError(f"{path}: not a readable CSV file ({err})") from err
    missing = [column for column in TRAIN_LOG_FIELDS if column not in frame.columns]
    if missing:
        raise ReportInputError(
            f"{path}: missing column(s) {', '.join(missing)} of the trainer's log; "
            f"columns present: {', '.join(map(str, frame.columns))}"
        )
    frame = frame[list(TRAIN_LOG_FIELDS)].apply(pd.to_numeric, errors="coerce")
    return frame.sort_values("iteration").reset_index(drop=True)


def read_runs(results: Path) -> list[TrainRun]:
    runs = []
    for summary_path in sorted(Path(results).glob("train/*/summary.json")):
        folder = summary_path.parent
        match = RUN_NAME.match(folder.name)
        if not match:
            raise ReportInputError(
                f"{folder}: training runs are named <preset>-<bias>-x<scale> (or <preset>-rib-r<rank>-x<scale>)"
            )
        log = read_train_log(folder / "train_log.csv")
        runs.append(
            TrainRun(
                name=folder.name,
                preset=match["preset"],
                bias=match["bias"],
                scale=int(match["scale"]),
                summary=read_summary(summary_path),
                log=log.dropna(subset=["val_psnr"]).reset_index(drop=True),
                path=folder,
                rank=int(match["rank"]) if match["rank"] else None,
                step_times=tuple(float(t) for t in log["step_time_s"].dropna()),
            )
        )
    return sorted(
        runs,
        key=lambda run: (
            order_key(run.preset, PRESET_ORDER),
            run.scale,
            order_key(run.bias, BIAS_ORDER),
            run.rank or 0,
            run.seed,
        ),
    )


@dataclass(frozen=True)
class Profile:
    """The profile sweep: its rows as `suite profile` wrote them, and the speedup rows built from them."""

    rows: list[dict]
    speedups: list[dict]  # suite.profiling.tables.speedup_rows(rows)
    path: Path
    run_records: tuple[dict, ...] = ()  # one per invocation of the sweep (sweep.json beside profile.json)


def read_profile(path: Path) -> Profile:
    """profile.json through the profiling package's own reader, and the sweep's run records from the
    sweep.json beside it where there is one; errors become ReportInputError naming the file."""
    path = Path(path)
    try:
        rows = profile_tables.read_profile(path)
    except (ValueError, FileNotFoundError) as err:
        raise ReportInputError(str(err)) from err
    sweep_path = path.parent / "sweep.json"
    records: tuple[dict, ...] = ()
    if sweep_path.is_file():
        invocations = _load_json(sweep_path).get("invocations") or []
        records = tuple(record for record in invocations if isinstance(record, dict))
    return Profile(rows=rows, speedups=profile_tables.speedup_rows(rows), path=path, run_records=records)


def lock_mismatches(
    evals: list[EvalResult], runs: list[TrainRun], profile: Profile | None = None
) -> list[tuple[Path, dict]]:
    """(file, lock status) of every result whose run record does not say the environment matched the lock
    (`matches` False, or a status that could not be determined: {"error": ...}). Records without a lock
    status (written before the lock existed) say nothing either way and are not listed."""
    found = []
    records = [(r.path, r.provenance) for r in evals] + [
        (run.path / "summary.json", run.summary.get("provenance")) for run in runs
    ]
    if profile is not None:
        records += [(profile.path.parent / "sweep.json", record) for record in profile.run_records]
    for path, record in records:
        lock = (record or {}).get("lock") if isinstance(record, dict) else None
        if isinstance(lock, dict) and lock.get("matches") is not True:
            found.append((path, lock))
    return found


# --- research tools (suite analyze): each tool's table as suite.analysis.outputs declares it -----------


@dataclass(frozen=True)
class AnalysisTable:
    """One tool's tables of every model, stacked with the model's run name ("tiny-rpb-x2") first."""

    tool: str  # "bias", "lowrank" or "windows"
    frame: pd.DataFrame
    paths: tuple[Path, ...]


def read_analysis(results: Path, tool: str) -> AnalysisTable | None:
    """analysis/<tool>/<model>-x<scale>/<table>.csv of every model, or None when the tool did not run."""
    table = ANALYSIS_OUTPUTS[tool].table
    paths = tuple(sorted(Path(results).glob(f"analysis/{tool}/*/{table.csv_name}")))
    if not paths:
        return None
    frames = []
    for path in paths:
        if not RUN_NAME.match(path.parent.name):
            raise ReportInputError(f"{path}: analysis folders are named after a training run (<model>-x<scale>)")
        try:
            frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise ReportInputError(f"{path}: not a readable CSV file ({err})") from err
        optional = ANALYSIS_OUTPUTS[tool].optional
        missing = [column for column in table.columns if column not in frame.columns and column not in optional]
        if missing:
            raise ReportInputError(
                f"{path}: missing column(s) {', '.join(missing)} of `suite analyze {tool}`; "
                f"columns present: {', '.join(map(str, frame.columns))}"
            )
        for column in optional:
            if column not in frame.columns:  # a table of an earlier version: no interval
                frame[column] = float("nan")
        for column in ANALYSIS_OUTPUTS[tool].numeric:
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column].notna() & values.isna()
            if bad.any():
                row = int(bad.idxmax())
                raise ReportInputError(
                    f"{path}: column {column} holds {frame[column][row]!r} in data row {row + 1}, not a number"
                )
            frame[column] = values
        frame.insert(0, "run", path.parent.name)
        frames.append(frame)
    return AnalysisTable(tool, pd.concat(frames, ignore_index=True), paths)
