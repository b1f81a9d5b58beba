"""The `suite` command's conventions (issue 9.6) and its failure modes (issue 10.4, 10.7): `--help` without
torch, one-line errors for every expected failure, exit 130 on Ctrl-C, atomic writes that refuse to
replace what is not a regular file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

import suite.cli.eval as eval_cmd
from suite.cli import main
from suite.files import NotARegularFileError, write_json_atomic, write_text_atomic


def test_help_imports_no_torch() -> None:
    code = (
        "import sys\nfrom suite.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch imported:', 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torch imported: False" in done.stdout
    for command in ("data", "train", "eval", "profile", "bench", "report"):
        assert command in done.stdout


def test_eval_device_defaults_to_auto() -> None:
    from suite.cli import build_parser

    args = build_parser(("eval",)).parse_args(
        ["eval", "--method", "bicubic", "--data", "d", "--scale", "2", "--out", "o.json"]
    )
    assert args.device == "auto" and args.protocol == "basicsr-y"


def test_one_device_resolution(monkeypatch, tmp_path: Path, mini_root: Path, capsys) -> None:
    import torch

    from suite.env import resolve_device

    for available, expected in ((True, "cuda"), (False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda available=available: available)
        assert resolve_device("auto") == expected
    assert [resolve_device(text) for text in ("cpu", "cuda", "cuda:1")] == ["cpu", "cuda", "cuda:1"]
    with pytest.raises(ValueError, match=r"^run.device = 'gpu' must be auto, cpu, cuda or cuda:N$"):
        resolve_device("gpu", "run.device")
    # Every command names its own option; nothing is read or written first.
    assert (
        main(
            [
                "eval",
                "--method",
                "bicubic",
                "--data",
                str(mini_root / "test"),
                "--scale",
                "2",
                "--out",
                str(tmp_path / "e.json"),
                "--device",
                "cuda:x",
            ]
        )
        == 2
    )
    assert "--device = 'cuda:x' must be auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()


# ---- atomic writes refuse non-regular targets (10.4) ----


def test_atomic_write_refuses_a_device_node() -> None:
    with pytest.raises(NotARegularFileError, match="/dev/null: it is a character device"):
        write_text_atomic("/dev/null", "x")
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_atomic_write_refuses_a_fifo_and_a_symlink(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    target = tmp_path / "real.json"
    target.write_text("keep me")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(NotARegularFileError, match="it is a FIFO"):
        write_json_atomic(fifo, {})
    with pytest.raises(NotARegularFileError, match="it is a symlink"):
        write_json_atomic(link, {})
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink() and target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "pipe", "real.json"]  # no temp left


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_eval_refuses_a_bad_out_before_any_work(tmp_path: Path, mini_root: Path, capsys, kind: str) -> None:
    out = {"folder": tmp_path, "device": Path("/dev/null")}.get(kind, tmp_path / "pipe")
    if kind == "fifo":
        os.mkfifo(out)
    code = main(["eval", "--method", "bicubic", "--data", str(mini_root / "test"), "--scale", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(out) in err and "not a regular file" in err


# ---- one-line errors (10.7) ----


def test_train_out_dir_under_a_file_is_one_line(tmp_path: Path, mini_root: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "out_dir": str(blocker / "run"),
                "model": {"preset": "tiny"},
                "data": {"train": str(mini_root / "train"), "lr_patch": 32, "batch_size": 2, "num_workers": 0},
                "schedule": {"iterations": 2, "warmup": 0, "milestones": []},
                "run": {"device": "cpu"},
            }
        )
    )
    assert main(["train", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("suite train: error: ") and err.count("\n") == 1 and str(blocker) in err


def test_malformed_yaml_in_an_override_is_one_line(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("out_dir: x\n")
    assert main(["train", "--config", str(recipe), "--override", "optim.lr=[1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "override 'optim.lr=[1'" in err and "not valid YAML" in err


def _alias_bomb(indent: str) -> str:
    """A YAML list whose items are anchors of 9 copies of the previous one: 9**10 strings if expanded."""
    lines = ['- &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"- &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]" for level in range(1, 10)]
    return "\n".join(indent + line for line in lines)


@pytest.mark.parametrize(
    "where", ["run:\n  threads:\n{bomb}", "schedule:\n  milestones:\n{bomb}", "model:\n  overrides:\n    dim:\n{bomb}"]
)
def test_a_yaml_alias_bomb_is_not_expanded_into_the_message(tmp_path: Path, capsys, where: str) -> None:
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text("out_dir: x\ndata:\n  train: x\n" + where.format(bomb=_alias_bomb("    ")) + "\n")
    assert main(["train", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(recipe) in err and len(err) < 600, err[:600]


def _failing_eval(monkeypatch, error: BaseException) -> list[str]:
    def run(args):
        raise error

    monkeypatch.setattr(eval_cmd, "_run", run)
    return ["eval", "--method", "bicubic", "--data", "d", "--scale", "2", "--out", "o.json"]


def _errors():
    from PIL import Image

    return [
        PermissionError(13, "Permission denied", "/results/out.json"),
        OSError(28, "No space left on device", "/results/checkpoints/iter_0000010.pt"),
        IsADirectoryError(21, "Is a directory", "/results"),
        tarfile.ReadError("unexpected end of data in DIV2K.tar"),
        zipfile.BadZipFile("Bad CRC-32 for file 'Set5/baby.png'"),
        Image.DecompressionBombError("Image size (1000000000 pixels) exceeds limit"),
        yaml.YAMLError("mapping values are not allowed here"),
    ]


@pytest.mark.parametrize("error", _errors(), ids=lambda e: type(e).__name__)
def test_expected_failures_are_one_line(monkeypatch, capsys, error: BaseException) -> None:
    argv = _failing_eval(monkeypatch, error)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("suite eval: error: ") and err.count("\n") == 1


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys) -> None:
    assert main(_failing_eval(monkeypatch, KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == "suite eval: interrupted\n"


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    with pytest.raises(TypeError):
        main(_failing_eval(monkeypatch, TypeError("a bug, not bad input")))


def test_unusable_save_images_fails_before_scoring(tmp_path: Path, mini_root: Path, capsys) -> None:
    blocker = tmp_path / "sr"
    blocker.write_text("a file, not a folder")
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
            str(tmp_path / "e.json"),
            "--save-images",
            str(blocker),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(blocker) in err
    assert not (tmp_path / "e.json").exists() and capsys.readouterr().out == ""


@pytest.mark.parametrize("value", [None, True, 2.5, [8, 16], "rpb", {"a": 1}])
def test_an_override_formatted_reads_back_as_its_value(value) -> None:
    from suite.overrides import format_override, parse_override

    assert parse_override(format_override("model.overrides.x", value)) == (["model", "overrides", "x"], value)
