"""`suite doctor`: what it reports, and its exit code naming what the default workflow lacks."""

from __future__ import annotations

import re
import shutil

import torch
from packaging.requirements import Requirement

from suite.cli import doctor, main
from suite.models import BIASES, explain_backend, resolve_backend


def _doctor(capsys, *args: str) -> tuple[int, str]:
    code = main(["doctor", "--skip-compile", *args])
    return code, capsys.readouterr().out


BIAS_NAMES = "|".join(re.escape(bias) for bias in sorted(BIASES, key=len, reverse=True))


def _table(out: str) -> dict[tuple[str, str, str, str], tuple[str, str]]:
    """{(device, dtype, phase, bias): (backend, why)} of the printed backend table."""
    rows = {}
    for line in out.splitlines():
        match = re.match(rf"^(cpu|cuda)\s+(float32|bfloat16)\s+(eval|train)\s+({BIAS_NAMES})\s+(\w+)\s+(.+)$", line)
        if match:
            rows[match.groups()[:4]] = match.group(5, 6)
    return rows


def test_doctor_on_this_machine_is_ready_and_reports_every_section(capsys):
    code, out = _doctor(capsys)
    assert code == 0, out
    assert out.rstrip().splitlines()[-1].startswith("OK: everything the default workflow needs is in place")
    for section in ("[software]", "[devices]", "[attention]", "[metrics]", "[machine]"):
        assert section in out
    labels = {line.split()[0] for line in out.splitlines() if line and not line.startswith((" ", "["))}
    assert {
        "python",
        "torch",
        "lock",
        "pyiqa",
        "protocol",
        "threads",
        "data",
        "results",
        "cpu",
        "cuda",
        "flash-attn",
        "snakemake",
        "requirements",
    } <= labels
    assert re.search(rf"^torch\s+{re.escape(torch.__version__)} ", out, re.M)
    assert "flex cpu        not checked (--skip-compile)" in out
    assert re.search(r"^protocol\s+basicsr-y \(default\)", out, re.M)


def test_backend_table_is_what_the_models_resolve(capsys):
    code, out = _doctor(capsys)
    table = _table(out)
    kinds = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    expected = {}
    for kind in kinds:
        for dtype in (torch.float32, torch.bfloat16):
            for phase in ("eval", "train"):
                for bias in BIASES:
                    key = (kind, str(dtype).removeprefix("torch."), phase, bias)
                    backend = resolve_backend(
                        bias, "auto", torch.device(kind), dtype=dtype, needs_grad=phase == "train"
                    )
                    why = explain_backend(bias, torch.device(kind), dtype=dtype, needs_grad=phase == "train")[1]
                    expected[key] = (backend, why)
    assert table == expected
    assert all(why for _, why in table.values())


def test_flex_attention_compile_check_runs_on_the_cpu(capsys):
    code = main(["doctor"])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("flex cpu"))
    assert "FlexAttention compiles and runs" in line or "WARNING: FlexAttention does not compile" in line
    assert code == 0, out  # FlexAttention is a speed question: it never blocks the default workflow


def test_too_little_disk_is_not_ready_and_names_the_folder(capsys, tmp_path):
    code, out = _doctor(capsys, "--data-root", str(tmp_path / "data"), "--min-free-gb", "1e9")
    assert code == 1
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("NOT READY: data: ")
    assert str(tmp_path / "data") in last and "below --min-free-gb 1e+09" in last
    assert "results:" in last  # both folders are on the same too-small disk


def test_an_unusable_device_is_not_ready(capsys):
    code, out = _doctor(capsys, "--device", "cuda:99")
    assert code == 1
    assert "NOT READY: device: --device cuda:99 is not usable here" in out
    code, out = _doctor(capsys, "--device", "tpu")
    assert code == 1 and "--device 'tpu': expected cpu, cuda or cuda:N" in out


def test_a_missing_requirement_and_no_snakemake_are_not_ready(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(
        doctor,
        "_declared_requirements",
        lambda: [Requirement("torch>=2.5"), Requirement("not-a-real-dist>=1.0"), Requirement("pytest<1")],
    )
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(doctor.sys, "executable", str(tmp_path / "python"))
    code, out = _doctor(capsys)
    assert code == 1
    last = out.rstrip().splitlines()[-1]
    assert "requirements: not-a-real-dist not installed; pytest " in last and " outside <1 " in last
    assert "snakemake: no `snakemake` executable" in last


def test_a_lock_mismatch_warns_lists_the_differences_and_stays_ready(capsys, monkeypatch):
    import suite.lock

    monkeypatch.setattr(
        suite.lock,
        "lock_status",
        lambda: {
            "lock_file": "requirements/test.txt",
            "lock_sha256": "ab" * 32,
            "matches": False,
            "differences": ["torch: installed 2.14.1, lock 2.15.0", "pillow: not installed, lock 13.0.0"],
        },
    )
    code, out = _doctor(capsys)
    assert code == 0
    assert re.search(r"^lock\s+WARNING: requirements/test.txt \(sha256 abababababab...\): 2 difference", out, re.M)
    assert "- torch: installed 2.14.1, lock 2.15.0" in out
    assert "- pillow: not installed, lock 13.0.0" in out
    assert out.rstrip().splitlines()[-1] == (
        "OK: everything the default workflow needs is in place (1 warning(s) above)"
    )


def test_doctor_help_imports_no_torch():
    import subprocess
    import sys

    code = "import sys; from suite.cli import build_parser; build_parser(('doctor',)); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
