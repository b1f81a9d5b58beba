"""The published figures the report quotes, read from the one data file `paper_values.yaml` (package data).

Every paper row, paper speed figure and paper column of the report comes from that file; nothing here
types a number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

PAPER_SOURCE = "paper"  # the `source` of every quoted row; measured rows say "measured"
SCORE_KEY = re.compile(r"^(?P<dataset>[A-Za-z0-9_.+-]+) x(?P<scale>[1-9])$")


class PaperValuesError(ValueError):
    """paper_values.yaml is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class PaperRow:
    """One model's PSNR (dB) and SSIM as its source states them; SSIM None where it gives none."""

    key: str  # the row's name, e.g. "SST-XL+ (DFLIP)"
    bias: str  # "rib" for the paper's RIB models; empty where the source does not say
    note: str
    source: str  # where the numbers were published
    scores: dict[tuple[str, int], tuple[float, float | None]]  # (dataset, scale) -> (psnr, ssim)


@dataclass(frozen=True)
class PaperCost:
    """One bar of the teaser's cost panels, in ms and MB (converted from the paper's s and GB)."""

    phase: str  # "train" or "infer"
    method: str
    bias: str
    ms: float
    memory_mb: float
    stated: str  # the figures as the paper states them, units included


@dataclass(frozen=True)
class PaperValues:
    paper: str  # the citation of the paper
    rows: dict[str, PaperRow]
    costs: tuple[PaperCost, ...]
    cost_setting: str
    cost_source: str
    path: str


def _fail(path: str, where: str, what: str) -> PaperValuesError:
    return PaperValuesError(f"{path}: {where}: {what}")


def _number(path: str, where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, where, f"{value!r} is not a number")
    return float(value)


def parse_paper_values(data: object, path: str) -> PaperValues:
    """Check and convert the YAML document; every error names the entry."""
    if not isinstance(data, dict) or not {"paper", "groups", "rows", "speed"} <= set(data):
        raise _fail(path, "top level", "expected the keys paper, groups, rows, speed")
    groups = data["groups"]
    if not isinstance(groups, dict) or not all(isinstance(g, dict) and g.get("source") for g in groups.values()):
        raise _fail(path, "groups", "each group needs a source")
    rows = {}
    for key, entry in (data["rows"] or {}).items():
        where = f"rows.{key}"
        if not isinstance(entry, dict) or entry.get("group") not in groups:
            raise _fail(path, where, f"group must be one of {', '.join(groups)}")
        scores = {}
        for cell, pair in (entry.get("scores") or {}).items():
            match = SCORE_KEY.match(str(cell))
            if not match:
                raise _fail(path, f"{where}.scores", f"{cell!r} is not '<Dataset> x<scale>'")
            if not isinstance(pair, list) or len(pair) != 2:
                raise _fail(path, f"{where}.scores.{cell}", "expected [PSNR, SSIM or null]")
            psnr = _number(path, f"{where}.scores.{cell}", pair[0])
            ssim = None if pair[1] is None else _number(path, f"{where}.scores.{cell}", pair[1])
            scores[(match["dataset"], int(match["scale"]))] = (psnr, ssim)
        if not scores:
            raise _fail(path, where, "no scores")
        rows[str(key)] = PaperRow(
            key=str(key),
            bias=str(entry.get("bias") or ""),
            note=str(entry.get("note") or ""),
            source=groups[entry["group"]]["source"],
            scores=scores,
        )
    speed = data["speed"]
    if not isinstance(speed, dict) or speed.get("group") not in groups:
        raise _fail(path, "speed", f"group must be one of {', '.join(groups)}")
    costs = []
    for phase, time_key, time_factor, memory_key, memory_factor in (
        ("train", "seconds_per_iter", 1000.0, "memory_gb", 1000.0),
        ("infer", "latency_ms", 1.0, "memory_mb", 1.0),
    ):
        for index, entry in enumerate(speed.get(phase) or ()):
            where = f"speed.{phase}[{index}]"
            if not isinstance(entry, dict) or not {"method", "bias", time_key, memory_key} <= set(entry):
                raise _fail(path, where, f"expected method, bias, {time_key}, {memory_key}")
            time, memory = _number(path, where, entry[time_key]), _number(path, where, entry[memory_key])
            unit_time, unit_memory = time_key.rsplit("_", 1)[-1], memory_key.rsplit("_", 1)[-1].upper()
            stated = (f"{time:g} s/iter" if unit_time == "iter" else f"{time:g} ms") + f", {memory:g} {unit_memory}"
            costs.append(
                PaperCost(
                    phase=phase,
                    method=str(entry["method"]),
                    bias=str(entry["bias"]),
                    ms=time * time_factor,
                    memory_mb=memory * memory_factor,
                    stated=stated,
                )
            )
    return PaperValues(
        paper=str(data["paper"]),
        rows=rows,
        costs=tuple(costs),
        cost_setting=str(speed.get("setting") or ""),
        cost_source=groups[speed["group"]]["source"],
        path=path,
    )


@lru_cache(maxsize=None)
def load_paper_values(path: str | None = None) -> PaperValues:
    """The package's paper_values.yaml, or another file of the same layout."""
    if path is None:
        resource = resources.files("suite.report").joinpath("paper_values.yaml")
        text, shown = resource.read_text(encoding="utf-8"), "suite/report/paper_values.yaml"
    else:
        text, shown = Path(path).read_text(encoding="utf-8"), str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PaperValuesError(f"{shown}: not valid YAML ({err})") from err
    return parse_paper_values(data, shown)


PAPER_VALUES = load_paper_values()
PAPER = PAPER_VALUES.paper
PAPER_KEYS = tuple(PAPER_VALUES.rows)


def paper_row(key: str) -> PaperRow:
    """The row named `key`; a ValueError names the key and the choices."""
    if key not in PAPER_VALUES.rows:
        raise ValueError(f"no paper row {key!r} in {PAPER_VALUES.path}; choose one of {', '.join(PAPER_KEYS)}")
    return PAPER_VALUES.rows[key]
