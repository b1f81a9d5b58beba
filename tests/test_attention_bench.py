"""`suite bench attention`: what it writes and how it refuses bad input (its timings are not tested)."""

from __future__ import annotations

import csv
import json
import warnings

import pytest
import torch

from suite.bench.attention import first_run
from suite.cli import main

SMALL = ["bench", "attention", "--dim", "16", "--heads", "2", "--rank", "4", "--map", "8", "--windows", "4,8",
         "--repeats", "2", "--warmup", "0", "--device", "cpu", "--threads", "1"]


def test_bench_writes_rows_ratios_and_provenance(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main([*SMALL, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "RPB/RIB" in printed and "RIB/none" in printed

    result = json.loads((out / "attention.json").read_text())
    meta = result["meta"]
    assert meta["device"] == "cpu" and meta["dtype"] == "float32" and meta["threads"] == 1
    assert meta["torch"] and meta["command"].startswith("suite bench attention")
    assert meta["head_dim"] == 8 and meta["kernel_head_dim_rib"] == 16 and meta["kernel_head_dim_rpb_none"] == 8
    rows = result["rows"]
    expected = {(w, v, p) for w in (4, 8) for v in ("rpb[math]", "rpb[sdpa]", "rib", "none")
                for p in ("forward", "forward+backward")}
    assert {(r["window"], r["variant"], r["phase"]) for r in rows} == expected
    assert all(r["status"] == "ok" and r["repeats"] == 2 and r["min_ms"] <= r["median_ms"] <= r["max_ms"] for r in rows)
    assert {r["backend"] for r in rows if r["variant"] == "rib"} == {"sdpa"}
    for ratio in result["ratios"]:
        assert ratio["rpb_backend"] in ("math", "sdpa")
        assert ratio["rpb_over_rib_min"] <= ratio["rpb_over_rib"] <= ratio["rpb_over_rib_max"]
        assert ratio["rib_over_none_min"] <= ratio["rib_over_none"] <= ratio["rib_over_none_max"]

    with open(out / "attention.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows) and {"device", "torch", "dtype", "command", "median_ms"} <= set(table[0])
    with open(out / "attention_ratios.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 4  # 2 windows x 2 phases
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"


def test_first_run_records_what_cannot_be_timed():
    """A backend that fell back (FlexAttention without a CPU backward) or ran out of memory is recorded, not timed."""

    def fell_back() -> None:
        warnings.warn("FlexAttention failed to compile or run on cpu (NotImplementedError: no backward)", stacklevel=1)

    def out_of_memory() -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def broken() -> None:
        raise KeyError("a bug")

    assert first_run(lambda: None) == ("ok", "")
    status, reason = first_run(fell_back)
    assert status == "unsupported" and "FlexAttention failed" in reason
    status, reason = first_run(out_of_memory)
    assert status == "oom" and "Tried to allocate" in reason
    with pytest.raises(KeyError):  # anything else is a bug and stops the run
        first_run(broken)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--rpb-backends", "flash"], "bias 'rpb' with backend 'flash' is invalid"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--timer", "cpu", "--threads", "2"], "timer 'cpu'"),
        (["--dtype", "float8"], "unknown dtype 'float8'"),
    ],
)
def test_bench_rejects_bad_input_with_one_clear_line(tmp_path, capsys, extra, message):
    assert main([*SMALL, *extra, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("suite bench: error: ") and message in err
    assert not (tmp_path / "x").exists()
