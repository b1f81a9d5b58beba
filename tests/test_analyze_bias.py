"""`suite analyze bias`: the learned positional bias per layer and head as maps, statistics and figures."""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from suite.analysis.bias_fields import analyze_checkpoint, centre_token, offset_means
from suite.checkpoint import save_checkpoint
from suite.cli import main
from suite.models import BIASES, build_model
from suite.report.bias_figures import save_bias_figures

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DOCUMENTED_COLUMNS = [
    "layer",
    "block",
    "layer_in_block",
    "window",
    "bias",
    "head",
    "bias_min",
    "bias_max",
    "bias_range",
    "effective_rank_99",
    "translation_deviation",
]
RANK = 4


def small_model(bias: str, window: int = 8, seed: int = 0, n_blocks: int = 1) -> torch.nn.Module:
    """A tiny network whose positional parameters are random (not the near-zero init)."""
    torch.manual_seed(seed)
    model = build_model("tiny", bias, 2, dim=16, n_blocks=n_blocks, window_sizes=[window, window], ranks=[RANK, RANK])
    with torch.no_grad():
        for layer in model.attention_layers():
            for param in (p for name, p in layer.named_parameters() if name.split(".")[0] in ("rpb", "rib", "lowrank")):
                param.copy_(torch.randn_like(param) * 0.5)
    return model.eval()


def write_checkpoint(path: Path, model: torch.nn.Module, ema: torch.nn.Module | None = None) -> Path:
    """The parts of a training checkpoint that analysis reads (suite.train.trainer._state writes more)."""
    return save_checkpoint(
        {"iteration": 7, "model": model.state_dict(), "ema": (ema or model).state_dict(), "model_config": model.config},
        path,
    )


def effective_rank_by_numpy(matrix: np.ndarray) -> int:
    squares = np.linalg.svd(matrix, compute_uv=False) ** 2
    shares = np.cumsum(squares) / squares.sum()
    return int(np.argmax(shares >= 0.99)) + 1


def dense_float64(layer) -> np.ndarray:
    """The layer's dense bias (heads, N, N), recomputed here in float64."""
    with torch.no_grad():
        if layer.bias_kind == "rpb":
            return layer.rpb.table.double()[:, layer.rpb.index].view(layer.heads, -1, layer.window**2).numpy()
        rib = copy.deepcopy(layer.rib).double() if layer.rib is not None else None
        if rib is not None:
            q_pos, k_pos = rib(layer.window, layer.window, torch.device("cpu"))
            return (q_pos @ k_pos.transpose(-2, -1) / RANK**0.5).numpy()
        q_pos, k_pos = layer.lowrank.q_factors.double(), layer.lowrank.k_factors.double()
        return (q_pos @ k_pos.transpose(-2, -1)).numpy()


@pytest.fixture(scope="module")
def rpb_result(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("bias_rpb")
    model = small_model("rpb")
    checkpoint = write_checkpoint(folder / "rpb.pt", model)
    return model, checkpoint, analyze_checkpoint(checkpoint, folder / "out")


@pytest.fixture(scope="module")
def rib_result(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("bias_rib")
    model = small_model("rib", window=4)
    checkpoint = write_checkpoint(folder / "rib.pt", model)
    return model, checkpoint, analyze_checkpoint(checkpoint, folder / "out")


def test_rpb_offsets_are_its_table_and_the_centre_row_is_gathered(rpb_result) -> None:
    model, _, result = rpb_result
    layers = model.attention_layers()
    assert [f.layer for f in result.layers] == [0, 1] and [f.layer_in_block for f in result.layers] == [0, 1]
    for layer, found in zip(layers, result.layers):
        w, span = 8, 15
        table = layer.rpb.table.detach().double().numpy()  # (heads, 15*15), exact in float64
        assert found.offsets.shape == (2, span, span)
        assert np.array_equal(found.offsets, table.reshape(2, span, span))
        assert [row["translation_deviation"] for row in found.rows] == [0.0, 0.0]
        # The centre token (4, 4) sees key (y, x) at offset (4 - y, 4 - x): table row 4 - y + 7.
        assert found.centre_token == 4 * 8 + 4 == centre_token(8)
        expected = np.array(
            [
                [[table[h, (4 - y + w - 1) * span + (4 - x + w - 1)] for x in range(w)] for y in range(w)]
                for h in range(2)
            ]
        )
        assert np.array_equal(found.centre, expected)
        # The generic offset mean (used for RIB) recovers the table from the gathered bias, to rounding.
        dense = torch.from_numpy(dense_float64(layer))
        assert torch.allclose(offset_means(dense, w), torch.from_numpy(table).view(2, span, span), rtol=0, atol=1e-15)
        for head, row in enumerate(found.rows):
            assert row["bias_min"] == table[head].min() and row["bias_max"] == table[head].max()
            assert row["bias_range"] == pytest.approx(table[head].max() - table[head].min(), abs=1e-15)


def test_rib_offset_mean_and_deviation_match_an_explicit_loop(rib_result) -> None:
    model, _, result = rib_result
    w = 4
    for layer, found in zip(model.attention_layers(), result.layers):
        dense = dense_float64(layer)  # (heads, 16, 16)
        groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for i in range(w * w):
            for j in range(w * w):
                offset = (i // w - j // w, i % w - j % w)  # (dy, dx), query minus key
                groups.setdefault(offset, []).append((i, j))
        for head in range(2):
            means = np.zeros((2 * w - 1, 2 * w - 1))
            residual = 0.0
            for (dy, dx), pairs in groups.items():
                values = [dense[head, i, j] for i, j in pairs]
                means[dy + w - 1, dx + w - 1] = sum(values) / len(values)
                residual += sum((v - means[dy + w - 1, dx + w - 1]) ** 2 for v in values)
            np.testing.assert_allclose(found.offsets[head], means, rtol=1e-9, atol=1e-12)
            deviation = (residual / (w**4)) ** 0.5 / float(np.sqrt(np.mean(dense[head] ** 2)))
            assert found.rows[head]["translation_deviation"] == pytest.approx(deviation, rel=1e-9)
            assert found.rows[head]["translation_deviation"] > 0.05  # random factors: far from a table
            np.testing.assert_allclose(found.centre[head], dense[head, 2 * w + 2].reshape(w, w), rtol=1e-9, atol=1e-12)
            assert found.rows[head]["bias_min"] == pytest.approx(dense[head].min(), rel=1e-9)


def test_effective_rank_matches_numpy_svd(rpb_result, rib_result) -> None:
    for model, _, result in (rpb_result, rib_result):
        for layer, found in zip(model.attention_layers(), result.layers):
            dense = dense_float64(layer)
            for head, row in enumerate(found.rows):
                assert row["effective_rank_99"] == effective_rank_by_numpy(dense[head])
                if layer.bias_kind == "rib":
                    assert 1 <= row["effective_rank_99"] <= RANK
                else:  # a random table: far above rank R
                    assert row["effective_rank_99"] > 16


def test_rpb_table_of_a_separable_exponential_is_rank_one(tmp_path: Path) -> None:
    # T[dy, dx] = exp(a dy + b dx) gives B[i, j] = exp(a y_i + b x_i) exp(-a y_j - b x_j): rank 1.
    model = small_model("rpb")
    offsets = torch.arange(-7, 8, dtype=torch.float64)
    with torch.no_grad():
        for layer in model.attention_layers():
            table = torch.exp(0.1 * offsets[:, None] - 0.05 * offsets[None, :])  # (15, 15)
            layer.rpb.table.copy_(table.flatten().expand(2, -1))
    result = analyze_checkpoint(write_checkpoint(tmp_path / "rank1.pt", model), tmp_path / "out")
    assert [row["effective_rank_99"] for row in result.rows] == [1, 1, 1, 1]


def test_stats_files_have_the_documented_columns_and_one_row_per_layer_and_head(rpb_result) -> None:
    _, checkpoint, result = rpb_result
    out = checkpoint.parent / "out"
    with open(out / "stats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == DOCUMENTED_COLUMNS
    assert [(r["layer"], r["block"], r["layer_in_block"], r["head"]) for r in rows] == [
        ("0", "0", "0", "0"),
        ("0", "0", "0", "1"),
        ("1", "0", "1", "0"),
        ("1", "0", "1", "1"),
    ]
    assert {r["bias"] for r in rows} == {"rpb"} and {r["window"] for r in rows} == {"8"}
    assert [float(r["translation_deviation"]) for r in rows] == [0.0] * 4
    document = json.loads((out / "stats.json").read_text())
    assert document["rows"] == result.rows and document["checkpoint"] == str(checkpoint)
    assert document["model"] == {"preset": "tiny", "bias": "rpb", "scale": 2}
    assert document["provenance"]["checkpoint_iteration"] == 7 and "git_commit" in document["provenance"]
    fields = np.load(out / "fields.npz")
    assert sorted(fields.files) == [
        "centre_tokens",
        "layer0_centre",
        "layer0_offsets",
        "layer1_centre",
        "layer1_offsets",
        "windows",
    ]
    assert np.array_equal(fields["layer1_offsets"], result.layers[1].offsets)
    assert fields["layer0_centre"].shape == (2, 8, 8) and list(fields["windows"]) == [8, 8]
    assert not list(out.glob(".*.tmp"))


def test_weights_choose_ema_or_model(tmp_path: Path) -> None:
    model, ema = small_model("rpb", seed=1), small_model("rpb", seed=2)
    checkpoint = write_checkpoint(tmp_path / "two.pt", model, ema)
    for weights, source in (("ema", ema), ("model", model)):
        result = analyze_checkpoint(checkpoint, tmp_path / weights, weights=weights)
        table = source.attention_layers()[0].rpb.table.detach().double().numpy()
        assert np.array_equal(result.layers[0].offsets, table.reshape(2, 15, 15))
        assert result.weights == weights


def test_figures_are_written(rib_result) -> None:
    _, checkpoint, result = rib_result
    out = checkpoint.parent / "figures"
    paths = save_bias_figures(result, out)
    assert sorted(p.name for p in paths) == ["centre.pdf", "centre.png", "offsets.pdf", "offsets.png"]
    for path in paths:
        head = path.read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if path.suffix == ".png" else b"%PDF") and path.stat().st_size > 1000


def test_lowrank_layers_get_the_views_of_rib(tmp_path: Path) -> None:
    if "lowrank" not in BIASES:
        pytest.skip("this suite has no lowrank bias")
    model = small_model("lowrank", window=4)
    result = analyze_checkpoint(write_checkpoint(tmp_path / "lowrank.pt", model), tmp_path / "out")
    for layer, found in zip(model.attention_layers(), result.layers):
        dense = torch.from_numpy(dense_float64(layer))
        assert found.bias == "lowrank" and found.offsets.shape == (2, 7, 7) and found.centre.shape == (2, 4, 4)
        np.testing.assert_allclose(found.offsets, offset_means(dense, 4).numpy(), rtol=1e-9, atol=1e-12)
        for head, row in enumerate(found.rows):
            assert row["effective_rank_99"] == effective_rank_by_numpy(dense[head].numpy()) <= RANK


def test_a_model_without_positional_bias_is_refused(tmp_path: Path, capsys) -> None:
    checkpoint = write_checkpoint(tmp_path / "plain.pt", small_model("none"))
    with pytest.raises(ValueError, match=r"plain\.pt has no positional bias .*bias 'none'"):
        analyze_checkpoint(checkpoint, tmp_path / "out")
    assert main(["analyze", "bias", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("suite analyze: error: ") and "bias 'none'" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_cli_end_to_end(rib_result, tmp_path: Path, capsys) -> None:
    _, checkpoint, _ = rib_result
    out = tmp_path / "cli"
    assert main(["analyze", "bias", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("tiny RIB x2 (rib.pt, ema weights)\n") and "rank99" in printed
    assert len([line for line in printed.splitlines() if line.split()[:1] in (["0"], ["1"])]) == 2
    for name in ("stats.csv", "stats.json", "fields.npz", "offsets.png", "offsets.pdf", "centre.png", "centre.pdf"):
        assert (out / name).stat().st_size > 0
    missing = tmp_path / "missing.pt"
    assert main(["analyze", "bias", "--checkpoint", str(missing), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("suite analyze: error: ") and str(missing) in err


def test_figures_never_import_pyplot(rib_result, tmp_path: Path) -> None:
    _, checkpoint, _ = rib_result
    code = (
        "import sys; from suite.cli import main; "
        f"assert main(['analyze', 'bias', '--checkpoint', {str(checkpoint)!r}, '--out', {str(tmp_path)!r}]) == 0; "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
