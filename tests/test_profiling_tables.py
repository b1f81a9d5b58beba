"""suite.profiling.tables: the speedup table groups rows by bias, never by label, on rows exactly as a
GPU sweep writes them (rpb-flex, rpb-sdpa, rib-flash, none-flash, an oom row)."""

from __future__ import annotations

import csv
import json

import pytest

from suite.profiling import tables


def gpu_row(
    variant: str,
    phase: str,
    window: int,
    status: str = "ok",
    ms: float | None = None,
    mem: float | None = None,
    kernels: tuple[str, ...] = (),
) -> dict:
    """A row with every column a GPU sweep point writes (values of the kind it writes)."""
    bias, backend = variant.split("-")
    patch = 256 if phase == "infer" else (96 if window == 96 else 64)
    batch = 1 if phase == "infer" else 8
    row = {column: None for column in tables.PROFILE_COLUMNS}
    row.update(
        name=f"{bias}-{phase}-w{window}-p{patch}-b{batch}-{backend}-attention-bf16-base",
        status=status,
        error="" if status == "ok" else "OutOfMemoryError: CUDA out of memory. Tried to allocate 3.38 GiB",
        preset="base",
        variant=variant,
        bias=bias,
        backend=backend,
        backend_resolved=backend,
        phase=phase,
        window=window,
        patch=patch,
        batch=batch,
        scale=2,
        precision="attention-bf16",
        compile=False,
        device="cuda",
        device_name="NVIDIA H200",
        threads=16,
        warmup=2,
        steps=5,
        seed=0,
        overrides="",
        params=1_234_567,
        attention_kernels=list(kernels),
        attention_ops=[],
        top_ops=[],
        torch_version="2.15.0+cu132",
        cuda_version="13.2",
        python_version="3.12.3",
        timestamp="2026-11-30T22:00:00Z",
        command="suite profile sweep --config gpu --out results/profiles/nvidia-h200 --resume",
    )
    if status == "ok":
        row.update(ms_median=ms, ms_iqr=0.1, ms_min=ms, ms_max=ms, peak_mem_mb=mem, images_per_s=batch * 1000 / ms)
    return row


GPU_ROWS = [
    gpu_row("rpb-sdpa", "train", 32, ms=30.0, mem=9000.0, kernels=("efficient",)),
    gpu_row("rpb-flex", "train", 32, ms=20.0, mem=6000.0, kernels=("flex",)),
    gpu_row("rib-flash", "train", 32, ms=10.0, mem=3000.0, kernels=("flash",)),
    gpu_row("none-flash", "train", 32, ms=8.0, mem=2500.0, kernels=("flash",)),
    gpu_row("rpb-sdpa", "train", 96, status="oom"),
    gpu_row("rpb-flex", "train", 96, ms=90.0, mem=20000.0, kernels=("flex",)),
    gpu_row("rib-flash", "train", 96, ms=15.0, mem=4000.0, kernels=("flash",)),
    gpu_row("none-flash", "train", 96, ms=12.0, mem=3500.0, kernels=("flash",)),
    gpu_row("rpb-sdpa", "infer", 64, status="oom"),
    gpu_row("rpb-flex", "infer", 64, status="oom"),
    gpu_row("rib-flash", "infer", 64, ms=5.0, mem=800.0, kernels=("flash",)),
    gpu_row("none-flash", "infer", 64, ms=4.0, mem=700.0, kernels=("flash",)),
]


def test_speedup_csv_groups_gpu_rows_by_bias(tmp_path):
    tables.write_tables(tmp_path, GPU_ROWS, [])
    with open(tmp_path / "speedup.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == tables.SPEEDUP_COLUMNS
    by_point = {(row["phase"], int(row["window"])): row for row in rows}
    assert list(by_point) == [("train", 32), ("train", 96), ("infer", 64)]  # one row per point, train first

    w32 = by_point[("train", 32)]
    assert (w32["rpb_variant"], w32["rib_variant"], w32["none_variant"]) == ("rpb-flex", "rib-flash", "none-flash")
    assert float(w32["speedup_rpb_over_rib"]) == 2.0  # fastest RPB (flex, 20 ms) / RIB (10 ms)
    assert float(w32["speedup_rpb_over_none"]) == 2.5
    assert float(w32["rib_over_none"]) == 1.25
    assert float(w32["mem_rpb_over_rib"]) == 2.0  # the fastest RPB's memory, not the largest
    assert (w32["rpb_kernels"], w32["rib_kernels"]) == ("flex", "flash")

    w96 = by_point[("train", 96)]  # SDPA ran out of memory, flex ran: RPB is flex
    assert (w96["rpb_variant"], w96["rpb_status"]) == ("rpb-flex", "ok")
    assert float(w96["speedup_rpb_over_rib"]) == 6.0
    assert float(w96["mem_rpb_over_rib"]) == 5.0

    infer = by_point[("infer", 64)]  # no RPB kernel fits: the status says so, the ratios stay empty
    assert (infer["rpb_status"], infer["rpb_ms"]) == ("oom", "")
    assert infer["speedup_rpb_over_rib"] == "" and infer["speedup_rpb_over_none"] == ""
    assert float(infer["rib_over_none"]) == 1.25
    assert all(row["precision"] == "attention-bf16" and row["compile"] == "False" for row in rows)


def test_read_profile_round_trip_and_folder(tmp_path):
    tables.write_rows(tmp_path, "profile", GPU_ROWS, tables.PROFILE_COLUMNS)
    assert tables.read_profile(tmp_path) == json.loads(json.dumps(GPU_ROWS))
    assert tables.speedup_rows(tables.read_profile(tmp_path / "profile.json")) == tables.speedup_rows(GPU_ROWS)


def test_compiled_rows_are_their_own_points():
    compiled = [
        {**row, "compile": True, "ms_median": row["ms_median"] / 2 if row["ms_median"] else None}
        for row in GPU_ROWS[:4]
    ]
    table = tables.speedup_rows(GPU_ROWS[:4] + compiled)
    assert [(row["window"], row["compile"], row["rib_ms"]) for row in table] == [(32, False, 10.0), (32, True, 5.0)]


def test_best_by_bias_without_any_ok_row_keeps_the_first_failure():
    best = tables.best_by_bias(
        [
            gpu_row("rpb-sdpa", "train", 96, status="oom"),
            {**gpu_row("rpb-flex", "train", 96, status="oom"), "status": "timeout"},
        ]
    )
    assert best["rpb"]["variant"] == "rpb-sdpa" and best["rib"] is None and best["none"] is None


@pytest.mark.parametrize(
    "document, message",
    [
        ("not json", "not valid JSON"),
        (json.dumps({"rows": []}), "schema_version None"),
        (
            json.dumps({"schema_version": tables.SCHEMA_VERSION, "rows": [{"name": "x", "status": "ok"}]}),
            r"rows\[0\] \(x\) lacks variant, bias",
        ),
        (
            json.dumps({"schema_version": tables.SCHEMA_VERSION, "rows": [{**GPU_ROWS[0], "bias": "alibi"}]}),
            "bias 'alibi' is not one of rpb, rib, none",
        ),
    ],
)
def test_read_profile_names_file_and_fault(tmp_path, document, message):
    path = tmp_path / "profile.json"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as err:
        tables.read_profile(path)
    assert str(path) in str(err.value)
    with pytest.raises(FileNotFoundError, match="no profile.json"):
        tables.read_profile(tmp_path / "elsewhere")
