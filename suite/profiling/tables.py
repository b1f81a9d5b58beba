"""Result files of `suite profile`: the row schemas, atomic CSV/JSON writing with rows keyed by run
name, the RPB/RIB speedup table and its console rendering.

`profile.json` and `attention.json` keep list-valued fields (kernel families, top operators) as
lists; the CSV files flatten them to `;`-separated text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from suite.files import write_text_atomic

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1

PROFILE_COLUMNS = (
    "name", "status", "error", "preset", "variant", "bias", "backend", "backend_resolved", "phase",
    "window", "patch", "batch", "scale", "dtype", "device", "device_name", "threads", "warmup", "steps",
    "seed", "overrides", "params", "ms_median", "ms_iqr", "ms_min", "ms_max", "images_per_s",
    "peak_mem_mb", "mem_baseline_mb", "memory_method", "attention_kernels", "attention_ops", "top_ops",
    "gflop_per_iter", "tflops", "trace_dir", "trace_files", "torch_version", "cuda_version",
    "python_version", "host_load_1min", "timestamp", "command", "point_command",
)

ATTENTION_COLUMNS = (
    "name", "window", "patch", "batch", "n_windows", "heads", "head_dim", "rank", "variant", "bias",
    "backend", "kernel_head_dim", "pass", "dtype", "device", "status", "error", "ms_median", "ms_iqr",
    "ratio_to_none", "attention_kernels", "gflop_fwd",
)

SPEEDUP_COLUMNS = (
    "window", "patch", "phase", "rpb_variant", "rpb_status", "rib_status", "rpb_ms", "rib_ms", "none_ms",
    "speedup_rpb_over_rib", "rib_over_none", "rpb_peak_mem_mb", "rib_peak_mem_mb", "mem_rpb_over_rib",
    "rpb_kernels", "rib_kernels",
)

OK_STATUSES = ("ok",)


def flatten(value: Any) -> Any:
    """A CSV cell: lists become `;`-joined text, top-operator dicts `name=ms`."""
    if isinstance(value, list):
        return ";".join(
            f"{item['name']}={item['self_ms_per_iter']}ms" if isinstance(item, dict) else str(item) for item in value
        )
    return value


def frame(rows: Iterable[dict[str, Any]], columns: tuple[str, ...], strict: bool = True) -> "pd.DataFrame":
    """Rows as a DataFrame with exactly `columns`; `strict` refuses fields outside them."""
    import pandas as pd  # here, not at import: sweep workers start faster without it

    rows = list(rows)
    unknown = sorted({key for row in rows for key in row} - set(columns))
    if strict and unknown:
        raise ValueError(f"row fields outside the schema: {', '.join(unknown)}")
    return pd.DataFrame([{col: flatten(row.get(col)) for col in columns} for row in rows], columns=list(columns))


def write_rows(out_dir: Path, stem: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """`<stem>.json` ({"schema_version", "columns", "rows"}) and `<stem>.csv`, both atomically."""
    document = {"schema_version": SCHEMA_VERSION, "columns": list(columns), "rows": rows}
    write_text_atomic(out_dir / f"{stem}.json", json.dumps(document, indent=1, default=str) + "\n")
    write_text_atomic(out_dir / f"{stem}.csv", frame(rows, columns).to_csv(index=False))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a `profile.json` / `attention.json`; a clear error names a file that is not one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise ValueError(f"{path}: expected an object with a 'rows' list (a file written by suite profile)")
    return document["rows"]


def upsert(out_dir: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge rows into `out_dir/profile.{json,csv}`, replacing rows of the same name; returns all rows."""
    path = out_dir / "profile.json"
    existing = read_rows(path) if path.exists() else []
    merged = {row["name"]: row for row in existing}
    merged.update({row["name"]: row for row in rows})
    all_rows = list(merged.values())
    write_rows(out_dir, "profile", all_rows, PROFILE_COLUMNS)
    return all_rows


def speedup_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RPB time / RIB time per (window, patch, phase) and RPB variant, plus `rpb-best`: the fastest
    RPB variant that ran at that point. A side that did not run leaves the ratio empty."""
    by_point: dict[tuple, dict[str, dict[str, Any]]] = {}
    for row in rows:
        key = (row["window"], row["patch"], row["phase"])
        by_point.setdefault(key, {})[row["variant"]] = row
    table = []
    order = sorted(by_point.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] != "train"))
    for (window, patch, phase), variants in order:
        rib = variants.get("rib")
        none = variants.get("none")
        rpbs = {label: row for label, row in variants.items() if label.startswith("rpb")}
        ran = [row for row in rpbs.values() if row["status"] in OK_STATUSES]
        if len(rpbs) > 1 and ran:
            rpbs["rpb-best"] = min(ran, key=lambda row: row["ms_median"])
        for label, rpb in sorted(rpbs.items()):
            table.append(_speedup(window, patch, phase, label, rpb, rib, none))
    return table


def _ok(row: dict[str, Any] | None) -> bool:
    return row is not None and row.get("status") in OK_STATUSES


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return round(top / bottom, 3) if top is not None and bottom else None


def _speedup(window, patch, phase, label, rpb, rib, none) -> dict[str, Any]:
    rpb_ms = rpb["ms_median"] if _ok(rpb) else None
    rib_ms = rib["ms_median"] if _ok(rib) else None
    none_ms = none["ms_median"] if _ok(none) else None
    rpb_mem = rpb.get("peak_mem_mb") if _ok(rpb) else None
    rib_mem = rib.get("peak_mem_mb") if _ok(rib) else None
    best = f" ({rpb['variant']})" if label == "rpb-best" else ""
    return {
        "window": window, "patch": patch, "phase": phase, "rpb_variant": label + best,
        "rpb_status": rpb["status"], "rib_status": rib["status"] if rib else "missing",
        "rpb_ms": rpb_ms, "rib_ms": rib_ms, "none_ms": none_ms,
        "speedup_rpb_over_rib": _ratio(rpb_ms, rib_ms), "rib_over_none": _ratio(rib_ms, none_ms),
        "rpb_peak_mem_mb": rpb_mem, "rib_peak_mem_mb": rib_mem, "mem_rpb_over_rib": _ratio(rpb_mem, rib_mem),
        "rpb_kernels": rpb.get("attention_kernels", []), "rib_kernels": rib.get("attention_kernels", []) if rib else [],
    }


def render(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """Plain-text table for the console."""
    if not rows:
        return "(no rows)"
    return frame(rows, columns, strict=False).to_string(index=False, na_rep="-")
