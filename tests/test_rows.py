"""The suite's one rows format (suite.rows): CSV + JSON written together with their schema version, read back
checked, integer cells kept as written; the tools' tables are declared once (suite.analysis.outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.analysis.outputs import ANALYSIS_OUTPUTS
from suite.models.biases import REGISTRY
from suite.rows import RowsSchema, read_rows

SCHEMA = RowsSchema("demo", ("name", "rank", "kernels", "ms"), version=3)


def test_rows_round_trip_with_their_version_and_record(tmp_path: Path) -> None:
    rows = [
        {"name": "a", "rank": 4, "kernels": ["flash", "gemm"], "ms": 1.25},
        {"name": "b", "rank": None, "kernels": [], "ms": None},
    ]
    written = SCHEMA.write(tmp_path, rows, provenance={"git_commit": "abc"})
    assert [path.name for path in written] == ["demo.json", "demo.csv"]
    document = json.loads((tmp_path / "demo.json").read_text())
    assert document["schema_version"] == 3 and document["columns"] == list(SCHEMA.columns)
    assert document["provenance"] == {"git_commit": "abc"} and SCHEMA.read(tmp_path / "demo.json") == rows
    # An integer column with a missing cell stays integers; lists are flattened; None is empty.
    assert (tmp_path / "demo.csv").read_text() == "name,rank,kernels,ms\na,4,flash;gemm,1.25\nb,,,\n"


def test_rows_refuse_another_version_and_unknown_fields(tmp_path: Path) -> None:
    SCHEMA.write(tmp_path, [{"name": "a"}])
    with pytest.raises(ValueError, match=r"demo.json: schema_version 3, this suite reads 4"):
        read_rows(tmp_path / "demo.json", 4)
    with pytest.raises(ValueError, match=r"row fields outside the schema: extra"):
        SCHEMA.write(tmp_path, [{"name": "a", "extra": 1}])


def test_each_tool_applies_to_the_biases_of_its_kinds() -> None:
    assert ANALYSIS_OUTPUTS["lowrank"].biases == tuple(b for b, s in REGISTRY.items() if s.kind == "additive")
    assert "rib" in ANALYSIS_OUTPUTS["bias"].biases and "none" not in ANALYSIS_OUTPUTS["bias"].biases
    assert ANALYSIS_OUTPUTS["windows"].biases == tuple(REGISTRY)
    assert {o.table.csv_name for o in ANALYSIS_OUTPUTS.values()} == {"stats.csv", "lowrank.csv", "windows.csv"}
