"""The run record's dirty flag: code or configuration edits make a run dirty, regenerated results do not."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _dirty_flag(checkout: Path) -> str:
    code = "from suite.env import run_record; print(run_record()['git_dirty'])"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_results_do_not_make_a_run_dirty_but_code_does(tmp_path: Path) -> None:
    checkout = tmp_path / "clone"
    git = ["git", "-C", str(checkout), "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run(["git", "clone", "-q", str(REPO), str(checkout)], check=True, timeout=120)
    # The clone runs this working tree's package, committed there, so the record reads the code under test.
    shutil.rmtree(checkout / "suite")
    shutil.copytree(REPO / "suite", checkout / "suite", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([*git, "add", "-A", "suite"], check=True, timeout=120)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "code under test"], check=True, timeout=120)
    assert _dirty_flag(checkout) == "False"
    reports = list((checkout / "results").glob("*/REPORT.md"))
    assert reports
    for report in reports:
        report.write_text("regenerated\n")
    assert _dirty_flag(checkout) == "False"
    (checkout / "Snakefile").write_text((checkout / "Snakefile").read_text() + "\n# edit\n")
    assert _dirty_flag(checkout) == "True"
