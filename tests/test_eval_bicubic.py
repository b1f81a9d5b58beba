"""`suite eval --method bicubic`: BasicSR's per-image Set5 values, the published baseline, the JSON record,
bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from suite.cli import build_parser, main
from suite.data.datasets import open_paired
from suite.data.io import read_image, write_png
from suite.evaluate import evaluate

# Published Set5 bicubic baseline, Y channel (../shared/data/Set5/README.md, SPEC section 7).
SET5_BICUBIC = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)}
KEYS = {"dataset", "scale", "method", "n_images", "psnr", "ssim", "images", "metric_options", "provenance"}


def basicsr_reference(readme) -> dict[int, dict[str, tuple[float, float]]]:
    """{scale: {image or "mean": (PSNR, SSIM)}} from the "BasicSR reference values" table of the README."""
    text = readme.read_text()
    section = text[text.index("BasicSR reference values") :]
    table: dict[int, dict[str, tuple[float, float]]] = {}
    for scale, name, psnr, ssim in re.findall(r"^\| x(\d) \| (\w+) \| ([\d.]+) \| ([\d.]+) \|$", section, re.M):
        table.setdefault(int(scale), {})[name] = (float(psnr), float(ssim))
    return table


def test_set5_bicubic_reproduces_basicsr_per_image(set5_hr, tmp_path, capsys):
    """The paper's protocol (the default) gives BasicSR's own per-image values to 1e-4 dB and 1e-4 SSIM."""
    reference = basicsr_reference(set5_hr.parent / "README.md")
    assert sorted(reference) == [2, 3, 4] and all(len(rows) == 6 for rows in reference.values())
    set5 = set5_hr.parent
    for scale, (psnr, ssim) in SET5_BICUBIC.items():
        out = tmp_path / f"set5_x{scale}.json"
        assert main(["eval", "--method", "bicubic", "--data", str(set5), "--scale", str(scale), "--out", str(out)]) == 0
        result = json.loads(out.read_text())
        assert result["metric_options"]["protocol"] == "basicsr-y"
        measured = {row["name"]: (row["psnr"], row["ssim"]) for row in result["images"]}
        measured["mean"] = (result["psnr"], result["ssim"])
        assert sorted(measured) == sorted(reference[scale])
        for name, (ref_psnr, ref_ssim) in reference[scale].items():
            got_psnr, got_ssim = measured[name]
            assert abs(got_psnr - ref_psnr) <= 1e-4, (scale, name, got_psnr, ref_psnr)
            assert abs(got_ssim - ref_ssim) <= 1e-4, (scale, name, got_ssim, ref_ssim)
        assert set(result) == KEYS
        what = (result["dataset"], result["scale"], result["method"], result["n_images"])
        assert what == ("Set5", scale, "bicubic", 5)
        assert abs(result["psnr"] - psnr) <= 0.03, (scale, result["psnr"])
        assert abs(result["ssim"] - ssim) <= 0.002, (scale, result["ssim"])
        assert result["psnr"] == pytest.approx(np.mean([row["psnr"] for row in result["images"]]))
        assert result["metric_options"]["psnr"]["crop_border"] == scale
        assert result["provenance"]["lr_source"] == "matlab-bicubic"
        summary = capsys.readouterr().out
        assert f"Set5 x{scale} bicubic: PSNR {result['psnr']:.4f} dB, SSIM {result['ssim']:.4f}" in summary


def test_rounded_y_protocol_is_a_named_option(set5_hr, tmp_path):
    """`--protocol pyiqa-rounded-y`: pyiqa's SSIM module (Y rounded), about 0.001 below BasicSR at Set5 x2
    (0.9295, ../shared/data/Set5/README.md); PSNR within 3e-4 dB of BasicSR's (pyiqa's eps)."""
    reference = basicsr_reference(set5_hr.parent / "README.md")[2]["mean"]
    out = tmp_path / "rounded.json"
    assert (
        main(
            [
                "eval",
                "--method",
                "bicubic",
                "--data",
                str(set5_hr.parent),
                "--scale",
                "2",
                "--out",
                str(out),
                "--protocol",
                "pyiqa-rounded-y",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["metric_options"]["protocol"] == "pyiqa-rounded-y"
    assert result["metric_options"]["ssim"]["y_rounded"] is True
    assert round(result["ssim"], 4) == 0.9295 and reference[1] - result["ssim"] > 5e-4
    assert abs(result["psnr"] - reference[0]) <= 3e-4


def test_mini_eval_saves_images_and_records_provenance(mini_root, tmp_path):
    out, images = tmp_path / "r" / "mini.json", tmp_path / "sr"
    assert (
        main(
            [
                "eval",
                "--method",
                "bicubic",
                "--data",
                str(mini_root / "test"),
                "--scale",
                "4",
                "--out",
                str(out),
                "--save-images",
                str(images),
                "--name",
                "mini",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["dataset"] == "mini" and result["n_images"] == 5
    provenance = result["provenance"]
    for key in ("suite_version", "git_commit", "torch", "pyiqa", "device", "lr_source", "data_path"):
        assert key in provenance
    assert provenance["lr_source"] == "stored" and provenance["device"] == "cpu"
    assert sorted(p.name for p in images.iterdir()) == sorted(f"{row['name']}.png" for row in result["images"])
    assert read_image(images / "coffee.png").shape == (240, 240, 3)
    assert [p.name for p in out.parent.iterdir()] == ["mini.json"]  # no temp file left


def test_size_mismatch_fails_with_both_files_named(tmp_path, capsys):
    root = tmp_path / "SetX"
    write_png(root / "HR" / "a.png", np.zeros((40, 40, 3), np.uint8))
    write_png(root / "LR_bicubic" / "X2" / "ax2.png", np.zeros((19, 20, 3), np.uint8))
    code = main(["eval", "--method", "bicubic", "--data", str(root), "--scale", "2", "--out", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert code == 2 and "ax2.png is 20x19" in err and "a.png is 40x40" in err
    assert not (tmp_path / "o.json").exists()


def test_model_flags_are_declared_and_refused_for_bicubic(mini_root, tmp_path, capsys):
    args = build_parser().parse_args(
        [
            "eval",
            "--checkpoint",
            "m.pt",
            "--data",
            "d",
            "--scale",
            "2",
            "--out",
            "o",
            "--tile",
            "64",
            "--overlap",
            "8",
            "--self-ensemble",
            "--device",
            "cuda",
            "--save-images",
            "sr",
        ]
    )
    assert (args.checkpoint.name, args.tile, args.overlap, args.self_ensemble, args.device) == (
        "m.pt",
        64,
        8,
        True,
        "cuda",
    )
    code = main(
        [
            "eval",
            "--method",
            "bicubic",
            "--data",
            str(mini_root / "test"),
            "--scale",
            "2",
            "--out",
            str(tmp_path / "o.json"),
            "--tile",
            "64",
        ]
    )
    assert code == 2 and "--tile: model inference options, valid only with --checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["eval", "--method", "bicubic", "--checkpoint", "m.pt", "--data", "d", "--scale", "2", "--out", "o"]
        )


def test_evaluate_rejects_wrong_sr_size(mini_root):
    ds = open_paired(mini_root / "test", 2)
    with pytest.raises(ValueError, match=r"broken on test/astronaut: got SR uint8 \(120, 120, 3\)"):
        evaluate(lambda lr: lr, ds, 2, "broken")
    with pytest.raises(ValueError, match="opened at x2"):
        evaluate(lambda lr: lr, ds, 3, "broken")


def test_exact_reconstruction_is_refused_not_written_as_a_number(mini_root):
    """BasicSR's PSNR of SR == HR is inf; a JSON result cannot hold it, so evaluation names the images."""
    ds = open_paired(mini_root / "test", 2)
    hr_by_lr = {ds[i]["lr"].tobytes(): ds[i]["hr"] for i in range(len(ds))}
    with pytest.raises(
        ValueError,
        match=r"oracle on test: SR equals HR on the scored region of .*astronaut.*"
        r"PSNR is infinite under protocol 'basicsr-y'",
    ):
        evaluate(lambda lr: hr_by_lr[lr.tobytes()], ds, 2, "oracle")
