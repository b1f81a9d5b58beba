"""suite.profiling: analytic FLOPs, kernel attribution on real CPU traces, the row schema, OOM and
flex-failure rows, sweeps in process and in workers, re-run rules, config errors, the one attention
benchmark. Tiny shapes throughout; nothing here asserts a timing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from suite.cli import main
from suite.models import attention as attention_module
from suite.models import build_model
from suite.profiling import kernels, tables
from suite.profiling import measure as measure_module
from suite.profiling.attention import AttentionSpec, bench
from suite.profiling.flops import flop_counter, forward_flops, step_flops
from suite.profiling.measure import PointSpec, measure
from suite.profiling.sweep import invocation, load_config, resolve_out, run_sweep

SMALL = {"dim": 16, "n_blocks": 1, "ranks": [4, 4]}  # head dim 8, rank 4: RIB's kernel head dim 16


def small_spec(**fields) -> PointSpec:
    base = dict(
        preset="tiny",
        bias="rib",
        phase="train",
        window=8,
        patch=16,
        batch=1,
        device="cpu",
        warmup=1,
        steps=2,
        profile_warmup=1,
        profile_active=1,
        threads=1,
        overrides=dict(SMALL),
    )
    return PointSpec(**{**base, **fields})


def write_config(path: Path, **fields) -> Path:
    config = {
        "preset": "tiny",
        "overrides": SMALL,
        "device": "cpu",
        "precision": "fp32",
        "threads": 1,
        "isolation": "none",
        "profiler": {"warmup": 1, "active": 1},
        "phases": {"train": {"batch": 1, "warmup": 1, "steps": 1}},
        "variants": [{"bias": "rpb", "backend": "sdpa"}, {"bias": "rib"}],
        "points": [{"window": 8, "patch": 16}],
    }
    config.update(fields)
    path.write_text(yaml.safe_dump(config))
    return path


# --- analytic FLOPs -------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", ["rpb", "rib", "none"])
@pytest.mark.parametrize("window,height,width", [(8, 16, 16), (8, 20, 12), (16, 12, 20)])
def test_forward_flops_equal_torch_flop_counter(bias, window, height, width):
    # Padded maps (20 -> 24), RIB windows clamped to a small map (16 -> 12) and RPB maps padded up.
    model = build_model("tiny", bias, 2, window_sizes=(window, window), backend="math", **SMALL)
    with flop_counter() as counter, torch.no_grad():
        model(torch.rand(2, 3, height, width))
    assert forward_flops(model.config, 2, height, width) == counter.get_total_flops()
    assert step_flops(model.config, "train", 2, height) == 3 * forward_flops(model.config, 2, height, height)


OFFICIAL_SMALL = {"dim": 16, "heads": 2, "n_blocks": 1, "window_sizes": [8, 8], "ranks": [4, 4]}


@pytest.mark.parametrize("preset,upsampler_dim", [("base", 8), ("light", None)])
@pytest.mark.parametrize("bias", ["rpb", "rib", "none"])
def test_forward_flops_of_official_presets(preset, upsampler_dim, bias):
    # Official structure: the body tail conv and both upsamplers, windows padded up (large_windows pad).
    overrides = {**OFFICIAL_SMALL, "backend": "math", "window_sizes": [16, 16]}
    if upsampler_dim:
        overrides["upsampler_dim"] = upsampler_dim
    model = build_model(preset, bias, 3, **overrides)
    assert model.config["large_windows"] == "pad" and model.config["upsampler"] != "bicubic"
    with flop_counter() as counter, torch.no_grad():
        model(torch.rand(1, 3, 12, 20))
    assert forward_flops(model.config, 1, 12, 20) == counter.get_total_flops()


# --- kernel attribution ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bias,backend,phase,expected",
    [
        ("none", "sdpa", "train", {"cpu-flash"}),
        ("rib", "sdpa", "train", {"cpu-flash"}),
        ("rpb", "math", "train", {"math"}),
        ("rpb", "math", "infer", {"math"}),
    ],
)
def test_kernel_attribution_on_real_cpu_traces(tmp_path, bias, backend, phase, expected):
    row = measure(small_spec(bias=bias, backend=backend, phase=phase), tmp_path / "traces")
    run_dir = Path(row["trace_dir"])
    [trace] = kernels.trace_files(run_dir)
    operators, _ = kernels.read_trace_names(trace)
    assert set(row["attention_kernels"]) == expected
    assert kernels.attribute_run(run_dir)["families"] == row["attention_kernels"]
    # The evidence is in the trace file itself, forward and (when training) backward.
    assert set(row["attention_ops"]) <= operators
    if expected == {"cpu-flash"}:
        assert "aten::_scaled_dot_product_flash_attention_for_cpu" in operators
        if phase == "train":
            assert "aten::_scaled_dot_product_flash_attention_for_cpu_backward" in operators
    if expected == {"math"}:
        assert not any("scaled_dot_product" in name for name in operators)
        assert "aten::_softmax" in operators


def test_kernel_names_of_gpu_backends():
    # Operator names of the SDPA backends and kernel names as the profiler reports them on CUDA.
    assert kernels.operator_family("aten::_scaled_dot_product_flash_attention") == "flash"
    assert kernels.operator_family("aten::_scaled_dot_product_flash_attention_backward") == "flash"
    assert kernels.operator_family("aten::_scaled_dot_product_efficient_attention_backward") == "efficient"
    assert kernels.operator_family("aten::_scaled_dot_product_cudnn_attention") == "cudnn"
    assert kernels.operator_family("aten::_scaled_dot_product_attention_math") == "math"
    assert kernels.operator_family("flash_attn::_flash_attn_forward") == "flash"
    assert kernels.operator_family("aten::addmm") is None
    assert kernels.kernel_family("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7") == "cudnn"
    assert kernels.kernel_family("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64> >") == "flash"
    assert kernels.kernel_family("fmha_cutlassF_bf16_aligned_64x128_rf_sm80") == "efficient"
    assert kernels.kernel_family("triton_tem_fused_flex_attention_backward_zeros_1") == "flex"
    assert kernels.kernel_family("void at::native::vectorized_elementwise_kernel<4>") is None
    found = kernels.attribute(
        ["aten::addmm", "aten::_scaled_dot_product_efficient_attention"],
        ["fmha_cutlassF_bf16_aligned_64x128_rf_sm80", "ampere_sgemm_128x64_nn"],
    )
    assert found == {
        "families": ["efficient"],
        "names": ["aten::_scaled_dot_product_efficient_attention", "fmha_cutlassF_bf16_aligned_64x128_rf_sm80"],
    }


# --- single setting: CLI, schema, upsert -----------------------------------------------------------


def run_cli(tmp_path: Path, *extra: str) -> int:
    args = [
        "profile",
        "run",
        "--preset",
        "tiny",
        "--window",
        "8",
        "--patch",
        "16",
        "--batch",
        "1",
        "--device",
        "cpu",
        "--warmup",
        "1",
        "--steps",
        "2",
        "--profile-active",
        "1",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
        "--override",
        "dim=16",
        "n_blocks=1",
        "ranks=[4,4]",
    ]
    return main(args + list(extra))


def test_profile_command_writes_schema_rows_and_traces(tmp_path):
    assert run_cli(tmp_path, "--bias", "rib", "--phase", "train") == 0
    assert run_cli(tmp_path, "--bias", "rpb", "--backend", "sdpa", "--phase", "infer") == 0
    assert run_cli(tmp_path, "--bias", "rib", "--phase", "train") == 0  # same setting again: replaced

    with open(tmp_path / "profile.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == tables.PROFILE_COLUMNS
        csv_rows = list(reader)
    document = json.loads((tmp_path / "profile.json").read_text())
    assert document["schema_version"] == tables.SCHEMA_VERSION
    assert document["columns"] == list(tables.PROFILE_COLUMNS)
    rows = {row["name"]: row for row in document["rows"]}
    assert sorted(rows) == sorted(row["name"] for row in csv_rows)
    assert sorted(rows) == ["rib-train-w8-p16-b1-sdpa-fp32-tiny", "rpb-infer-w8-p16-b1-sdpa-fp32-tiny"]

    for row in rows.values():
        assert set(row) <= set(tables.PROFILE_COLUMNS)
        assert row["status"] == "ok" and row["error"] == ""
        assert row["ms_min"] <= row["ms_median"] <= row["ms_max"] and row["ms_iqr"] >= 0
        assert row["images_per_s"] == pytest.approx(1000.0 / row["ms_median"], rel=1e-3)
        assert row["peak_mem_mb"] >= 0 and row["memory_method"].startswith(("VmHWM", "ru_maxrss"))
        assert isinstance(row["top_ops"], list) and row["top_ops"][0]["self_ms_per_iter"] > 0
        assert row["torch_version"] == torch.__version__ and row["device"] == "cpu" and row["threads"] == 1
        assert row["command"] == invocation()  # this process's command line
        assert row["point_command"].startswith("suite profile run --preset tiny --bias " + row["bias"])
        assert row["precision"] == "fp32" and row["compile"] is False
        assert row["memory_method"].endswith("(fresh process per point)")  # a worker process
        run_dir = tmp_path / "traces" / row["name"]
        assert row["trace_files"] == [p.name for p in kernels.trace_files(run_dir)] and len(row["trace_files"]) == 1
    rib = rows["rib-train-w8-p16-b1-sdpa-fp32-tiny"]
    model = build_model("tiny", "rib", 2, window_sizes=(8, 8), **SMALL)
    assert rib["gflop_per_iter"] == round(step_flops(model.config, "train", 1, 16) / 1e9, 4)
    assert rib["params"] == sum(p.numel() for p in model.parameters())
    csv_rib = next(row for row in csv_rows if row["name"] == rib["name"])
    assert csv_rib["attention_kernels"] == "cpu-flash" and float(csv_rib["ms_median"]) == rib["ms_median"]


def test_profile_command_rejects_bad_input(tmp_path, capsys):
    assert run_cli(tmp_path, "--bias", "rpb", "--backend", "flash", "--phase", "train") == 2
    assert "bias 'rpb' with backend 'flash' is invalid" in capsys.readouterr().err
    assert run_cli(tmp_path, "--bias", "rib", "--phase", "train", "--override", "window_sizes=[8,8]") == 2
    assert "sets the window of every layer" in capsys.readouterr().err
    assert run_cli(tmp_path, "--bias", "rib", "--phase", "train", "--precision", "fp16") == 2
    assert "precision = 'fp16' must be one of fp32, autocast-bf16, attention-bf16" in capsys.readouterr().err
    assert run_cli(tmp_path, "--bias", "rib", "--phase", "train", "--time-limit", "0") == 2
    assert "--time-limit must be positive" in capsys.readouterr().err
    assert not (tmp_path / "profile.csv").exists()


def test_profile_run_has_a_time_limit(tmp_path, capsys):
    # The point runs in a worker process; past --time-limit it is stopped and recorded as a timeout row.
    assert run_cli(tmp_path, "--bias", "rib", "--phase", "infer", "--time-limit", "0.01") == 3
    assert "timeout, worker ran past its time limit of 0.01 s" in capsys.readouterr().out
    [row] = tables.read_rows(tmp_path / "profile.json")
    assert row["status"] == "timeout" and row["ms_median"] is None and row["precision"] == "fp32"
    assert (tmp_path / "logs" / f"{row['name']}.log").exists()


# --- failure rows -----------------------------------------------------------------------------------


def test_injected_oom_gives_oom_row_and_sweep_goes_on(tmp_path, monkeypatch):
    real_build = measure_module.build_model

    def build_failing_at_window_16(preset, bias, scale, **overrides):
        model = real_build(preset, bias, scale, **overrides)
        if bias == "rpb" and overrides["window_sizes"][0] == 16:

            def out_of_memory(x):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")

            model.forward = out_of_memory
        return model

    monkeypatch.setattr(measure_module, "build_model", build_failing_at_window_16)
    config = write_config(tmp_path / "sweep.yaml", points=[{"window": 16, "patch": 16}, {"window": 8, "patch": 16}])
    assert run_sweep(str(config), str(tmp_path / "out"), log=lambda line: None) == 0

    rows = {row["name"]: row for row in tables.read_rows(tmp_path / "out" / "profile.json")}
    oom = rows["rpb-train-w16-p16-b1-sdpa-fp32-tiny"]
    assert oom["status"] == "oom" and "Tried to allocate 20.00 GiB (injected)" in oom["error"]
    assert oom.get("ms_median") is None
    # Every other point of the sweep, before and after the failing one, ran.
    assert [row["status"] for name, row in rows.items() if name != oom["name"]] == ["ok"] * 3
    speedup = {r["window"]: r for r in tables.read_rows(tmp_path / "out" / "speedup.json")}
    assert speedup[16]["rpb_status"] == "oom" and speedup[16]["rpb_variant"] == "rpb-sdpa"
    assert speedup[16]["speedup_rpb_over_rib"] is None
    rpb_ms = rows["rpb-train-w8-p16-b1-sdpa-fp32-tiny"]["ms_median"]
    rib_ms = rows["rib-train-w8-p16-b1-sdpa-fp32-tiny"]["ms_median"]
    assert speedup[8]["speedup_rpb_over_rib"] == round(rpb_ms / rib_ms, 3)
    with open(tmp_path / "out" / "profile.csv", newline="") as handle:
        assert [r["status"] for r in csv.DictReader(handle)].count("oom") == 1


def test_real_memory_cap_oom_in_worker_process(tmp_path):
    # A worker process under a 2 GiB data cap: RPB's (1, 2, 9216, 9216) bias and its logits at a
    # 96x96 window cannot fit, the 8x8 window after it can.
    config = write_config(
        tmp_path / "sweep.yaml",
        isolation="process",
        memory_cap_gb=2,
        overrides={"n_blocks": 1},
        variants=[{"bias": "rpb", "backend": "math"}],
        phases={"infer": {"batch": 1, "warmup": 0, "steps": 1}},
        points=[{"window": 96, "patch": 96}, {"window": 8, "patch": 16}],
    )
    out = tmp_path / "out"
    assert run_sweep(str(config), str(out), log=lambda line: None) == 0
    rows = tables.read_rows(out / "profile.json")
    assert [(row["window"], row["status"]) for row in rows] == [(96, "oom"), (8, "ok")]
    assert "memory_cap_gb=2" in rows[0]["error"] and "can't allocate memory" in rows[0]["error"]
    assert rows[1]["memory_method"] == "VmHWM growth over RSS at the first step (fresh process per point)"
    assert (out / "logs" / f"{rows[0]['name']}.log").exists() and (out / "command.txt").exists()


def test_flex_compile_failure_is_recorded_not_fatal(tmp_path, monkeypatch):
    def compile_fails():
        def flex(*args, **kwargs):
            raise RuntimeError("injected: inductor could not compile")

        return flex

    monkeypatch.setattr(attention_module, "flex_attention_compiled", compile_fails)
    monkeypatch.setattr(attention_module, "_flex_unavailable", {})  # forget failures of other tests
    row = measure(small_spec(bias="rpb", backend="flex", phase="infer"), tmp_path / "traces")
    assert row["status"] == "fallback"
    assert "FlexAttention failed to compile" in row["error"] and "injected" in row["error"]
    assert row["attention_kernels"] == ["cpu-flash"]  # what ran instead: SDPA, read from the trace
    assert row["backend_resolved"] == "flex" and row["ms_median"] > 0


# --- attention micro-benchmark and tables ------------------------------------------------------------


def test_attention_bench_rows():
    spec = AttentionSpec(
        window=8,
        patch=16,
        batch=1,
        heads=2,
        head_dim=8,
        ranks=[4],
        warmup=1,
        steps=2,
        threads=1,
        variants=[("rpb", "sdpa"), ("rpb", "math"), ("rib", "auto"), ("none", "auto")],
    )
    rows = bench(spec)
    assert [(r["variant"], r["pass"]) for r in rows] == [
        (v, p) for p in ("fwd", "fwd+bwd") for v in ("rpb-sdpa", "rpb-math", "rib", "none", "none@D+R")
    ]
    by = {(r["variant"], r["pass"]): r for r in rows}
    assert all(r["status"] == "ok" and r["n_windows"] == 4 and set(r) <= set(tables.ATTENTION_COLUMNS) for r in rows)
    assert by[("none@D+R", "fwd")]["kernel_head_dim"] == 16 == by[("rib", "fwd")]["kernel_head_dim"]
    assert by[("rpb-sdpa", "fwd")]["kernel_head_dim"] == 8
    assert by[("none@D+R", "fwd+bwd")]["ratio_to_none"] == 1.0
    # Per-round ratios: their geometric mean lies in its interval, within the extreme rounds' ratios.
    rib, ref = by[("rib", "fwd+bwd")], by[("none@D+R", "fwd+bwd")]
    assert rib["rounds"] == 2 == len(rib["ms_rounds"]) and rib["ms_min"] == min(rib["ms_rounds"])
    assert rib["ratio_to_none_low"] <= rib["ratio_to_none"] <= rib["ratio_to_none_high"]
    assert rib["ms_min"] / ref["ms_max"] <= rib["ratio_to_none"] <= rib["ms_max"] / ref["ms_min"]
    assert by[("rib", "fwd+bwd")]["attention_kernels"] == ["cpu-flash"]
    assert by[("rpb-math", "fwd")]["attention_kernels"] == ["math"]


# --- configs --------------------------------------------------------------------------------------


def test_builtin_configs_expand_to_their_points():
    cpu = load_config("cpu")
    assert cpu.raw["device"] == "cpu" and cpu.raw["isolation"] == "process"
    windows = {t.spec["window"] for t in cpu.tasks if t.kind == "profile"}
    assert windows == {8, 16, 32, 48, 64, 96}
    names = [t.name for t in cpu.tasks]
    assert {
        "rpb-train-w32-p64-b2-math-fp32-tiny",
        "rpb-infer-w32-p64-b1-sdpa-fp32-tiny",
        "rib-train-w32-p64-b2-sdpa-fp32-tiny",
    } <= set(names)
    gpu = load_config("gpu")
    names = [t.name for t in gpu.tasks]
    assert gpu.raw["precision"] == "attention-bf16" and gpu.raw["preset"] == "base"
    assert {
        "rpb-train-w64-p64-b8-sdpa-attention-bf16-base",
        "rpb-train-w64-p64-b8-flex-attention-bf16-base",
        "rib-train-w64-p64-b8-flash-attention-bf16-base",
        "none-infer-w96-p256-b1-flash-attention-bf16-base",
    } <= set(names)
    # The paper's setting: RPB at windows 32 and 64 only; RIB and none on flash at 32, 64 and 96.
    profile = [t.spec for t in gpu.tasks if t.kind == "profile"]
    assert {s["window"] for s in profile if s["bias"] == "rpb"} == {32, 64}
    assert {s["window"] for s in profile if s["bias"] in ("rib", "none")} == {32, 64, 96}
    assert {s["backend"] for s in profile if s["bias"] in ("rib", "none")} == {"flash"}
    assert {s["phase"] for s in profile} == {"train", "infer"}
    attention = [t for t in gpu.tasks if t.kind == "attention"]
    assert [t.spec["window"] for t in attention] == [32, 64, 96]
    assert attention[0].spec["variants"] == [
        ("rpb", "sdpa"),
        ("rpb", "flex"),
        ("rib", "flash"),
        ("none", "flash"),
        ("rope", "flash"),
        ("flashbias", "flash"),
    ]
    assert attention[0].spec["ranks"] == [18, 34]
    assert [bias for bias, _ in attention[2].spec["variants"]] == ["rib", "none", "rope", "flashbias"]  # no RPB at 96
    # The official code's other flash-compatible encodings are measured beside RIB at every window.
    assert {s["window"] for s in profile if s["bias"] in ("rope", "flashbias")} == {32, 64, 96}
    assert attention[0].spec["head_dim"] == 30


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"windw": 8}, "unknown field(s) windw"),
        ({"points": [{"window": 64, "patch": 32}]}, "points[0]: patch 32 is smaller than window 64"),
        ({"variants": [{"bias": "rpb", "backend": "flash"}]}, "bias 'rpb' with backend 'flash' is invalid"),
        ({"phases": {"train": {"batch": 0}}}, "batch must be a positive integer"),
        ({"memory_cap_gb": 4}, "memory_cap_gb applies to CPU points in worker processes"),
        ({"points": [{"window": 8, "patch": 16, "phases": ["infer"]}]}, "'infer' has no settings under phases"),
        ({"precision": "fp16"}, "precision = 'fp16' must be one of fp32, autocast-bf16, attention-bf16"),
        ({"overrides": {"dimm": 3}}, "unknown model field(s) dimm"),
        ({"compile": "yes"}, "compile must be true or false, got 'yes'"),
        ({"points": [{"window": 8, "patch": 16, "biases": ["none"]}]}, "points[0].biases: expected a non-empty list"),
        (
            {"points": [{"window": [[1] * 50] * 50, "patch": 16}]},
            "points[0].window: expected an integer >= 1, got [[1, 1",
        ),
    ],
)
def test_config_errors_name_file_and_field(tmp_path, fields, message):
    config = write_config(tmp_path / "bad.yaml", **fields)
    with pytest.raises(ValueError) as err:
        load_config(str(config))
    assert str(config) in str(err.value) and message in str(err.value)


def test_unknown_config_and_gpu_placeholder_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a file nor a built-in config"):
        load_config(str(tmp_path / "missing.yaml"))
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the {gpu} placeholder resolves")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        resolve_out(str(tmp_path / "{gpu}"))


def test_resume_measures_again_when_settings_change(tmp_path):
    config = write_config(
        tmp_path / "sweep.yaml",
        variants=[{"bias": "none"}],
        time_budget_s=0,
        points=[{"window": 8, "patch": 16}, {"window": 16, "patch": 16}],
    )
    out = tmp_path / "out"
    assert run_sweep(str(config), str(out), log=lambda line: None) == 1  # budget 0: one task per run
    first = tables.read_rows(out / "profile.json")
    write_config(
        tmp_path / "sweep.yaml",
        variants=[{"bias": "none"}],
        seed=1,
        points=[{"window": 8, "patch": 16}, {"window": 16, "patch": 16}],
    )
    lines = []
    assert run_sweep(str(config), str(out), resume=True, log=lines.append) == 0
    assert not any("kept from an earlier run" in line for line in lines)
    second = tables.read_rows(out / "profile.json")
    assert [r["seed"] for r in first] == [0] and [r["seed"] for r in second] == [1, 1]


def test_rerun_rules_resume_unfinished_recompute_finished(tmp_path, capsys):
    # A killed or time-boxed sweep continues (`--resume`); a finished one asked again (Snakemake's forced
    # re-run) is measured again, its old results moved aside; without a flag an earlier sweep is an error.
    config = write_config(tmp_path / "sweep.yaml", variants=[{"bias": "rib"}, {"bias": "none"}], time_budget_s=0)
    out = tmp_path / "out"
    args = ["profile", "sweep", "--config", str(config), "--out", str(out)]
    assert main(args) == 3  # one task done, one left
    assert "1 task(s) left" in capsys.readouterr().err
    assert [row["variant"] for row in tables.read_rows(out / "profile.json")] == ["rib"]
    assert main(args) == 2
    assert f"{out} holds an incomplete sweep; pass --resume" in capsys.readouterr().err
    first = tables.read_rows(out / "profile.json")[0]
    assert main(args + ["--resume"]) == 0
    assert "kept from an earlier run" in capsys.readouterr().out
    rows = tables.read_rows(out / "profile.json")
    assert [row["variant"] for row in rows] == ["rib", "none"] and rows[0] == first
    invocations = json.loads((out / "sweep.json").read_text())["invocations"]
    assert [run["tasks_left"] for run in invocations] == [1, 0]
    # Snakemake deletes the outputs of a forced job before running it; the finished sweep is measured again.
    for name in ("profile.csv", "profile.json", "speedup.csv", "attention.csv"):
        (out / name).unlink(missing_ok=True)
    assert main(args + ["--resume"]) == 3  # budget 0 again: the recomputation starts over, one task
    output = capsys.readouterr().out
    assert "had finished; measuring again" in output and "kept from an earlier run" not in output
    [aside] = list((out / "replaced").iterdir())
    assert (aside / "sweep.json").exists() and len(list((aside / "points").glob("*.json"))) == 2
    assert [row["variant"] for row in tables.read_rows(out / "profile.json")] == ["rib"]
    # A sweep killed mid-way (no `finished` in its last invocation) continues.
    record = json.loads((out / "sweep.json").read_text())
    del record["invocations"][-1]["finished"]
    (out / "sweep.json").write_text(json.dumps(record))
    assert main(args + ["--resume"]) == 0
    assert "continuing the interrupted sweep" in capsys.readouterr().out
    assert main(args + ["--fresh"]) == 3
    assert not (out / "points" / f"{rows[1]['name']}.json").exists()


def test_dry_run_lists_points_and_budget_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["profile", "sweep", "--config", "gpu", "--out", str(out), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "35 tasks on cuda, preset base, precision attention-bf16" in plan
    assert "train window  96 patch  96 batch  8 rib  backend flash" in plan
    assert "window  96 patch  96 batch  8 rpb" not in plan
    assert "time limit per task: 150 s; budget: no new task starts after 330 s" in plan
    assert not out.exists()


def test_cli_modules_import_no_torch():
    # `suite profile ...` and `suite bench ...` register only their own subcommands (suite.cli.build_parser).
    code = (
        "import sys; from suite.cli import build_parser; build_parser(('profile', 'bench')); "
        "print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch" not in out.stdout


def test_compiled_and_eager_outputs_agree():
    # `compile: true` runs the same network: same outputs to float32 tolerance (tiny network, CPU).
    spec = small_spec(phase="infer", compile=True)
    torch.manual_seed(0)
    model = build_model(**spec.model_config()).eval()
    lr = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        eager = model(lr)
        compiled = torch.compile(model)(lr)
    assert torch.allclose(eager, compiled, atol=1e-5, rtol=1e-5), (eager - compiled).abs().max()
    assert spec.name.endswith("-fp32-compiled-tiny") and "--compile" in spec.command()


def test_attention_bench_times_the_layers_own_kernel_call(monkeypatch):
    # The benchmark calls WindowAttention.attend, the method the network's forward runs: the kernel sees
    # the head dims of the layers (RIB and none@D+R: D+R padded = 16; none and RPB: D = 8), on the layers'
    # own backends, with the tokens of every window.
    from suite.models import attention as layer_module

    seen = []
    real = layer_module.dot_product_attention

    def spy(q, k, v, scale, backend, *args, **kwargs):
        seen.append((q.shape[-1], q.shape[0], backend))
        return real(q, k, v, scale, backend, *args, **kwargs)

    monkeypatch.setattr(layer_module, "dot_product_attention", spy)
    spec = AttentionSpec(
        window=8,
        patch=16,
        batch=1,
        heads=2,
        head_dim=8,
        ranks=[4],
        warmup=0,
        steps=1,
        threads=1,
        variants=[("rpb", "math"), ("rib", "auto"), ("none", "auto")],
    )
    rows = bench(spec)
    assert {(r["variant"], r["kernel_head_dim"]) for r in rows} == {
        ("rpb-math", 8),
        ("rib", 16),
        ("none", 8),
        ("none@D+R", 16),
    }
    assert {dim for dim, _, _ in seen} == {8, 16} and {n for _, n, _ in seen} == {4}  # 4 windows of 8x8
    assert {backend for _, _, backend in seen} == {"math", "sdpa"}
