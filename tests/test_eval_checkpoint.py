"""`suite eval --checkpoint`: EMA weights, tiled = untiled, the x8 self-ensemble, provenance, images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from suite.checkpoint import load_checkpoint, save_checkpoint
from suite.cli import main
from suite.evaluate.inference import (
    ModelUpscaler,
    load_upscaler,
    model_from_checkpoint,
    self_ensemble,
    tile_spans,
    tiled_forward,
)
from suite.files import file_sha256
from suite.models import build_model
from suite.train.config import load_recipe
from suite.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give the zero-initialised upsampler weights, so the output depends on the whole body."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.to_pixels.weight.copy_(torch.randn(model.to_pixels.weight.shape, generator=generator) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, mini_root: Path) -> Path:
    folder = tmp_path_factory.mktemp("evalckpt")
    recipe = {
        "name": "evaltest",
        "out_dir": str(folder / "run"),
        "model": {
            "preset": "tiny",
            "bias": "rib",
            "scale": 2,
            "overrides": {"dim": 16, "n_blocks": 1, "window_sizes": [8, 8], "ranks": [4, 4]},
        },
        "data": {"train": str(mini_root / "train"), "lr_patch": 16, "batch_size": 2, "num_workers": 0},
        "optim": {"lr": 2e-3},
        "schedule": {"iterations": 3, "warmup": 1, "milestones": []},
        "ema": {"decay": 0.5},
        "run": {"device": "cpu", "seed": 11, "log_every": 1, "val_every": 0, "checkpoint_every": 3},
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return train(load_recipe(path))


def test_tile_spans_cover_the_axis_on_the_window_grid() -> None:
    spans = tile_spans(100, tile=32, overlap=12, align=8)
    starts = [s[0] for s in spans]
    assert all(start % 8 == 0 for start in starts)
    assert spans[0][2] == 0 and spans[-1][3] == 100 and spans[-1][1] == 100
    for (_, a1, _, keep_stop), (b0, _, keep_start, _) in zip(spans, spans[1:]):
        assert keep_stop == keep_start and a1 - b0 >= 12  # partition; overlap at least as asked
        assert keep_stop - b0 >= 6 and a1 - keep_stop >= 6  # every kept pixel >= overlap/2 from a cut edge
    assert tile_spans(20, tile=32, overlap=8, align=8) == [(0, 20, 0, 20)]
    with pytest.raises(ValueError, match="tile 16 is smaller than the window grid 32"):
        tile_spans(100, tile=16, overlap=4, align=32)
    with pytest.raises(ValueError, match="cannot advance"):
        tile_spans(100, tile=16, overlap=12, align=8)


@pytest.mark.parametrize("bias", ["rib", "rpb"])
def test_tiled_equals_untiled(bias: str) -> None:
    # One unshifted layer (window 8): a tile edge on the window grid disturbs its last window and the 3
    # convolutions after the attention reach 3 pixels further: 11 < 12, half the overlap of 24.
    torch.manual_seed(0)
    model = randomised(build_model("tiny", bias, 2, dim=16, n_blocks=1, window_sizes=(8,), ranks=(4,)))
    x = torch.rand(1, 3, 44, 60)
    with torch.no_grad():
        whole = model(x)
        tiled = tiled_forward(model, x, 2, tile=32, overlap=24, align=8)
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-4)
    # And through the upscaler, with a tile as large as the image: the same uint8 output.
    lr = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(ModelUpscaler(model, tile=64, overlap=8)(lr), ModelUpscaler(model)(lr))


def test_tiling_without_enough_overlap_shows_seams() -> None:
    torch.manual_seed(0)
    model = randomised(build_model("tiny", "rib", 2, dim=16, n_blocks=1, window_sizes=(8,), ranks=(4,)))
    x = torch.rand(1, 3, 44, 60)
    with torch.no_grad():
        assert (tiled_forward(model, x, 2, tile=32, overlap=16, align=8) - model(x)).abs().max() > 1e-3


def test_self_ensemble_averages_the_eight_transforms() -> None:
    torch.manual_seed(0)
    model = randomised(build_model("tiny", "rib", 2, dim=16, n_blocks=1, window_sizes=(8,), ranks=(4,)))
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        ensemble = self_ensemble(model, x)
        expected = torch.zeros_like(ensemble)
        for transpose in (False, True):
            for turns in range(4):
                for_model = x.transpose(-2, -1) if transpose else x
                y = torch.rot90(model(torch.rot90(for_model, turns, dims=(-2, -1))), -turns, dims=(-2, -1))
                expected += y.transpose(-2, -1) if transpose else y
        torch.testing.assert_close(ensemble, expected / 8, rtol=0, atol=1e-6)
        assert (ensemble - model(x)).abs().max() > 1e-4  # the model is not equivariant: it does average
    upsample = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731 - equivariant
    torch.testing.assert_close(self_ensemble(upsample, x), upsample(x))


def test_upscaler_uses_ema_weights_by_default(checkpoint: Path) -> None:
    state = load_checkpoint(checkpoint)
    ema = load_upscaler(checkpoint).upscale.model.state_dict()
    raw = load_upscaler(checkpoint, weights="model").upscale.model.state_dict()
    assert all(torch.equal(ema[k], state["ema"][k]) for k in ema)
    assert all(torch.equal(raw[k], state["model"][k]) for k in raw)
    assert not torch.equal(ema["to_pixels.weight"], raw["to_pixels.weight"])
    assert model_from_checkpoint(state).config == state["model_config"]


def small_benchmark(root: Path) -> Path:
    """Two 64x64 crops of the mini test set with their x2 LR: a few seconds of tiled self-ensemble."""
    from suite.data.io import read_image, write_png
    from suite.data.resize import degrade

    for name in ("astronaut", "coffee"):
        hr = read_image(root.parent / "mini_test" / "HR" / f"{name}.png")[:64, :64]
        write_png(root / "HR" / f"{name}.png", hr)
        write_png(root / "LR_bicubic" / "X2" / f"{name}x2.png", degrade(hr, 2))
    return root


def test_eval_checkpoint_writes_provenance_and_images(checkpoint: Path, mini_root: Path, tmp_path: Path) -> None:
    (tmp_path / "mini_test").symlink_to(mini_root / "test")
    data = small_benchmark(tmp_path / "small")
    out, images = tmp_path / "eval.json", tmp_path / "sr"
    code = main(
        [
            "eval",
            "--checkpoint",
            str(checkpoint),
            "--data",
            str(data),
            "--scale",
            "2",
            "--out",
            str(out),
            "--tile",
            "24",
            "--overlap",
            "8",
            "--self-ensemble",
            "--save-images",
            str(images),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    state = load_checkpoint(checkpoint)
    prov = result["provenance"]
    assert prov["suite_version"] == __import__("suite").__version__
    assert "git_commit" in prov  # None outside a git checkout
    assert prov["torch"] == str(torch.__version__)
    assert prov["device"] == "cpu" and prov["weights"] == "ema"  # --device auto on a machine without CUDA
    assert (prov["precision"], prov["compile"], prov["checkpoint_format"]) == ("fp32", False, "suite")
    assert result["metric_options"]["protocol"] == "basicsr-y"
    assert prov["checkpoint_sha256"] == file_sha256(checkpoint)
    assert prov["training_config"] == state["config"] and prov["training_config_hash"] == state["config_hash"]
    assert (prov["tile"], prov["overlap"], prov["self_ensemble"]) == (24, 8, True)
    assert prov["checkpoint_iteration"] == 3
    assert result["method"] == "evaltest" and result["n_images"] == 2
    assert sorted(p.stem for p in images.glob("*.png")) == sorted(row["name"] for row in result["images"])


def test_eval_refuses_a_bad_checkpoint(tmp_path: Path, mini_root: Path, capsys) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    code = main(
        [
            "eval",
            "--checkpoint",
            str(bad),
            "--data",
            str(mini_root / "test"),
            "--scale",
            "2",
            "--out",
            str(tmp_path / "e.json"),
        ]
    )
    assert code == 2
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()


def _eval(checkpoint: Path, data: Path, out: Path, *extra: str) -> int:
    return main(
        ["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--scale", "2", "--out", str(out), *extra]
    )


def test_eval_records_precision_and_protocol(checkpoint: Path, mini_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    assert (
        _eval(checkpoint, mini_root / "test", out, "--precision", "attention-bf16", "--protocol", "pyiqa-rounded-y")
        == 0
    )
    result = json.loads(out.read_text())
    assert result["provenance"]["precision"] == "attention-bf16"
    assert result["metric_options"]["protocol"] == "pyiqa-rounded-y"
    upscaler = load_upscaler(checkpoint, precision="attention-bf16").upscale
    assert all(layer.attention_dtype == torch.bfloat16 for layer in upscaler.model.attention_layers())


@pytest.mark.parametrize(
    "damage, message",
    [
        ("nan", "holds NaN or infinite weights"),
        ("no_settings", "lacks its model settings"),
    ],
)
def test_eval_refuses_damaged_checkpoint_contents(
    checkpoint: Path, mini_root: Path, tmp_path: Path, capsys, damage: str, message: str
) -> None:
    state = load_checkpoint(checkpoint)
    state = {k: v for k, v in state.items() if k not in ("format", "format_version")}
    if damage == "nan":
        state["ema"]["head.weight"][0, 0, 0, 0] = float("nan")
    else:
        del state["model_config"]
    bad = save_checkpoint(state, tmp_path / "bad.pt")
    assert _eval(bad, mini_root / "test", tmp_path / "e.json") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and message in err
    assert not (tmp_path / "e.json").exists()


def test_eval_dispatches_released_checkpoints(monkeypatch, mini_root: Path, tmp_path: Path) -> None:
    # suite.models.official.load_released converts BasicSR files (tested by the models' own tests);
    # here: --preset routes the file to it and the result records the file's SHA-256 and the conversion.
    import suite.models.official as official

    calls = []

    def fake_load_released(path, preset, scale, bias="rib", overrides=None):
        calls.append((Path(path), preset, scale, bias, overrides))
        return build_model("tiny", "rib", scale, dim=16, n_blocks=1, window_sizes=[8, 8], ranks=[4, 4]), {
            "source_keys": "params_ema",
            "converted": 12,
            "format": "basicsr",  # load_released's provenance names the file's format
        }

    monkeypatch.setattr(official, "load_released", fake_load_released)
    released = tmp_path / "SST_x2.pth"
    released.write_bytes(b"stands for a BasicSR file")
    out = tmp_path / "e.json"
    assert (
        _eval(
            released,
            mini_root / "test",
            out,
            "--preset",
            "base",
            "--bias",
            "rpb",
            "--override",
            "dim=16",
            "ranks=[4, 4]",
        )
        == 0
    )
    prov = json.loads(out.read_text())["provenance"]
    assert calls == [(released, "base", 2, "rpb", {"dim": 16, "ranks": [4, 4]})]
    assert prov["checkpoint_sha256"] == file_sha256(released) and prov["checkpoint_format"] == "basicsr"
    assert prov["conversion"] == {"source_keys": "params_ema", "converted": 12, "format": "basicsr"}


def test_eval_without_preset_names_the_basicsr_hint(mini_root: Path, tmp_path: Path, capsys) -> None:
    foreign = tmp_path / "foreign.pth"
    torch.save({"params": {"w": torch.zeros(1)}}, foreign)
    assert _eval(foreign, mini_root / "test", tmp_path / "e.json") == 2
    err = capsys.readouterr().err
    assert str(foreign) in err and "--preset" in err


def test_compile_wraps_the_network_only_when_asked(checkpoint: Path) -> None:
    plain, compiled = load_upscaler(checkpoint).upscale, load_upscaler(checkpoint, compile=True).upscale
    assert plain.network is plain.model
    assert isinstance(compiled.network, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled.network._orig_mod is compiled.model


def test_released_only_options_need_a_preset(checkpoint: Path, mini_root: Path, tmp_path: Path, capsys) -> None:
    assert _eval(checkpoint, mini_root / "test", tmp_path / "e.json", "--override", "dim=8") == 2
    assert "--override" in capsys.readouterr().err


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "official"


def test_eval_of_an_official_fixture_records_the_source_and_conversion(mini_root: Path, tmp_path: Path, capsys) -> None:
    # A BasicSR-format file written by the official code (tests/fixtures/official, see its manifest).
    manifest = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]["rib_pixelshuffle_x2"]["suite"]
    released = FIXTURES / "rib_pixelshuffle_x2.pth"
    overrides = [f"{key}={json.dumps(value)}" for key, value in manifest["overrides"].items()]
    out = tmp_path / "e.json"
    assert _eval(released, mini_root / "test", out, "--preset", manifest["preset"], "--override", *overrides) == 0
    prov = json.loads(out.read_text())["provenance"]
    assert prov["checkpoint_sha256"] == file_sha256(released) and prov["checkpoint_format"] == "basicsr"
    assert prov["conversion"]["format"] == "basicsr" and prov["conversion"]["source_sha256"] == file_sha256(released)
    assert prov["model_config"]["dim"] == manifest["overrides"]["dim"] and prov["precision"] == "fp32"
    # The same file under the full preset does not fit: one line naming the file and the mis-shaped keys.
    assert _eval(released, mini_root / "test", tmp_path / "f.json", "--preset", manifest["preset"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(released) in err and not (tmp_path / "f.json").exists()
