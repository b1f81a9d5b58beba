"""The SR network: output sizes, gradients, state_dict round trip, seeding, window changes, presets."""

from __future__ import annotations

import io

import pytest
import torch

from suite.models import PRESETS, SRTransformer, build_model, count_parameters

BIASES = ("rpb", "rib", "none")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_model(bias: str, scale: int = 2, seed: int = 0, **overrides) -> SRTransformer:
    """The tiny preset slimmed to one block; the upsampler is given weights so the body shows in the output."""
    torch.manual_seed(seed)
    model = build_model("tiny", bias=bias, scale=scale, **{"dim": 16, "n_blocks": 1, **overrides})
    with torch.no_grad():  # zero-initialised, the output would be plain bicubic whatever the body computes
        weight = model.to_pixels.weight
        weight.copy_(torch.linspace(-0.05, 0.05, weight.numel()).view_as(weight))
    return model.eval()


def image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


# Tiny's equal windows (32, 32: the second layer shifted) and a cyclic block (8, 16, 32).
WINDOW_SETS = {"shifted": dict(), "cyclic": dict(window_sizes=(8, 16, 32), ranks=(8, 8, 8))}


@pytest.mark.parametrize("windows", WINDOW_SETS, ids=str)
@pytest.mark.parametrize("scale", (2, 3, 4))
@pytest.mark.parametrize("bias", BIASES)
def test_output_size_is_exact_for_odd_and_small_inputs(bias, scale, windows):
    model = small_model(bias, scale, **WINDOW_SETS[windows])
    with torch.no_grad():
        for height, width in ((37, 53), (9, 13)):  # odd sizes; and a map smaller than the 32 window
            out = model(image(height, width))
            assert out.shape == (1, 3, height * scale, width * scale), (height, width)
            assert torch.isfinite(out).all()


def test_cyclic_blocks_shift_nothing_and_equal_windows_shift_alternate_layers():
    cyclic = small_model("rib", **WINDOW_SETS["cyclic"]).attention_layers()
    assert [layer.window for layer in cyclic] == [8, 16, 32] and not any(layer.shift for layer in cyclic)
    equal = small_model("rib", n_blocks=2).attention_layers()
    assert [layer.shift for layer in equal] == [False, True, False, True]


def test_gradients_reach_the_rib_mlp_and_the_rpb_table():
    x = image(20, 24)
    for bias, names in (("rib", ("rib.mlp.0.weight", "rib.to_q.weight", "rib.to_k.weight")), ("rpb", ("rpb.table",))):
        model = small_model(bias).train()
        model(x).square().mean().backward()
        for layer in model.attention_layers():
            params = dict(layer.named_parameters())
            for name in names:
                grad = params[name].grad
                assert grad is not None and grad.abs().sum() > 0, f"{bias}: no gradient reached {name}"


def test_state_dict_round_trip_rebuilds_the_same_network():
    x = image(21, 30)
    for bias in BIASES:
        model = small_model(bias, scale=3, seed=0)
        buffer = io.BytesIO()
        torch.save({"config": model.config, "state": model.state_dict()}, buffer)
        buffer.seek(0)
        saved = torch.load(buffer)
        rebuilt = build_model(**saved["config"])
        assert rebuilt.config == model.config
        rebuilt.eval()
        with torch.no_grad():
            assert not torch.equal(rebuilt(x), model(x)), "a fresh network should differ before loading"
            rebuilt.load_state_dict(saved["state"])  # strict: same keys, same shapes
            assert torch.equal(rebuilt(x), model(x)), bias
    # Index buffers are rebuilt, not stored.
    keys = small_model("rpb").state_dict().keys()
    assert not any(key.endswith(("rpb.index", "qkv_scale")) for key in keys)


def test_same_seed_gives_identical_outputs_and_another_seed_does_not():
    x = image(19, 23)
    for bias in BIASES:
        with torch.no_grad():
            first, again, other = (small_model(bias, seed=seed)(x) for seed in (0, 0, 1))
        assert torch.equal(first, again), bias
        assert not torch.allclose(first, other), bias


def test_rib_runs_at_another_window_and_rpb_refuses():
    x = image(40, 40)
    rib = small_model("rib")
    with torch.no_grad():
        trained = rib(x)
        rib.set_window_sizes((16, 16))
        assert [layer.window for layer in rib.attention_layers()] == [16, 16]
        other = rib(x)
        rib.set_window_sizes((32, 32))
        back = rib(x)
    assert other.shape == trained.shape and not torch.allclose(other, trained)
    assert torch.equal(back, trained)

    rpb = small_model("rpb")
    with pytest.raises(ValueError, match=r"RPB layer trained at window 32 cannot run at window 16"):
        rpb.set_window_sizes((16, 16))
    assert [layer.window for layer in rpb.attention_layers()] == [32, 32]
    with pytest.raises(ValueError, match="expected 2 window sizes per block, got 3"):
        rib.set_window_sizes((8, 16, 32))


def test_none_runs_at_another_window():
    model = small_model("none")
    model.set_window_sizes((8, 8))
    with torch.no_grad():
        assert model(image(17, 18)).shape == (1, 3, 34, 36)


def test_presets_follow_the_spec_table():
    expected = {  # SPEC section 4: dim, blocks, heads, windows, ranks, exp
        "light": (48, 5, 3, (8, 16, 32, 16, 32, 64), (16, 16, 16, 24, 24, 24), 1.5),
        "base": (180, 6, 6, (16, 32, 64, 16, 32, 64), (18, 18, 18, 34, 34, 34), 1.25),
        "base+": (180, 6, 6, (16, 32, 48, 32, 48, 96), (18, 18, 18, 34, 34, 34), 1.25),
        "large": (192, 8, 6, (16, 32, 64, 16, 32, 64), (16, 16, 16, 32, 32, 32), 2.0),
        "large+": (192, 8, 6, (16, 32, 48, 32, 48, 96), (16, 16, 16, 32, 32, 32), 2.0),
    }
    assert set(PRESETS) == set(expected) | {"tiny"}
    for name, (dim, blocks, heads, windows, ranks, exp) in expected.items():
        preset = PRESETS[name]
        got = (preset["dim"], preset["n_blocks"], preset["heads"], tuple(preset["window_sizes"]),
               tuple(preset["ranks"]), preset["exp_ratio"])
        assert got == (dim, blocks, heads, windows, ranks, exp), name


def test_build_model_config_and_parameter_count():
    rpb, rib, none = (build_model("tiny", bias=bias) for bias in ("rpb", "rib", "none"))
    assert rib.config["preset"] == "tiny" and rib.config["window_sizes"] == [32, 32]
    # The RPB table per layer: heads * (2w - 1)^2 = 2 * 63^2.
    assert count_parameters(rpb) - count_parameters(none) == 4 * 2 * 63**2
    rib_layer = rib.attention_layers()[0].rib
    assert count_parameters(rib) - count_parameters(none) == 4 * count_parameters(rib_layer)
    assert count_parameters(rib_layer) == (42 * 32 + 32) + 2 * 32 * 2 * 8  # MLP + per-head factor maps
    with pytest.raises(ValueError, match="unknown model field"):
        build_model("tiny", window=8)
    with pytest.raises(ValueError, match="scale must be an integer >= 2, got 1"):
        build_model("tiny", scale=1)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        build_model("huge")
