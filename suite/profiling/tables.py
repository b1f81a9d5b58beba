"""The result files of `suite profile`: the row schemas, their reader, their writing in the suite's rows
format (suite.rows) with rows keyed by run name, and the speedup table (RPB time / RIB time) that every consumer uses.

`profile.json` and `attention.json` keep list-valued fields (kernel families, top operators) as lists;
the CSV files flatten them to `;`-separated text. This module does not import torch: the report and the
console tables read results on machines without it.

Speedups are grouped by BIAS, never by label: a GPU sweep labels its rows `rpb-flex`, `rpb-sdpa`,
`rib-flash`, `none-flash`; at each point the fastest row of each bias that ran is that bias's entry. The
biases and their order are the registry's (`suite.models.biases`); every bias gets its column group and
its ratios to RPB (the baseline that blocks flash kernels) and to no bias (the physical reference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from suite import rows as rows_format
from suite.models.biases import BIASES
from suite.stats import unpaired_ratio

SCHEMA_VERSION = 2  # 2: `precision` replaces `dtype`; `compile` added
OK = "ok"
BASELINE = "rpb"  # the bias whose time every speedup divides
REFERENCE = "none"  # the bias every `<bias>_over_none` divides by

PROFILE_COLUMNS = (
    "name",
    "status",
    "error",
    "preset",
    "variant",
    "bias",
    "backend",
    "backend_resolved",
    "phase",
    "window",
    "patch",
    "batch",
    "scale",
    "precision",
    "compile",
    "device",
    "device_name",
    "threads",
    "warmup",
    "steps",
    "seed",
    "overrides",
    "params",
    "ms_median",
    "ms_iqr",
    "ms_min",
    "ms_max",
    "ms_steps",
    "images_per_s",
    "peak_mem_mb",
    "mem_baseline_mb",
    "memory_method",
    "attention_kernels",
    "attention_ops",
    "top_ops",
    "gflop_per_iter",
    "tflops",
    "trace_dir",
    "trace_files",
    "torch_version",
    "cuda_version",
    "python_version",
    "git_commit",
    "host_load_1min",
    "timestamp",
    "command",
    "point_command",
)

# The columns a row must carry to be read back (a failed row has no timings).
PROFILE_REQUIRED = (
    "name",
    "status",
    "variant",
    "bias",
    "phase",
    "window",
    "patch",
    "batch",
    "precision",
    "compile",
    "ms_median",
    "peak_mem_mb",
    "attention_kernels",
)

ATTENTION_COLUMNS = (
    "name",
    "window",
    "patch",
    "batch",
    "n_windows",
    "heads",
    "head_dim",
    "rank",
    "variant",
    "bias",
    "backend",
    "kernel_head_dim",
    "pass",
    "precision",
    "device",
    "status",
    "error",
    "ms_median",
    "ms_iqr",
    "ms_min",
    "ms_max",
    "rounds",
    "ms_rounds",
    "ratio_to_none",
    "ratio_to_none_low",
    "ratio_to_none_high",
    "attention_kernels",
    "gflop_fwd",
)

POINT_KEYS = ("phase", "window", "patch", "batch", "precision", "compile")
PER_BIAS = ("variant", "status", "ms", "peak_mem_mb", "kernels")


def speedup_column(bias: str) -> str:
    """RPB's time over `bias`'s: "speedup_rpb_over_rib"."""
    return f"speedup_{BASELINE}_over_{bias}"


def over_none_column(bias: str) -> str:
    """`bias`'s time over no bias's: "rib_over_none"."""
    return f"{bias}_over_{REFERENCE}"


def memory_column(bias: str) -> str:
    """RPB's peak memory over `bias`'s: "mem_rpb_over_rib"."""
    return f"mem_{BASELINE}_over_{bias}"


TIME_RATIO_COLUMNS = (
    *(speedup_column(bias) for bias in BIASES if bias != BASELINE),
    *(over_none_column(bias) for bias in BIASES if bias != REFERENCE),
)
SPEEDUP_COLUMNS = (
    *POINT_KEYS,
    *(f"{bias}_{field}" for bias in BIASES for field in PER_BIAS),
    *(f"{column}{suffix}" for column in TIME_RATIO_COLUMNS for suffix in ("", "_low", "_high")),
    *(memory_column(bias) for bias in BIASES if bias != BASELINE),
)


def write_rows(out_dir: Path, stem: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """A profiling table in the suite's rows format (suite.rows), at the profile tables' schema version."""
    rows_format.write_rows(out_dir, stem, rows, columns, SCHEMA_VERSION)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a `profile.json` / `attention.json` at the profile tables' schema version."""
    return rows_format.read_rows(path, SCHEMA_VERSION)


def read_profile(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a `profile.json` (the file, or the folder holding it), each checked for the columns the
    speedup table and the report need; a ValueError names the file, the row and the missing column."""
    path = Path(path)
    if path.is_dir():
        path = path / "profile.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no profile.json (write one with `suite profile run` or `suite profile sweep`)"
        )
    rows = read_rows(path)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: rows[{index}] is not an object")
        missing = [column for column in PROFILE_REQUIRED if column not in row]
        if missing:
            raise ValueError(f"{path}: rows[{index}] ({row.get('name', '?')}) lacks {', '.join(missing)}")
        if row["bias"] not in BIASES:
            raise ValueError(
                f"{path}: rows[{index}] ({row['name']}): bias {row['bias']!r} is not one of {', '.join(BIASES)}"
            )
    return rows


def upsert(out_dir: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge rows into `out_dir/profile.{json,csv}`, replacing rows of the same name; returns all rows."""
    path = Path(out_dir) / "profile.json"
    existing = read_rows(path) if path.exists() else []
    merged = {row["name"]: row for row in existing}
    merged.update({row["name"]: row for row in rows})
    all_rows = list(merged.values())
    write_rows(out_dir, "profile", all_rows, PROFILE_COLUMNS)
    return all_rows


def best_by_bias(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """For the rows of ONE point: per bias, its fastest row with status ok; where none of that bias ran,
    its first row (status oom, timeout, ...); None where the point has no row of that bias."""
    best: dict[str, dict[str, Any] | None] = {bias: None for bias in BIASES}
    for row in rows:
        bias = row["bias"]
        current = best.get(bias)
        if current is None:
            best[bias] = row
        elif row["status"] == OK and (current["status"] != OK or row["ms_median"] < current["ms_median"]):
            best[bias] = row
    return best


def point_key(row: dict[str, Any]) -> tuple:
    return tuple(row.get(key) for key in POINT_KEYS)


def _order(key: tuple) -> tuple:
    phase, window, patch, batch, precision, compiled = key
    return (phase != "train", str(phase), window, patch, batch or 0, str(precision), bool(compiled))


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return round(top / bottom, 3) if top is not None and bottom else None


def time_ratio_fields(column: str, top: dict[str, Any] | None, bottom: dict[str, Any] | None) -> dict[str, Any]:
    """`column` (the ratio of the two rows' median times) and `column_low`/`_high`: its 95% interval from
    resampling each row's timed steps on its own (`suite.stats.unpaired_ratio`: the two ran in separate
    processes, so there are no rounds to pair). None where a side did not run or has under 2 recorded steps."""
    ran = [row is not None and row["status"] == OK for row in (top, bottom)]
    fields: dict[str, Any] = {column: _ratio(top["ms_median"], bottom["ms_median"]) if all(ran) else None}
    steps = [list(row.get("ms_steps") or []) if row is not None else [] for row in (top, bottom)]
    interval = unpaired_ratio(*steps) if all(ran) and min(map(len, steps)) >= 2 else None
    fields[f"{column}_low"] = round(interval.low, 3) if interval else None
    fields[f"{column}_high"] = round(interval.high, 3) if interval else None
    return fields


def speedup_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per point (phase, window, patch, batch, precision, compile), training first: per bias the
    variant, status, time, peak memory and kernels of `best_by_bias`, and the ratios RPB/bias and
    bias/none (time) and RPB/bias (peak memory) for every other bias; a ratio is None where either side
    did not run."""
    points: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        points.setdefault(point_key(row), []).append(row)
    table = []
    for key in sorted(points, key=_order):
        record: dict[str, Any] = dict(zip(POINT_KEYS, key))
        ms: dict[str, float | None] = {}
        mem: dict[str, float | None] = {}
        best = best_by_bias(points[key])
        for bias, row in best.items():
            ran = row is not None and row["status"] == OK
            ms[bias] = row["ms_median"] if ran else None
            mem[bias] = row.get("peak_mem_mb") if ran else None
            record.update(
                {
                    f"{bias}_variant": row["variant"] if row else None,
                    f"{bias}_status": row["status"] if row else "missing",
                    f"{bias}_ms": ms[bias],
                    f"{bias}_peak_mem_mb": mem[bias],
                    f"{bias}_kernels": list(row.get("attention_kernels") or []) if row else [],
                }
            )
        for bias in BIASES:
            if bias != BASELINE:
                record.update(time_ratio_fields(speedup_column(bias), best[BASELINE], best[bias]))
                record[memory_column(bias)] = _ratio(mem[BASELINE], mem[bias])
            if bias != REFERENCE:
                record.update(time_ratio_fields(over_none_column(bias), best[bias], best[REFERENCE]))
        table.append(record)
    return table


def write_tables(out_dir: Path, profile_rows: list[dict[str, Any]], attention_rows: list[dict[str, Any]]) -> None:
    """The three tables of a sweep: profile, speedup (from the profile rows) and attention."""
    write_rows(out_dir, "profile", profile_rows, PROFILE_COLUMNS)
    write_rows(out_dir, "speedup", speedup_rows(profile_rows), SPEEDUP_COLUMNS)
    write_rows(out_dir, "attention", attention_rows, ATTENTION_COLUMNS)
