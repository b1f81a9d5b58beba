"""Bad input of the small kinds gets one line naming the file, option or value (no traceback, no silent
acceptance): a recipe that is not UTF-8, a count of 0, a digit that is not ASCII, a damaged lock file."""

from __future__ import annotations

import re

import pytest

from suite.cli import main


def test_a_recipe_that_is_not_utf8_is_named(tmp_path, capsys) -> None:
    recipe = tmp_path / "latin1.yaml"
    recipe.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert main(["train", "--config", str(recipe)]) == 2
    assert f"{recipe}: not a UTF-8 text file (invalid continuation byte at byte 9)" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-2", "two", "\u0663"])
def test_threads_must_be_a_positive_ascii_integer(value, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["bench", "attention", "--threads", value, "--out", "unused"])
    assert stop.value.code == 2
    assert f"argument --threads: {value!r} is not an integer >= 1" in capsys.readouterr().err


def test_a_device_index_or_rank_in_other_digits_is_refused() -> None:
    from suite.analysis.lowrank import parse_rank
    from suite.env import check_device

    assert check_device("cuda:1", "--device") == "cuda:1"
    with pytest.raises(ValueError, match=r"--device = 'cuda:\u0663' must be auto, cpu, cuda or cuda:N"):
        check_device("cuda:\u0663", "--device")  # ARABIC-INDIC DIGIT THREE: isdigit() is true
    assert parse_rank("8") == 8
    with pytest.raises(ValueError, match=r"rank '\xb2' must be a positive integer or 'full'"):
        parse_rank("\xb2")  # SUPERSCRIPT TWO: isdigit() is true, int() fails


def test_a_damaged_lock_is_one_failed_check_and_the_others_still_run(tmp_path, monkeypatch, capsys) -> None:
    import suite.lock

    damaged = tmp_path / "test.txt"
    damaged.write_text("torch==2.15.0\nthis is not a requirement line\n")
    monkeypatch.setattr(suite.lock, "LOCK_FILE", damaged)
    code = main(["doctor", "--skip-compile"])
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(
        rf"^lock\s+MISSING: cannot read the lock: {re.escape(str(damaged))}:2: not a requirement", out, re.M
    )
    assert "[metrics]" in out and "[machine]" in out  # the checks after the lock ran
    assert "NOT READY: lock: cannot read the lock" in out
