"""Window extrapolation: `suite eval --window-scale/--window-sizes` and `suite analyze windows`.

A RIB model runs at windows it was not trained at (its bias is a function of window coordinates); an
RPB model refuses with its own one-line error, in `suite eval` and as refused rows of the table.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from suite.analysis.windows import COLUMNS
from suite.checkpoint import save_checkpoint
from suite.cli import main
from suite.evaluate.inference import load_upscaler, scaled_window_sizes
from suite.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_checkpoint(path: Path, bias: str, **overrides) -> Path:
    """A one-block tiny network (windows 8 8) with a non-zero upsampler, so the output depends on the body."""
    torch.manual_seed(0)
    model = build_model("tiny", bias, 2, dim=16, n_blocks=1, window_sizes=[8, 8], ranks=[4, 4], **overrides)
    with torch.no_grad():
        model.to_pixels.weight.copy_(torch.randn(model.to_pixels.weight.shape) * 0.1)
    return save_checkpoint({"model_config": model.config, "ema": model.state_dict()}, path)


@pytest.fixture(scope="module")
def rib_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_checkpoint(tmp_path_factory.mktemp("windows") / "rib.pt", "rib")


@pytest.fixture(scope="module")
def rpb_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_checkpoint(tmp_path_factory.mktemp("windows") / "rpb.pt", "rpb")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory, mini_root: Path) -> Path:
    """Two 64x64 crops of the mini test set with their x2 LR (32x32: windows up to 16 fit the map)."""
    from suite.data.io import read_image, write_png
    from suite.data.resize import degrade

    root = tmp_path_factory.mktemp("small")
    for name in ("astronaut", "coffee"):
        hr = read_image(mini_root / "test" / "HR" / f"{name}.png")[:64, :64]
        write_png(root / "HR" / f"{name}.png", hr)
        write_png(root / "LR_bicubic" / "X2" / f"{name}x2.png", degrade(hr, 2))
    return root


@pytest.mark.parametrize(
    "windows, factor, expected",
    [
        ([32, 32], 0.5, [16, 16]),
        ([32, 32], 1.5, [48, 48]),
        ([32, 32], 2, [64, 64]),
        ([3, 5], 1.5, [5, 8]),  # 4.5 and 7.5 round half up (Python's round would give 4 and 8)
        ([5], 0.5, [3]),
        ([1, 8], 0.1, [1, 1]),  # never below 1
        ([8, 16], 1.0, [8, 16]),
    ],
)
def test_scaled_window_sizes(windows: list[int], factor: float, expected: list[int]) -> None:
    assert scaled_window_sizes(windows, factor) == expected


@pytest.mark.parametrize(
    "factor, shown",
    [
        (0, "0"),
        (-0.5, "-0.5"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (1e300, r"1e\+300"),
        (512.5, "512.5"),
        (True, "True"),
        ("2", "'2'"),
    ],
)
def test_scaled_window_sizes_refuses_a_bad_factor(factor, shown: str) -> None:
    with pytest.raises(
        ValueError, match=rf"window scale factor must be a finite number > 0 and at most 512, got {shown}$"
    ):
        scaled_window_sizes([8], factor)


def test_the_trained_windows_give_exactly_the_plain_output(rib_checkpoint: Path) -> None:
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(1))
    plain = load_upscaler(rib_checkpoint)
    same = load_upscaler(rib_checkpoint, window_sizes=[8, 8])
    scaled = load_upscaler(rib_checkpoint, window_scale=1.0)
    assert torch.equal(plain.upscale.forward(x), same.upscale.forward(x))
    assert torch.equal(plain.upscale.forward(x), scaled.upscale.forward(x))
    assert plain.provenance["window_sizes"] == [8, 8] and plain.provenance["window_scale"] is None
    assert scaled.provenance["window_scale"] == 1.0


def test_other_windows_change_the_output_and_the_tile_grid(rib_checkpoint: Path) -> None:
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(1))
    plain = load_upscaler(rib_checkpoint).upscale.forward(x)
    half = load_upscaler(rib_checkpoint, window_scale=0.5)
    assert [layer.window for layer in half.upscale.model.attention_layers()] == [4, 4]
    assert half.upscale.align == 4 and half.provenance["window_sizes"] == [4, 4]
    out = half.upscale.forward(x)
    assert out.shape == plain.shape == (1, 3, 64, 80)
    assert (out - plain).abs().max() > 1e-3
    mixed = load_upscaler(rib_checkpoint, window_sizes=[16, 8], tile=32, overlap=8)
    assert mixed.upscale.align == 16 and mixed.provenance["window_scale"] is None
    assert mixed.upscale.forward(x).shape == (1, 3, 64, 80)


def test_an_rpb_model_refuses_other_windows(rpb_checkpoint: Path) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^checkpoint {rpb_checkpoint}: window sizes 4 4 \(trained 8 8\): an "
        r"RPB layer trained at window 8 cannot run at window 4",
    ):
        load_upscaler(rpb_checkpoint, window_scale=0.5)
    assert load_upscaler(rpb_checkpoint, window_scale=1.0).provenance["window_sizes"] == [8, 8]


def _eval(*args: str) -> int:
    return main(["eval", "--scale", "2", *args])


def test_eval_at_a_window_scale_records_and_reports_the_windows(
    rib_checkpoint: Path, small_data: Path, tmp_path: Path, capsys
) -> None:
    assert (
        _eval(
            "--checkpoint",
            str(rib_checkpoint),
            "--data",
            str(small_data),
            "--out",
            str(tmp_path / "a.json"),
            "--device",
            "cpu",
            "--window-scale",
            "2",
        )
        == 0
    )
    line = capsys.readouterr().out
    assert "at windows 16 16 (trained 8 8)" in line
    provenance = json.loads((tmp_path / "a.json").read_text())["provenance"]
    assert provenance["window_sizes"] == [16, 16] and provenance["window_scale"] == 2.0
    assert provenance["model_config"]["window_sizes"] == [8, 8]

    assert (
        _eval(
            "--checkpoint",
            str(rib_checkpoint),
            "--data",
            str(small_data),
            "--out",
            str(tmp_path / "b.json"),
            "--device",
            "cpu",
        )
        == 0
    )
    assert "at windows" not in capsys.readouterr().out
    provenance = json.loads((tmp_path / "b.json").read_text())["provenance"]
    assert provenance["window_sizes"] == [8, 8] and provenance["window_scale"] is None


def test_eval_of_an_rpb_checkpoint_at_another_window_is_one_line(
    rpb_checkpoint: Path, small_data: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "e.json"
    assert (
        _eval(
            "--checkpoint", str(rpb_checkpoint), "--data", str(small_data), "--out", str(out), "--window-scale", "0.5"
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("suite eval: error: ")
    assert str(rpb_checkpoint) in err and "cannot run at window" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--window-sizes", "8"], "window sizes 8 (trained 8 8): expected 2 window sizes per block, got 1"),
        (["--window-sizes", "8", "0"], "window_sizes[1] = 0 must be an integer from 1 to 512"),
        (["--window-sizes", "8", "100000"], "window_sizes[1] = 100000 must be an integer from 1 to 512"),
        (["--window-scale", "1e300"], "--window-scale must be a finite number > 0 and at most 512, got 1e+300"),
    ],
)
def test_eval_refuses_bad_windows(
    rib_checkpoint: Path, small_data: Path, tmp_path: Path, capsys, flags: list[str], message: str
) -> None:
    assert (
        _eval("--checkpoint", str(rib_checkpoint), "--data", str(small_data), "--out", str(tmp_path / "e.json"), *flags)
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_window_options_are_refused_with_a_method(small_data: Path, tmp_path: Path, capsys) -> None:
    assert (
        _eval(
            "--method", "bicubic", "--data", str(small_data), "--out", str(tmp_path / "e.json"), "--window-scale", "0.5"
        )
        == 2
    )
    assert "--window-scale: model inference options, valid only with --checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        _eval(
            "--checkpoint",
            "c.pt",
            "--data",
            str(small_data),
            "--out",
            str(tmp_path / "e.json"),
            "--window-scale",
            "0.5",
            "--window-sizes",
            "4",
            "4",
        )
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def _analyze(checkpoint: Path, data: Path, out: Path, *factors: str) -> int:
    return main(
        [
            "analyze",
            "windows",
            "--checkpoint",
            str(checkpoint),
            "--data",
            str(data),
            "--scale",
            "2",
            "--factors",
            *factors,
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


def _csv_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def test_analyze_windows_of_a_rib_model(rib_checkpoint: Path, small_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "windows"
    assert _analyze(rib_checkpoint, small_data, out, "2", "0.5") == 0  # factor 1 is added, rows sorted
    printed = capsys.readouterr().out
    assert "factor" in printed and "16 16" in printed

    document = json.loads((out / "windows.json").read_text())
    rows = document["rows"]
    assert [row["factor"] for row in rows] == [0.5, 1.0, 2.0]
    assert [row["window_sizes"] for row in rows] == ["4 4", "8 8", "16 16"]
    assert all(row["status"] == "ok" and row["reason"] == "" for row in rows)
    assert all(set(row) == set(COLUMNS) for row in rows)
    assert all(row["ms_median"] > 0 and row["ms_iqr"] >= 0 for row in rows)
    reference = rows[1]
    assert reference["psnr_change"] == 0.0 and reference["time_ratio"] == 1.0
    assert rows[0]["psnr_change"] == rows[0]["psnr"] - reference["psnr"] != 0.0
    assert document["checkpoint"] == str(rib_checkpoint) and document["dataset"] == small_data.name
    assert document["protocol"] == "basicsr-y" and document["trained_window_sizes"] == [8, 8]
    assert document["provenance"]["device"] == "cpu" and "git_commit" in document["provenance"]

    header, csv_rows = _csv_rows(out / "windows.csv")
    assert header == list(COLUMNS)
    assert [float(row["psnr"]) for row in csv_rows] == [row["psnr"] for row in rows]

    # The factor-1 row is the plain `suite eval` of the checkpoint, to the last bit.
    assert (
        _eval(
            "--checkpoint",
            str(rib_checkpoint),
            "--data",
            str(small_data),
            "--out",
            str(tmp_path / "e.json"),
            "--device",
            "cpu",
        )
        == 0
    )
    plain = json.loads((tmp_path / "e.json").read_text())
    assert reference["psnr"] == plain["psnr"] and reference["ssim"] == plain["ssim"]


def test_analyze_windows_of_an_rpb_model_refuses_rows(
    rpb_checkpoint: Path, small_data: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "windows"
    assert _analyze(rpb_checkpoint, small_data, out, "0.5", "1", "1.5") == 0
    printed = capsys.readouterr().out
    assert "refused" in printed and "cannot run at window 4" in printed
    rows = json.loads((out / "windows.json").read_text())["rows"]
    refused, reference, larger = rows
    assert reference["factor"] == 1.0 and reference["status"] == "ok" and reference["psnr"] > 0
    assert reference["time_ratio"] == 1.0
    for row, window in ((refused, 4), (larger, 12)):
        assert row["status"] == "refused" and row["window_sizes"] == f"{window} {window}"
        assert row["reason"].startswith(
            f"window sizes {window} {window} (trained 8 8): an RPB layer trained at "
            f"window 8 cannot run at window {window}: "
        )
        assert row["psnr"] is None and row["ms_median"] is None and row["time_ratio"] is None
    _, csv_rows = _csv_rows(out / "windows.csv")
    assert [row["status"] for row in csv_rows] == ["refused", "ok", "refused"]
    assert csv_rows[0]["psnr"] == "" and "cannot run at window 4" in csv_rows[0]["reason"]


def test_analyze_windows_refuses_a_bad_factor(rib_checkpoint: Path, small_data: Path, tmp_path: Path, capsys) -> None:
    assert _analyze(rib_checkpoint, small_data, tmp_path / "w", "1e300", "1") == 2
    assert "--factors must be a finite number > 0 and at most 512, got 1e+300" in capsys.readouterr().err
    for factor in ("0", "-1", "inf", "nan"):
        with pytest.raises(SystemExit):
            _analyze(rib_checkpoint, small_data, tmp_path / "w", factor, "1")
        assert f"argument --factors: '{factor}' is not a finite number > 0" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1"])
def test_eval_refuses_a_non_finite_or_non_positive_window_scale_by_option(
    rib_checkpoint: Path, small_data: Path, tmp_path: Path, capsys, value: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _eval(
            "--checkpoint",
            str(rib_checkpoint),
            "--data",
            str(small_data),
            "--out",
            str(tmp_path / "e.json"),
            f"--window-scale={value}",
        )
    assert exit_info.value.code == 2
    assert f"argument --window-scale: '{value}' is not a finite number > 0" in capsys.readouterr().err


def test_a_window_beyond_the_input_runs_and_is_recorded_as_the_input_side(rib_checkpoint: Path) -> None:
    """The tiny preset shrinks a window larger than its map to the map: windows 64 on a 32x32 input run as 32."""
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    fitted = load_upscaler(rib_checkpoint, window_scale=8, largest_input=32)
    assert fitted.provenance["window_sizes"] == [32, 32] and fitted.provenance["window_scale"] == 8
    assert [layer.window for layer in fitted.upscale.model.attention_layers()] == [32, 32]
    at_32 = load_upscaler(rib_checkpoint, window_sizes=[32, 32])
    assert torch.equal(fitted.upscale.forward(x), at_32.upscale.forward(x))
    assert load_upscaler(rib_checkpoint, window_scale=8).provenance["window_sizes"] == [64, 64]  # no input given


def test_a_window_beyond_the_input_of_a_padding_model_is_refused(tmp_path: Path) -> None:
    padding = small_checkpoint(tmp_path / "pad.pt", "rib", large_windows="pad")
    with pytest.raises(
        ValueError,
        match=rf"^checkpoint {padding}: window sizes 64 64 \(trained 8 8\): window 64 of layer 0 is larger than the "
        r"largest input \(32 LR pixels a side\) and than its trained window 8: the layer pads its map",
    ):
        load_upscaler(padding, window_scale=8, largest_input=32)
    assert load_upscaler(padding, window_scale=4, largest_input=32).provenance["window_sizes"] == [32, 32]


def test_eval_records_the_window_that_ran(rib_checkpoint: Path, small_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "e.json"
    args = ["--checkpoint", str(rib_checkpoint), "--data", str(small_data), "--out", str(out), "--device", "cpu"]
    assert _eval(*args, "--window-scale", "8") == 0
    assert "at windows 32 32 (trained 8 8)" in capsys.readouterr().out
    fitted = json.loads(out.read_text())
    assert fitted["provenance"]["window_sizes"] == [32, 32] and fitted["provenance"]["window_scale"] == 8.0
    assert _eval(*args, "--window-sizes", "32", "32") == 0
    assert json.loads(out.read_text())["psnr"] == fitted["psnr"]  # the same network run
