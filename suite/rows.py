"""The suite's one tabular result format: a table of rows written as `<stem>.json` (`schema_version`,
`columns`, `rows` and whatever the writer records beside them, e.g. its run record) and `<stem>.csv`
(list-valued cells flattened to `;`-separated text), both atomically; read back with its version checked;
printed as a console table.

A `RowsSchema` declares one table (its file stem, columns and version) in the module that writes it
(suite.profiling.tables, suite.analysis.outputs); readers import the same declaration. No torch here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from suite.files import write_text_atomic

if TYPE_CHECKING:
    import pandas as pd


def flatten(value: Any) -> Any:
    """A CSV cell: lists become `;`-joined text, top-operator dicts `name=ms`."""
    if isinstance(value, list):
        return ";".join(
            f"{item['name']}={item['self_ms_per_iter']}ms" if isinstance(item, dict) else str(item) for item in value
        )
    return value


def frame(rows: Iterable[dict[str, Any]], columns: tuple[str, ...], strict: bool = True) -> "pd.DataFrame":
    """Rows as a DataFrame with exactly `columns`; `strict` refuses fields outside them. Object dtype: every
    cell stays the value it was (an integer column with a missing cell does not turn into floats)."""
    import pandas as pd  # here, not at import: sweep workers and `suite --help` start faster without it

    rows = list(rows)
    unknown = sorted({key for row in rows for key in row} - set(columns))
    if strict and unknown:
        raise ValueError(f"row fields outside the schema: {', '.join(unknown)}")
    return pd.DataFrame(
        [{col: flatten(row.get(col)) for col in columns} for row in rows], columns=list(columns), dtype=object
    )


def render(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """Plain-text table for the console."""
    if not rows:
        return "(no rows)"
    return frame(rows, columns, strict=False).to_string(index=False, na_rep="-")


def write_rows(
    out_dir: Path, stem: str, rows: list[dict[str, Any]], columns: tuple[str, ...], version: int, **record: Any
) -> list[Path]:
    """`<stem>.json` ({"schema_version", "columns", "rows", **record}) and `<stem>.csv`, both atomically."""
    document = {"schema_version": version, "columns": list(columns), "rows": rows, **record}
    out_dir = Path(out_dir)
    return [
        write_text_atomic(out_dir / f"{stem}.json", json.dumps(document, indent=1, default=str) + "\n"),
        write_text_atomic(out_dir / f"{stem}.csv", frame(rows, columns).to_csv(index=False)),
    ]


def read_rows(path: Path, version: int) -> list[dict[str, Any]]:
    """Rows of a `<stem>.json` written at `version`; a ValueError names a file that is not one."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file ({err})") from err
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise ValueError(f"{path}: expected an object with a 'rows' list (a table written by the suite)")
    if document.get("schema_version") != version:
        raise ValueError(
            f"{path}: schema_version {document.get('schema_version')!r}, this suite reads "
            f"{version}; run the tool that wrote it again with this version"
        )
    return document["rows"]


@dataclass(frozen=True)
class RowsSchema:
    """One table: `<stem>.csv` and `<stem>.json` with `columns`, at schema `version`."""

    stem: str
    columns: tuple[str, ...]
    version: int

    @property
    def csv_name(self) -> str:
        return f"{self.stem}.csv"

    @property
    def json_name(self) -> str:
        return f"{self.stem}.json"

    def write(self, out_dir: Path, rows: list[dict[str, Any]], **record: Any) -> list[Path]:
        return write_rows(out_dir, self.stem, rows, self.columns, self.version, **record)

    def read(self, path: Path) -> list[dict[str, Any]]:
        return read_rows(path, self.version)
