"""`suite bench attention`: what it writes and how it refuses bad input (its timings are not tested);
the timing helper's out-of-memory and fallback rules."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from suite.cli import main
from suite.profiling import tables, timing
from suite.profiling.attention import verdict

SMALL = [
    "--preset",
    "tiny",
    "--override",
    "dim=16",
    "heads=2",
    "--ranks",
    "4",
    "--map",
    "8",
    "--rounds",
    "2",
    "--warmup",
    "0",
    "--device",
    "cpu",
    "--threads",
    "1",
]


def test_bench_writes_rows_ratios_and_provenance(tmp_path, capsys):
    assert main(["bench", "attention", "--windows", "4", "8", *SMALL, "--out", str(tmp_path)]) == 0
    rows = tables.read_rows(tmp_path / "attention.json")
    assert {(r["window"], r["variant"]) for r in rows} == {
        (w, v) for w in (4, 8) for v in ("rpb-math", "rpb-sdpa", "rib", "none", "none@D+R")
    }
    assert all(r["status"] == "ok" and r["rounds"] == 2 and r["precision"] == "fp32" for r in rows)
    ratios = tables.read_rows(tmp_path / "attention_ratios.json")
    assert [(r["window"], r["pass"]) for r in ratios] == [(4, "fwd"), (4, "fwd+bwd"), (8, "fwd"), (8, "fwd+bwd")]
    for ratio in ratios:  # every ratio with its interval over the rounds and the verdict it gives
        for name in ("rpb_over_rib", "rpb_over_none", "rib_over_none_at_d_plus_r"):
            assert ratio[f"{name}_low"] <= ratio[name] <= ratio[f"{name}_high"]
            assert ratio[f"{name}_verdict"] == verdict(ratio, name)
    meta = json.loads((tmp_path / "bench.json").read_text())
    assert meta["torch"] == torch.__version__ and meta["command"].startswith("suite bench attention")
    assert meta["model"]["dim"] == 16 and meta["git_commit"]
    assert "window 8 (map 8x8, 1 windows of 64 tokens)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--precision", "fp16"], "precision = 'fp16' must be one of"),
        (["--variants", "rpb:flash"], "bias 'rpb' with backend 'flash' is invalid"),
        (["--variants", "alibi"], "variant 'alibi': bias 'alibi' is not one of rpb, rib, none"),
        (["--override", "dimm=3"], "unknown model field(s) dimm"),
        (["--clock", "cpu", "--threads", "2"], "clock 'cpu' (this thread's CPU time) needs device cpu and threads 1"),
    ],
)
def test_bench_rejects_bad_input_with_one_clear_line(tmp_path, capsys, extra, message):
    assert main(["bench", "attention", "--windows", "4", *SMALL, *extra, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("suite bench: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "attention.json").exists()


def test_a_ratio_is_ranked_only_when_its_interval_excludes_one():
    assert verdict({"r_low": 0.8, "r_high": 0.95}, "r") == "faster"
    assert verdict({"r_low": 1.01, "r_high": 1.2}, "r") == "slower"
    assert verdict({"r_low": 0.9, "r_high": 1.1}, "r") == "not resolved"


def test_timing_rules_oom_fallback_unsupported():
    calls = {"n": 0}

    def fine():
        calls["n"] += 1

    def oom():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    def oom_later():
        if calls["n"] > 2:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")

    def fallback():
        warnings.warn("FlexAttention failed to compile or run on cpu (X); RPB falls back to SDPA")

    def unsupported():
        raise NotImplementedError("no backward here")

    times, status = timing.time_interleaved(
        {"fine": fine, "oom": oom, "later": oom_later, "fallback": fallback, "unsupported": unsupported},
        torch.device("cpu"),
        warmup=1,
        rounds=3,
    )
    assert status["fine"] == ("ok", "") and len(times["fine"]) == 3
    assert status["oom"][0] == "oom" and "Tried to allocate 9.00 GiB" in status["oom"][1] and "oom" not in times
    assert status["later"][0] == "oom" and "later" not in times  # ran out mid-way: no partial times
    assert status["fallback"][0] == "fallback" and len(times["fallback"]) == 3
    assert status["unsupported"][0] == "unsupported"
    with pytest.raises(ZeroDivisionError):
        timing.time_interleaved({"bug": lambda: 1 / 0}, torch.device("cpu"), warmup=0, rounds=1)
    summary = timing.summarise([1.0, 2.0, 3.0, 10.0])
    assert summary == {"ms_median": 2.5, "ms_iqr": 3.0, "ms_min": 1.0, "ms_max": 10.0, "rounds": 4}
    # Ratios pair rounds: (2/1, 4/2, 9/3) has the geometric mean 12 ** (1/3); equal ratios leave no spread.
    fields = timing.ratio_fields("r", [2.0, 4.0, 9.0], [1.0, 2.0, 3.0])
    assert fields["r"] == round(12 ** (1 / 3), 4) and fields["r_low"] == 2.0 and fields["r_high"] == 3.0
    assert timing.ratio_fields("r", [2.0, 4.0], [1.0, 2.0]) == {"r": 2.0, "r_low": 2.0, "r_high": 2.0}
