"""Equivalence with the official SST code: fixtures written by tools/official/make_fixtures.py from the
official network (float32 attention) load through our converter and reproduce its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from suite.files import file_sha256
from suite.models import build_model
from suite.models.official import (
    ReleasedCheckpointError,
    convert_basicsr_state,
    fourier_labels_official,
    fourier_labels_ours,
    load_released,
    read_basicsr,
)
from suite.models.positional import fourier_features, window_coordinates

FIXTURES = Path(__file__).parent / "fixtures" / "official"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def our_network(name: str, **changes):
    suite = MANIFEST["fixtures"][name]["suite"]
    overrides = {**suite["overrides"], **changes}
    return build_model(suite["preset"], suite["bias"], suite["scale"], **overrides)


def official_output(name: str, model) -> tuple[torch.Tensor, torch.Tensor]:
    state, key = read_basicsr(FIXTURES / f"{name}.pth")
    assert key == "params_ema"
    model.load_state_dict(convert_basicsr_state(state, model))
    io = torch.load(FIXTURES / f"{name}.io.pt", weights_only=True)
    with torch.no_grad():
        return model.eval()(io["input"]), io["output"]


def test_manifest_records_the_official_commit_and_stays_small():
    assert MANIFEST["official_commit"].startswith("bcd6132")
    assert len(MANIFEST["fixtures"]) >= 4
    assert sum(path.stat().st_size for path in FIXTURES.iterdir()) < 2 * 1024 * 1024


@pytest.mark.parametrize("name", sorted(MANIFEST["fixtures"]))
def test_fixture_reproduces_the_official_output(name):
    ours, official = official_output(name, our_network(name))
    assert ours.shape == official.shape
    assert (ours - official).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    "name, change",
    [
        ("rib_pixelshuffle_x2", lambda m: m.tail_conv.bias),
        ("rib_pixelshuffle_x2", lambda m: m.norm.weight),
        ("rib_pixelshuffle_x2", lambda m: m.upsampler.final_conv.bias),
        ("rib_direct_x4_small_map", lambda m: m.upsampler.up_conv.bias),
        ("rpb_pixelshuffle_x4", lambda m: m.upsampler.feature_conv.weight),
    ],
    ids=["tail conv", "tail norm", "pixelshuffle final conv", "direct up conv", "pixelshuffle feature conv"],
)
def test_a_changed_tail_or_upsampler_layer_breaks_the_equivalence(name, change):
    model = our_network(name)
    state, _ = read_basicsr(FIXTURES / f"{name}.pth")
    model.load_state_dict(convert_basicsr_state(state, model))
    with torch.no_grad():
        change(model).mul_(1.01)
    io = torch.load(FIXTURES / f"{name}.io.pt", weights_only=True)
    with torch.no_grad():
        assert (model.eval()(io["input"]) - io["output"]).abs().max().item() > 1e-4


def test_a_clamped_window_does_not_match_the_official_padding():
    """The official network pads a map smaller than its window up to it; clamping the window differs."""
    ours, official = official_output(
        "rib_direct_x4_small_map", our_network("rib_direct_x4_small_map", large_windows="clamp")
    )
    assert (ours - official).abs().max().item() > 1e-4


def test_mismatched_preset_lists_missing_unexpected_and_misshaped_keys():
    state, _ = read_basicsr(FIXTURES / "rib_pixelshuffle_x2.pth")
    model = our_network("rib_pixelshuffle_x2", n_blocks=1, ranks=[4, 6, 7])
    with pytest.raises(ReleasedCheckpointError) as err:
        convert_basicsr_state(state, model)
    message = str(err.value)
    assert "unexpected" in message and "body.1.0.attn.to_qkv.weight (72, 24, 1, 1)" in message
    assert (
        "mis-shaped" in message and "body.0.2.attn.to_q (2, 32, 5) -> blocks.0.layers.2.attn.rib.to_q.weight" in message
    )
    wider = our_network("rib_pixelshuffle_x2", dim=36, heads=3)
    with pytest.raises(ReleasedCheckpointError, match=r"mis-shaped \(\d+\): head\.|mis-shaped .*proj\.weight"):
        convert_basicsr_state(state, wider)
    partial = {key: value for key, value in state.items() if not key.startswith("upsampler.")}
    with pytest.raises(ReleasedCheckpointError, match=r"missing \(6\): upsampler\.feature_conv\.weight"):
        convert_basicsr_state(partial, our_network("rib_pixelshuffle_x2"))


def test_fourier_reorder_maps_our_features_to_the_official_ones():
    window = 6
    ours = fourier_features(window_coordinates(window, window), 10)  # (N, 42): ours, coordinates (y, x)
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    x = 2.0 * (xs.flatten().float() + 0.5) / window - 1.0
    y = 2.0 * (ys.flatten().float() + 0.5) / window - 1.0
    columns = [x, y]  # the official order: [x, y, sin x, sin y, cos x, cos y, sin 2x, ...]
    for i in range(10):
        columns += [torch.sin(x * 2**i), torch.sin(y * 2**i), torch.cos(x * 2**i), torch.cos(y * 2**i)]
    official = torch.stack(columns, dim=1)
    order = [fourier_labels_official(10).index(label) for label in fourier_labels_ours(10)]
    torch.testing.assert_close(ours, official[:, order], atol=1e-6, rtol=0)


def test_load_released_reads_params_ema_and_records_provenance(tmp_path):
    name = "rib_pixelshuffle_x2"
    source = FIXTURES / f"{name}.pth"
    with pytest.raises(ReleasedCheckpointError, match=r"preset base, x2, rib\): the official weights do not fit"):
        load_released(source, "base", 2)  # the full base network: the small fixture does not fit it
    with pytest.raises(ReleasedCheckpointError, match="not an official network"):
        convert_basicsr_state(read_basicsr(source)[0], build_model("tiny"))
    params_only = tmp_path / "params_only.pth"
    torch.save({"params": {"a": torch.zeros(1)}}, params_only)
    assert read_basicsr(params_only)[1] == "params"
    bad = tmp_path / "bad.pth"
    torch.save({"state": {}}, bad)
    with pytest.raises(ReleasedCheckpointError, match=r"bad\.pth: not a BasicSR checkpoint: no params_ema or params"):
        read_basicsr(bad)


def test_load_released_on_a_full_preset(tmp_path, monkeypatch):
    """A BasicSR file in the official layout of the whole light preset loads, with the SHA-256 recorded."""
    model = build_model("light", "rib", 2)
    official = {}
    for key, value in model.state_dict().items():  # our keys -> official keys, shapes as the official files
        official[to_official_key(key, len(model.blocks), len(model.blocks[0].layers))] = official_shape(key, value)
    path = tmp_path / "SSTlight_X2.pth"
    torch.save({"params_ema": official}, path)
    loaded, provenance = load_released(path, "light", 2)
    assert provenance["param_key"] == "params_ema" and provenance["official_config"] == "SSTlight"
    assert len(provenance["source_sha256"]) == 64 and not loaded.training


def to_official_key(key: str, n_blocks: int, n_layers: int) -> str:
    from suite.models.official import LAYER_KEYS

    if key.startswith("head."):
        return "proj." + key[5:]
    if key.startswith("norm."):
        return f"body.{n_blocks}." + key[5:]
    if key.startswith("tail_conv."):
        return f"body.{n_blocks + 1}." + key[10:]
    if key.startswith("upsampler."):
        return key
    parts = key.split(".")
    block = parts[1]
    if parts[2] == "conv":
        return f"body.{block}.{n_layers}.{parts[3]}"
    layer, rest = parts[3], ".".join(parts[4:])
    official = next(off for off, ours, _ in LAYER_KEYS if ours == rest)
    return f"body.{block}.{layer}.{official}"


def official_shape(key: str, value: torch.Tensor) -> torch.Tensor:
    if key.endswith("rib.mlp.0.weight"):  # the inverse of the converter's reorder
        order = [fourier_labels_official(10).index(label) for label in fourier_labels_ours(10)]
        official = torch.empty(value.shape[1], value.shape[0])
        official[order] = value.t()
        return official
    if key.endswith("rib.mlp.0.bias"):
        return value[None]
    if key.endswith(("rib.to_q.weight", "rib.to_k.weight")):
        return value.view(3, -1, value.shape[1]).permute(0, 2, 1).contiguous()  # light: 3 heads
    if value.dim() == 2:
        return value[:, :, None, None]
    return value


def test_suite_convert_writes_a_suite_checkpoint(tmp_path):
    from suite.checkpoint import load_checkpoint
    from suite.cli import main
    from suite.cli.convert import OFFICIAL_PRESETS
    from suite.models import OFFICIAL_NAMES

    assert OFFICIAL_PRESETS == tuple(OFFICIAL_NAMES)
    model = build_model("light", "rib", 3)
    n_blocks, n_layers = len(model.blocks), len(model.blocks[0].layers)
    official = {
        to_official_key(key, n_blocks, n_layers): official_shape(key, value)
        for key, value in model.state_dict().items()
    }
    source = tmp_path / "SSTlight_DFLIP_X3.pth"
    torch.save({"params_ema": official, "params": official}, source)
    out = tmp_path / "converted.pt"
    assert main(["convert", "released", str(source), "--preset", "light", "--scale", "3", "--out", str(out)]) == 0
    saved = load_checkpoint(out)
    assert saved["model_config"] == model.config and "ema" in saved and "model" not in saved
    for key, value in model.state_dict().items():
        assert torch.equal(saved["ema"][key], value), key
    assert saved["provenance"]["converted_from"]["source_sha256"] == file_sha256(source)
    assert (
        main(["convert", "released", str(source), "--preset", "light", "--scale", "3", "--out", str(out)]) == 2
    )  # exists
    assert (
        main(["convert", "released", str(source), "--preset", "base", "--scale", "3", "--out", str(tmp_path / "b.pt")])
        == 2
    )


def test_load_released_with_overrides_reproduces_a_fixture():
    name = "rpb_pixelshuffle_x4"
    suite = MANIFEST["fixtures"][name]["suite"]
    model, provenance = load_released(
        FIXTURES / f"{name}.pth", suite["preset"], suite["scale"], suite["bias"], overrides=suite["overrides"]
    )
    io = torch.load(FIXTURES / f"{name}.io.pt", weights_only=True)
    with torch.no_grad():
        assert (model(io["input"]) - io["output"]).abs().max().item() <= 1e-5
    assert provenance["model_config"]["dim"] == 16 and provenance["model_config"]["bias"] == "rpb"


# Each official positional encoding's own part, changed: the fixture no longer matches (so the match above
# is not an accident of a weak positional term).
POSITIONAL_CHANGES = {
    "rope_mixed_pixelshuffle_x2": ({"rope_scale": "standard"}, None),  # D^-1/2 instead of the official 1
    "rope_axial_direct_x3": ({"rope_theta": 5.0}, None),
    "flashbias_pixelshuffle_x4": ({}, lambda m: m.attention_layers()[0].flashbias.q_factors),
    "ribsiren_direct_x2": ({"siren_omega": 27.0}, None),
    "cpe_direct_x2": ({}, lambda m: m.blocks[0].layers[0].cpe.weight),
}


@pytest.mark.parametrize("name", sorted(POSITIONAL_CHANGES))
def test_a_changed_positional_encoding_breaks_the_equivalence(name):
    fields, tensor = POSITIONAL_CHANGES[name]
    model = our_network(name, **fields)
    state, _ = read_basicsr(FIXTURES / f"{name}.pth")
    model.load_state_dict(convert_basicsr_state(state, model))
    if tensor is not None:
        with torch.no_grad():
            tensor(model).zero_()
    io = torch.load(FIXTURES / f"{name}.io.pt", weights_only=True)
    with torch.no_grad():
        assert (model.eval()(io["input"]) - io["output"]).abs().max().item() > 1e-4


def test_every_official_attention_type_has_a_fixture():
    from suite.models.biases import OFFICIAL_TYPES

    covered = {MANIFEST["fixtures"][name]["official_kwargs"]["attn_type"] for name in MANIFEST["fixtures"]}
    # RPB's three official kernels (Naive, SDPA, Flex) compute one bias; SDPA's fixture stands for them.
    assert covered | {"Naive", "Flex"} == set(OFFICIAL_TYPES)
    assert {MANIFEST["fixtures"][name]["suite"]["bias"] for name in MANIFEST["fixtures"]} >= {
        "cpe",
        "rope",
        "flashbias",
        "rib-siren",
    }


@pytest.mark.parametrize("name", sorted(MANIFEST["fixtures"]))
def test_convert_released_and_eval_reproduce_every_official_type(name, tmp_path):
    """`suite convert released` writes a suite checkpoint that reproduces the official output, for every
    official attention type; `suite eval --checkpoint X.pth --preset --bias` reads the released file."""
    from suite.checkpoint import load_checkpoint
    from suite.cli import main
    from suite.evaluate.inference import load_upscaler, model_from_checkpoint

    suite = MANIFEST["fixtures"][name]["suite"]
    overrides = [f"{key}={json.dumps(value)}" for key, value in suite["overrides"].items()]
    out = tmp_path / "converted.pt"
    assert (
        main(
            [
                "convert",
                "released",
                str(FIXTURES / f"{name}.pth"),
                "--preset",
                suite["preset"],
                "--scale",
                str(suite["scale"]),
                "--bias",
                suite["bias"],
                "--override",
                *overrides,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    model = model_from_checkpoint(load_checkpoint(out)).eval()
    io = torch.load(FIXTURES / f"{name}.io.pt", weights_only=True)
    loaded = load_upscaler(
        FIXTURES / f"{name}.pth",
        preset=suite["preset"],
        scale=suite["scale"],
        bias=suite["bias"],
        model_overrides=suite["overrides"],
    )
    assert loaded.method == f"{suite['preset']}-released"
    assert (
        loaded.provenance["conversion"]["official_attn_type"]
        == MANIFEST["fixtures"][name]["official_kwargs"]["attn_type"]
    )
    with torch.no_grad():
        assert (model(io["input"]) - io["output"]).abs().max().item() <= 1e-5
        assert (loaded.upscale.model(io["input"]) - io["output"]).abs().max().item() <= 1e-5


def test_a_safetensors_file_of_the_official_state_dict_loads_the_same_weights(tmp_path):
    """A checkpoint served as .safetensors (one flat state dict of the official names) loads into the preset as
    the BasicSR .pth does, exactly; non-finite values and keys that do not fit are refused naming the file."""
    from safetensors.torch import save_file

    name = "rib_pixelshuffle_x2"
    suite = MANIFEST["fixtures"][name]["suite"]
    state, _ = read_basicsr(FIXTURES / f"{name}.pth")
    flat = tmp_path / f"{name}.safetensors"
    save_file({key: tensor.contiguous() for key, tensor in state.items()}, str(flat))
    args = (suite["preset"], suite["scale"], suite["bias"])
    from_pth, _ = load_released(FIXTURES / f"{name}.pth", *args, overrides=suite["overrides"])
    from_safetensors, provenance = load_released(flat, *args, overrides=suite["overrides"])
    expected = from_pth.state_dict()
    assert all(torch.equal(tensor, expected[key]) for key, tensor in from_safetensors.state_dict().items())
    assert (provenance["format"], provenance["param_key"]) == ("safetensors", None)
    assert provenance["source_sha256"] == file_sha256(flat)

    bad = dict(state)
    bad["proj.weight"] = bad["proj.weight"].clone().fill_(float("nan"))
    save_file({key: tensor.contiguous() for key, tensor in bad.items()}, str(tmp_path / "nan.safetensors"))
    with pytest.raises(ReleasedCheckpointError, match=r"nan\.safetensors: state dict\.proj\.weight holds NaN"):
        load_released(tmp_path / "nan.safetensors", *args, overrides=suite["overrides"])
    extra = {**{key: tensor.contiguous() for key, tensor in state.items()}, "stray.weight": torch.zeros(2)}
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(ReleasedCheckpointError, match=r"extra\.safetensors \(preset .*stray\.weight"):
        load_released(tmp_path / "extra.safetensors", *args, overrides=suite["overrides"])
    (tmp_path / "cut.safetensors").write_bytes(flat.read_bytes()[:-5])
    with pytest.raises(ReleasedCheckpointError, match=r"cut\.safetensors is not a valid safetensors file"):
        load_released(tmp_path / "cut.safetensors", *args, overrides=suite["overrides"])
