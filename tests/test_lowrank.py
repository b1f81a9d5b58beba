"""RPB to flash by low rank (issue 14): the `lowrank` bias, the SVD conversion of an RPB model,
`suite convert lowrank` and `suite analyze lowrank`."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from suite.analysis.lowrank import (
    COLUMNS,
    convert_checkpoint,
    lowrank_from_rpb,
    spectra,
    svd_factors,
    without_bias,
)
from suite.checkpoint import load_checkpoint, save_checkpoint
from suite.cli import main
from suite.data.io import write_png
from suite.evaluate.inference import load_upscaler, model_from_checkpoint
from suite.models import ModelConfigError, WindowAttention, build_model, explain_backend

WINDOW = 8
N = WINDOW * WINDOW
SMALL = {"dim": 16, "window_sizes": [WINDOW, WINDOW], "ranks": [4, 4], "n_blocks": 1}


def rpb_model(seed: int = 0, window: int = WINDOW) -> torch.nn.Module:
    """A small RPB network whose bias and output matter: tables N(0, 1) (far above their init) and a
    non-zero last conv (the tiny preset zero-initialises it, which would hide the body entirely)."""
    torch.manual_seed(seed)
    model = build_model("tiny", "rpb", 2, **{**SMALL, "window_sizes": [window, window]}).eval()
    with torch.no_grad():
        for layer in model.attention_layers():
            layer.rpb.table.normal_(0.0, 1.0)
        model.to_pixels.weight.normal_(0.0, 0.05)
    return model


@pytest.fixture
def image() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(1, 3, 20, 20)  # not a multiple of the window: the padding path runs too


@pytest.fixture
def rpb_checkpoint(tmp_path: Path) -> Path:
    """A suite RPB checkpoint with different `ema` and `model` weights."""
    ema, raw = rpb_model(0), rpb_model(1)
    path = tmp_path / "rpb.pt"
    save_checkpoint(
        {"model_config": ema.config, "ema": ema.state_dict(), "model": raw.state_dict(), "iteration": 7}, path
    )
    return path


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """Two smooth 48x48 HR images (an HR-only folder; LR made by MATLAB bicubic at x2)."""
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:48, 0:48] / 48.0
    for index in range(2):
        phases = rng.uniform(0, 2 * np.pi, size=3)
        img = np.stack([0.5 + 0.4 * np.sin(6 * xs + 4 * ys * (c + 1) + phases[c]) for c in range(3)], axis=-1)
        write_png(folder / f"img{index}.png", (img * 255).round().astype(np.uint8))
    return folder


def test_svd_factors_reach_the_eckart_young_error_and_split_the_spectrum_evenly():
    torch.manual_seed(0)
    bias = torch.randn(2, 16, 16, dtype=torch.float64)
    singular = torch.linalg.svdvals(bias)  # (heads, 16), descending
    q_pos, k_pos = svd_factors(bias, 5)
    assert q_pos.shape == k_pos.shape == (2, 16, 5) and q_pos.dtype == torch.float64
    error = (bias - q_pos @ k_pos.transpose(-2, -1)).square().sum(dim=(1, 2)).sqrt()
    torch.testing.assert_close(error, singular[:, 5:].square().sum(dim=1).sqrt(), rtol=1e-10, atol=1e-10)
    # Q_p = U_R sqrt(S_R), K_p = V_R sqrt(S_R): both Gram matrices are diag(S_R).
    torch.testing.assert_close(q_pos.transpose(-2, -1) @ q_pos, torch.diag_embed(singular[:, :5]), atol=1e-10, rtol=0)
    torch.testing.assert_close(k_pos.transpose(-2, -1) @ k_pos, torch.diag_embed(singular[:, :5]), atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match=r"rank 17 must be in 1..N = 16"):
        svd_factors(bias, 17)


def test_full_rank_reproduces_the_rpb_model_and_a_low_rank_does_not(image):
    model = rpb_model()
    with torch.no_grad():
        expected = model(image)
        full, errors = lowrank_from_rpb(model, "full")
        low, _ = lowrank_from_rpb(model, 4)
        assert full.config["bias"] == "lowrank" and full.config["ranks"] == [N, N] and not full.training
        assert (full(image) - expected).abs().max().item() <= 1e-4
        assert (low(image) - expected).abs().max().item() > 1e-2  # the bias matters in this model
    assert errors["bias_rel_error"] < 1e-6
    # Every other weight is the RPB model's, untouched.
    converted = full.state_dict()
    for key, value in model.state_dict().items():
        if not key.endswith("rpb.table"):
            assert torch.equal(converted[key], value), key


def test_rank_zero_is_the_rpb_network_with_its_tables_at_zero(image):
    """`no-bias` (rank 0 of a table) drops the tables and keeps every other weight: the same output as the
    RPB network with every table set to zero, computed through the RPB path."""
    model = rpb_model().eval()
    plain = without_bias(model)
    assert plain.config["bias"] == "none" and all(layer.rpb is None for layer in plain.attention_layers())
    with torch.no_grad():
        for layer in model.attention_layers():
            layer.rpb.table.zero_()
        torch.testing.assert_close(plain(image), model(image), rtol=0, atol=1e-5)


def test_bias_error_falls_as_the_rank_rises():
    model = rpb_model()
    svds = spectra(model)
    errors = {rank: lowrank_from_rpb(model, rank, svds)[1] for rank in (4, 8, 16, 32, "full")}
    overall = [errors[rank]["bias_rel_error"] for rank in (4, 8, 16, 32, "full")]
    assert all(high < low for low, high in itertools.pairwise(overall)), overall
    assert overall[0] > 0.5 and overall[-1] < 1e-6, overall
    rows = errors[8]["layers"]
    assert [(row["layer"], row["head"]) for row in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert errors[8]["bias_rel_error_max"] == max(row["rel_error"] for row in rows)
    # Each layer and head sits at its Eckart-Young optimum: the energy of the dropped singular values.
    layer = model.attention_layers()[1]
    singular = torch.linalg.svdvals(layer.rpb()[0].double())[1]  # head 1
    best = (singular[8:].square().sum() / singular.square().sum()).sqrt().item()
    assert rows[3]["rel_error"] == pytest.approx(best, rel=1e-5)


def _operands(module: torch.nn.Module, x: torch.Tensor) -> list[tuple[str, list[int]]]:
    """(operator, input shape) of every profiled input of one forward, largest first."""
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        module(x)
    operands = [(e.name, list(shape)) for e in prof.events() for shape in e.input_shapes if shape]
    return sorted(operands, key=lambda op: -torch.Size(op[1]).numel())


def test_a_converted_model_builds_no_n_by_n_tensor_while_the_rpb_model_does(image):
    window = 16
    n = window * window
    model = rpb_model(window=window)
    converted, _ = lowrank_from_rpb(model, 8)
    x = torch.rand(1, 3, 32, 32)
    ops = _operands(converted, x)
    assert ops, "the profiler recorded no input shapes"
    assert not [op for op in ops if op[1][-2:] == [n, n]], f"the converted model has an N x N operand: {ops[:3]}"
    assert any(name.startswith("aten::_scaled_dot_product_flash_attention") for name, _ in ops)
    assert any(shape[-2:] == [n, n] for _, shape in _operands(model, x)), "the RPB model shows no (N, N) operand"
    # One layer at a 64x64 window, as the RIB test: even the largest operand is far below N x N.
    torch.manual_seed(0)
    layer = WindowAttention(32, 2, 64, bias="lowrank", rank=8)
    name, shape = _operands(layer, torch.randn(1, 64, 64, 32))[0]
    assert torch.Size(shape).numel() < 4096 * 4096, f"lowrank has an N x N operand: {name} {shape}"


def test_lowrank_layer_is_fixed_to_its_window_and_pads_like_rpb():
    model = build_model("tiny", "lowrank", 2, **SMALL)  # the tiny preset clamps RIB windows
    layer = model.attention_layers()[0]
    assert model.config["large_windows"] == "clamp" and layer.window_shape(5, 6) == (WINDOW, WINDOW)
    assert model(torch.rand(1, 3, 5, 6)).shape == (1, 3, 10, 12)
    with pytest.raises(
        ValueError,
        match=r"a low-rank layer trained at window 8 cannot run at window 16: its factors "
        r"hold one row per token of a 8x8 window",
    ):
        model.set_window_sizes([16, 16])
    with pytest.raises(ModelConfigError, match=r"model field ranks\[1\] = 65 exceeds window_sizes\[1\]\^2 = 64"):
        build_model("tiny", "lowrank", 2, **{**SMALL, "ranks": [4, 65]})
    assert [key for key in model.state_dict() if ".attn.lowrank." in key] == [
        f"blocks.0.layers.{i}.attn.lowrank.{name}" for i in (0, 1) for name in ("q_factors", "k_factors")
    ]
    assert layer.lowrank.q_factors.shape == (2, N, 4) and layer.extra_channels == 8  # D 8 + R 4 -> 16


def test_lowrank_trains_from_scratch_and_takes_the_flash_backend():
    model = build_model("tiny", "lowrank", 2, **SMALL)
    with torch.no_grad():
        model.to_pixels.weight.normal_(0.0, 0.05)
    model(torch.rand(1, 3, 16, 16)).square().mean().backward()
    factors = model.attention_layers()[0].lowrank
    assert factors.q_factors.grad.abs().sum() > 0 and factors.k_factors.grad.abs().sum() > 0
    assert explain_backend("lowrank", torch.device("cuda"), torch.bfloat16)[0] == "flash"
    assert explain_backend("lowrank", torch.device("cpu"), needs_grad=True)[0] == "sdpa"
    WindowAttention(16, 2, WINDOW, bias="lowrank", rank=4, backend="flash")  # allowed, unlike RPB


def test_eval_mode_caches_the_factors_and_notices_an_update(image):
    converted, _ = lowrank_from_rpb(rpb_model(), 16)
    layer = converted.attention_layers()[0]
    with torch.no_grad():
        before = converted(image)
        assert set(layer._cache) == {"qkv", f"lowrank{WINDOW}x{WINDOW}"}
        assert torch.equal(converted(image), before)
        layer.lowrank.q_factors.mul_(2.0)
        assert not torch.equal(converted(image), before)


def test_convert_checkpoint_round_trips_through_suite_eval(tmp_path, rpb_checkpoint, image):
    out = tmp_path / "lowrank.pt"
    convert_checkpoint(rpb_checkpoint, 8, out)
    saved = load_checkpoint(out)
    source = load_checkpoint(rpb_checkpoint)
    assert saved["model_config"]["bias"] == "lowrank" and saved["model_config"]["ranks"] == [8, 8]
    assert {"ema", "model"} <= set(saved) and "iteration" not in saved
    for weights in ("ema", "model"):  # both weight sets, each from its own RPB weights
        expected, errors = lowrank_from_rpb(model_from_checkpoint(source, weights), 8)
        assert saved["model"].keys() == expected.state_dict().keys()
        for key, value in expected.state_dict().items():
            assert torch.equal(saved[weights][key], value), (weights, key)
        assert saved["provenance"]["converted_from"]["bias_errors"][weights] == errors
    provenance = saved["provenance"]["converted_from"]
    assert provenance["source"] == str(rpb_checkpoint) and provenance["rank"] == 8
    assert provenance["layer_ranks"] == [8, 8] and provenance["source_iteration"] == 7
    assert len(provenance["source_sha256"]) == 64 and "git_commit" in saved["provenance"]
    loaded = load_upscaler(out)
    assert loaded.method == "tiny-lowrank"
    in_memory, _ = lowrank_from_rpb(model_from_checkpoint(source, "ema"), 8)
    with torch.no_grad():
        assert torch.equal(loaded.upscale.forward(image), in_memory(image))


def test_convert_refuses_bad_input_and_overwrites_nothing(tmp_path, rpb_checkpoint, capsys):
    rib = build_model("tiny", "rib", 2, **SMALL)
    rib_path = tmp_path / "rib.pt"
    save_checkpoint({"model_config": rib.config, "ema": rib.state_dict()}, rib_path)
    with pytest.raises(
        ValueError,
        match=rf"checkpoint {rib_path} has bias 'rib': low-rank conversion factorises "
        r"an RPB model's dense bias \(bias 'rpb'\)",
    ):
        convert_checkpoint(rib_path, 4, tmp_path / "a.pt")
    for rank in (0, -3, "abc"):
        with pytest.raises(ValueError, match=r"rank .* must be a positive integer or 'full'"):
            convert_checkpoint(rpb_checkpoint, rank, tmp_path / "a.pt")
    with pytest.raises(
        ValueError,
        match=rf"rank 65 exceeds N = 8\^2 = 64 tokens of attention layer 0 "
        rf"\(8x8 window\) of checkpoint {rpb_checkpoint}; use a rank in 1..64",
    ):
        convert_checkpoint(rpb_checkpoint, 65, tmp_path / "a.pt")
    assert not (tmp_path / "a.pt").exists()
    existing = tmp_path / "existing.pt"
    existing.write_bytes(b"keep me")
    cases = [
        (["--rank", "4", "--out", str(existing)], f"--out {existing} exists; remove it or choose another path"),
        (["--rank", "0", "--out", str(tmp_path / "b.pt")], "rank 0 must be a positive integer or 'full'"),
        (["--rank", "100", "--out", str(tmp_path / "b.pt")], "rank 100 exceeds N = 8^2 = 64 tokens"),
    ]
    for args, message in cases:
        assert main(["convert", "lowrank", "--checkpoint", str(rpb_checkpoint), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("suite convert: error: ") and message in err, err
    assert (
        main(["convert", "lowrank", "--checkpoint", str(rib_path), "--rank", "4", "--out", str(tmp_path / "b.pt")]) == 2
    )
    assert f"checkpoint {rib_path} has bias 'rib'" in capsys.readouterr().err
    assert existing.read_bytes() == b"keep me" and not (tmp_path / "b.pt").exists()


def test_cli_convert_and_analyze_lowrank_end_to_end(tmp_path, rpb_checkpoint, tiny_data, capsys):
    converted = tmp_path / "full.pt"
    assert (
        main(["convert", "lowrank", "--checkpoint", str(rpb_checkpoint), "--rank", "full", "--out", str(converted)])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"{converted}: tiny x2 lowrank, rank full (per layer [64, 64])" in printed
    assert load_checkpoint(converted)["model_config"]["ranks"] == [N, N]

    out = tmp_path / "analysis"
    assert (
        main(
            [
                "analyze",
                "lowrank",
                "--checkpoint",
                str(rpb_checkpoint),
                "--data",
                str(tiny_data),
                "--scale",
                "2",
                "--ranks",
                "4",
                "16",
                "full",
                "0",
                "--device",
                "cpu",
                "--rounds",
                "2",
                "--warmup",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    with open(out / "lowrank.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        table = list(reader)
    assert (
        reader.fieldnames
        == list(COLUMNS)
        == [
            "variant",
            "rank",
            "rank_label",
            "bias_rel_error",
            "bias_rel_error_max",
            "psnr",
            "ssim",
            "psnr_change",
            "psnr_change_low",
            "psnr_change_high",
            "ssim_change",
            "ms_median",
            "ms_iqr",
            "time_ratio",
            "time_ratio_low",
            "time_ratio_high",
            "status",
            "reason",
        ]
    )
    document = json.loads((out / "lowrank.json").read_text())
    rows = document["rows"]
    assert (
        [row["variant"] for row in table]
        == [row["variant"] for row in rows]
        == ["rpb", "lowrank-4", "lowrank-16", "lowrank-full", "no-bias"]
    )
    assert [row["rank"] for row in rows] == [None, 4, 16, N, 0]
    assert [row["rank_label"] for row in rows] == ["-", "4", "16", "full", "0"]
    assert all(row["status"] == "ok" and row["reason"] == "" for row in rows)
    no_bias = rows.pop()
    assert no_bias["bias_rel_error"] == 1.0 and abs(no_bias["psnr_change"]) > 1e-3
    errors = [row["bias_rel_error"] for row in rows[1:]]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-6 and rows[0]["bias_rel_error"] == 0.0
    assert rows[0]["psnr_change"] == 0.0 and rows[0]["time_ratio"] == 1.0
    assert abs(rows[-1]["psnr_change"]) < 1e-3 and abs(rows[-1]["ssim_change"]) < 1e-5
    assert abs(rows[1]["psnr_change"]) > 1e-3  # rank 4 changes the output measurably
    # Each change carries the paired bootstrap of its per-image differences (two test images here).
    assert rows[0]["psnr_change_low"] == rows[0]["psnr_change_high"] == 0.0
    assert all(row["psnr_change_low"] <= row["psnr_change"] <= row["psnr_change_high"] for row in rows)
    assert all(row["time_ratio_low"] <= row["time_ratio"] <= row["time_ratio_high"] for row in rows)
    assert all(row["ms_median"] > 0 and row["time_ratio"] > 0 for row in rows)
    assert float(table[-2]["psnr"]) == pytest.approx(rows[-1]["psnr"], rel=1e-12)
    assert document["dataset"] == "data" and document["protocol"] == "basicsr-y" and document["weights"] == "ema"
    assert document["timing"] == {"image": "img0", "rounds": 2, "warmup": 0, "threads": torch.get_num_threads()}
    assert len(document["layer_errors"]["lowrank-4"]) == 4 and "git_commit" in document["provenance"]
    assert printed.splitlines()[1].split()[0] == "rpb" and "lowrank-full" in printed


@pytest.mark.gpu
def test_a_converted_layer_runs_on_a_flash_kernel_alone_where_rpb_cannot():
    """CUDA only: with SDPA restricted to FLASH_ATTENTION, the converted layer runs (bf16 autocast) and
    agrees with its fp32 math-backend output; the RPB layer it came from finds no kernel."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cuda = torch.device("cuda")
    torch.manual_seed(0)
    rpb = WindowAttention(180, 6, 16, bias="rpb", backend="sdpa")
    with torch.no_grad():
        rpb.rpb.table.normal_(0.0, 1.0)
    low = WindowAttention(180, 6, 16, bias="lowrank", rank=18, backend="sdpa")  # head dim 30 + 18 = 48
    q_pos, k_pos = svd_factors(rpb.rpb()[0].detach(), 18)
    weights = {key: value for key, value in rpb.state_dict().items() if key != "rpb.table"}
    low.load_state_dict({**weights, "lowrank.q_factors": q_pos, "lowrank.k_factors": k_pos})
    rpb, low = rpb.to(cuda), low.to(cuda)
    x = torch.randn(2, 32, 32, 180, device=cuda)
    with torch.no_grad():
        low.backend = "math"
        reference = low(x)
        low.backend = "sdpa"
        with torch.autocast("cuda", dtype=torch.bfloat16), sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            out = low(x)
            with pytest.raises(RuntimeError, match="No available kernel"):
                rpb(x)
    assert (out.float() - reference).abs().max().item() <= 0.05 * reference.abs().max().item()
