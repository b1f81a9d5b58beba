"""One loader for every checkpoint the suite reads: a released BasicSR file and a suite checkpoint pass the
same checks (archive integrity, stored-uncompressed members, real finite tensors inside their storage,
string keys) before any weight is used, and `suite convert released` writes nothing the checks refuse."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
import torch

from suite.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from suite.cli import main
from suite.models.official import ReleasedCheckpointError, read_basicsr

FIXTURE = Path(__file__).parent / "fixtures" / "official" / "rib_pixelshuffle_x2.pth"


def released_state() -> dict[str, torch.Tensor]:
    return read_basicsr(FIXTURE)[0]


def write_released(path: Path, **contents) -> Path:
    torch.save(contents, path)
    return path


def convert(source: Path, out: Path, capsys) -> tuple[int, pytest.CaptureResult]:
    """`suite convert released` of a file in the fixture's network layout."""
    overrides = ["dim=24", "heads=2", "window_sizes=[4, 8, 6]", "ranks=[4, 6, 5]", "n_blocks=2"]
    overrides += ["exp_ratio=1.5", "upsampler_dim=16"]
    code = main(
        ["convert", "released", str(source), "--preset", "base", "--scale", "2", "--override", *overrides]
        + ["--out", str(out)]
    )
    return code, capsys.readouterr()


def test_flipped_bytes_in_a_released_tensor_are_refused_and_convert_writes_nothing(tmp_path, capsys) -> None:
    data = bytearray(FIXTURE.read_bytes())
    with zipfile.ZipFile(FIXTURE) as archive:  # the largest tensor record: where a flip changes weights only
        record = max(archive.infolist(), key=lambda member: member.file_size)
    start = data.index(record.filename.encode()) + len(record.filename) + 64
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(ReleasedCheckpointError, match=r"corrupt\.pth is corrupt: archive member .* fails its CRC32"):
        read_basicsr(corrupt)
    out = tmp_path / "converted.pt"
    code, output = convert(corrupt, out, capsys)
    assert code == 2 and "fails its CRC32 check" in output.err and not out.exists()
    code, output = convert(FIXTURE, out, capsys)  # the intact file converts: the refusal was the flip
    assert code == 0 and "(params_ema, sha256" in output.out and load_checkpoint(out)["ema"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_released_weights_are_refused_by_name(tmp_path, bad) -> None:
    state = released_state()
    name = sorted(state)[3]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = bad
    path = write_released(tmp_path / "nonfinite.pth", params_ema=state)
    with pytest.raises(ReleasedCheckpointError, match=rf"params_ema\.{re.escape(name)} holds NaN or infinite"):
        read_basicsr(path)


@pytest.mark.parametrize(
    "malformed, kind", [({}, "an empty dict"), ([1, 2], "list"), ("weights", "str")], ids=["empty", "list", "str"]
)
def test_a_malformed_params_ema_is_refused_not_replaced_by_params(tmp_path, malformed, kind) -> None:
    path = write_released(tmp_path / "malformed.pth", params_ema=malformed, params=released_state())
    with pytest.raises(ReleasedCheckpointError, match=rf"params_ema is {kind}, not a state dict of tensors"):
        read_basicsr(path)


def test_keys_and_values_of_the_wrong_type_are_named(tmp_path) -> None:
    state = released_state()
    with pytest.raises(ReleasedCheckpointError, match=r"params_ema has a key 7 of type int, not str"):
        read_basicsr(write_released(tmp_path / "int_key.pth", params_ema={**state, 7: torch.zeros(1)}))
    with pytest.raises(ReleasedCheckpointError, match=r"params_ema\.extra is int, not a tensor"):
        read_basicsr(write_released(tmp_path / "int_value.pth", params_ema={**state, "extra": 3}))


def test_a_complex_weight_holding_nan_is_refused_in_a_suite_checkpoint(tmp_path) -> None:
    weights = {"w": torch.tensor([complex(float("nan"), 0.0)])}
    path = save_checkpoint(
        {"model_config": {"preset": "tiny", "bias": "rib", "scale": 2}, "ema": weights}, tmp_path / "c.pt"
    )
    with pytest.raises(CheckpointError, match=r"ema\.w is a torch\.complex64 torch\.strided tensor, not real-valued"):
        load_checkpoint(path)


def test_a_stride_zero_view_is_refused_before_any_check_allocates(tmp_path) -> None:
    """A 4-byte storage seen as 10^9 values: checking its finiteness would allocate a gigabyte."""
    huge = torch.zeros(1).expand(10**9)
    path = write_released(tmp_path / "strided.pth", params_ema={"w": huge})
    with pytest.raises(ReleasedCheckpointError, match=r"params_ema\.w of shape \(1000000000,\) .* 1 stored values"):
        read_basicsr(path)


def test_a_compressed_archive_member_is_refused(tmp_path) -> None:
    """torch stores members uncompressed; a deflated member is how a small file expands to gigabytes."""
    packed = tmp_path / "packed.pth"
    with zipfile.ZipFile(FIXTURE) as source, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            target.writestr(member.filename, source.read(member))
    with pytest.raises(ReleasedCheckpointError, match=r"packed\.pth: archive member .* is compressed"):
        read_basicsr(packed)


def test_a_legacy_or_foreign_file_is_named(tmp_path) -> None:
    legacy = tmp_path / "legacy.pth"
    torch.save({"params_ema": released_state()}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(
        ReleasedCheckpointError, match=r"legacy\.pth is truncated or corrupt, or in torch's legacy format"
    ):
        read_basicsr(legacy)


def test_resume_skips_a_checkpoint_without_training_state_and_says_why(tmp_path) -> None:
    from suite.checkpoint import TRAINING_STATE, checkpoint_name, latest_valid_checkpoint

    folder = tmp_path / "checkpoints"
    complete = training_state()
    save_checkpoint(complete, folder / checkpoint_name(3))
    converted = save_checkpoint({"model_config": SETTINGS, "ema": WEIGHTS}, folder / checkpoint_name(5))
    wrong_type = save_checkpoint({**complete, "iteration": "7"}, folder / checkpoint_name(7))
    no_epoch = save_checkpoint({**complete, "sampler": {}}, folder / checkpoint_name(9))
    path, state, skipped = latest_valid_checkpoint(folder)
    assert path == folder / checkpoint_name(3) and state["iteration"] == 3
    assert skipped == [
        f"checkpoint {no_epoch}: sampler.samples_per_epoch is None, not an integer >= 1",
        f"checkpoint {wrong_type}: iteration is str '7', not an integer >= 0",
        f"checkpoint {converted} lacks the training state to resume from: model, "
        + ", ".join(TRAINING_STATE)
        + " (a converted or hand-made checkpoint holds weights only)",
    ]


SETTINGS = {"preset": "tiny", "bias": "rib", "scale": 2}
WEIGHTS = {"w": torch.ones(2)}


def training_state() -> dict:
    """What a checkpoint written during training holds, with small values of the right types."""
    from suite.checkpoint import TRAINING_STATE

    values = {int: 3, dict: {}, list: []}
    state = {"model_config": SETTINGS, "model": WEIGHTS, "ema": WEIGHTS}
    state |= {key: values[kind] for key, kind in TRAINING_STATE.items()}
    state["sampler"] = {"samples_per_epoch": 8}
    state["timing"] = {"elapsed_s": 1.5, "step_times_s": torch.zeros(3, dtype=torch.float64)}
    return state


@pytest.mark.parametrize(
    "change, message",
    [
        ({"config": "recipe.yaml"}, "config is str 'recipe.yaml', not a dict"),
        ({"config": {"name": 5}}, "config.name is int 5, not a string"),
        ({"config": {"model": {1: "x"}}}, "config.model has a key 1 of type int, not str"),
        ({"iteration": None}, "iteration is None, not an integer >= 0"),
        ({"iteration": 2.5}, "iteration is float 2.5, not an integer >= 0"),
        ({"iteration": True}, "iteration is bool True, not an integer >= 0"),
        ({"iteration": -1}, "iteration is int -1, not an integer >= 0"),
        ({"rng": {"cpu": 1}}, "rng is dict {'cpu': 1}, not a list"),
        ({"config_hash": 12}, "config_hash is int 12, not a string"),
        ({"validation": [30.0]}, r"validation is list \[30\.0\], not a dict \(or None\)"),
        ({"model_config": "tiny"}, "model_config is str 'tiny', not a dict of model settings"),
        ({"model_config": {**SETTINGS, 3: 4}}, "model_config has a key 3 of type int, not str"),
        ({"model_config": {**SETTINGS, "preset": ["tiny"]}}, r"model_config\.preset is list \['tiny'\], not a string"),
        ({"ema": {**WEIGHTS, 7: torch.ones(1)}}, "ema has a key 7 of type int, not str"),
        ({"ema": {"w": [1.0, 2.0]}}, r"ema\.w is list, not a tensor"),
    ],
)
def test_metadata_of_the_wrong_type_is_refused_naming_the_file_and_the_field(tmp_path, change, message) -> None:
    from suite.checkpoint import latest_valid_checkpoint

    path = save_checkpoint({**training_state(), **change}, tmp_path / "checkpoints" / "iter_0000003.pt")
    with pytest.raises(CheckpointError, match=rf"^checkpoint {re.escape(str(path))}: {message}$"):
        load_checkpoint(path)
    # the resume path skips it with the same reason
    assert latest_valid_checkpoint(path.parent) == (None, None, [f"checkpoint {path}: {message}".replace("\\", "")])


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"scale": "2"}, "model field scale = '2' must be an integer >= 2"),
        ({"dim": None}, "model field dim = None must be an integer >= 1"),
    ],
)
def test_a_model_config_no_network_can_be_built_from_is_named_with_the_file(tmp_path, settings, message) -> None:
    # Types are load_checkpoint's (layer 0); whether the settings build a network is the network's to say.
    from suite.evaluate.inference import model_from_checkpoint

    path = save_checkpoint({**training_state(), "model_config": {**SETTINGS, **settings}}, tmp_path / "c.pt")
    state = load_checkpoint(path)
    with pytest.raises(
        CheckpointError, match=rf"^{re.escape(str(path))}: model_config cannot build a network: {message}$"
    ):
        model_from_checkpoint(state, source=path)


def test_every_reader_of_a_checkpoint_reports_bad_metadata_in_one_line(tmp_path, capsys) -> None:
    from suite.evaluate.inference import load_upscaler

    path = save_checkpoint({**training_state(), "config": "recipe.yaml"}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"c\.pt: config is str 'recipe\.yaml', not a dict$"):
        load_upscaler(path, torch.device("cpu"))
    assert main(["analyze", "bias", "--checkpoint", str(path), "--out", str(tmp_path / "bias")]) == 2
    err = capsys.readouterr().err
    assert err == f"suite analyze: error: checkpoint {path}: config is str 'recipe.yaml', not a dict\n"
    assert not (tmp_path / "bias").exists()


def test_a_checkpoint_storing_only_preset_bias_and_scale_is_described_by_its_resolved_config(tmp_path) -> None:
    """The analysis tools read the network's windows from the provenance: it holds the resolved configuration,
    not the subset a hand-made checkpoint stores (was KeyError: 'window_sizes' after all the evaluation)."""
    from suite.evaluate.inference import load_upscaler
    from suite.models import build_model

    model = build_model("tiny", "rpb", 2)
    path = save_checkpoint(
        {"model_config": {"preset": "tiny", "bias": "rpb", "scale": 2}, "ema": model.state_dict()}, tmp_path / "s.pt"
    )
    loaded = load_upscaler(path, torch.device("cpu"))
    assert loaded.provenance["model_config"] == model.config
    assert loaded.provenance["model_config"]["window_sizes"] == list(model.config["window_sizes"])


def test_weights_that_do_not_fit_their_network_are_named_with_the_file_and_keys(tmp_path) -> None:
    from suite.evaluate.inference import load_upscaler
    from suite.models import build_model

    weights = build_model("tiny", "rpb", 2).state_dict()
    weights["extra.weight"] = torch.zeros(1)
    first = next(iter(weights))
    weights[first] = torch.zeros(3)
    del weights[sorted(weights)[-2]]
    path = save_checkpoint(
        {"model_config": {"preset": "tiny", "bias": "rpb", "scale": 2}, "ema": weights}, tmp_path / "m.pt"
    )
    with pytest.raises(
        CheckpointError, match=rf"{re.escape(str(path))}: its 'ema' weights do not fit the network"
    ) as err:
        load_upscaler(path, torch.device("cpu"))
    assert "missing (1): " in str(err.value) and "unexpected (1): extra.weight (1,)" in str(err.value)
    assert f"mis-shaped (1): {first} (3,), network " in str(err.value)
