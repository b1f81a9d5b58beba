"""Shared pytest fixtures and helpers: the ../shared data folder (skipped where absent), a session-wide mini
set, and running the workflow on a copy of it (imported by the workflow tests: `from conftest import ...`)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# ../shared beside the checkout: present on the team's machines, absent on a bare clone.
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
REPO = Path(__file__).resolve().parents[1]
SWEEPS = Path("suite/profiling/configs")  # the one folder of sweep files, named by path in the configs


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: small tensors run faster with it, and alike on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """`../shared/data`, or skip the test with the reason when it is not there."""
    data = SHARED_DIR / "data"
    if not data.is_dir():
        pytest.skip(f"shared data folder {data} is absent (it exists only on the team's machines)")
    return data


@pytest.fixture(scope="session")
def set5_hr(shared_data_dir: Path) -> Path:
    """`../shared/data/Set5/HR` with its five images, or skip with the reason."""
    hr = shared_data_dir / "Set5" / "HR"
    if not hr.is_dir() or len(list(hr.glob("*.png"))) != 5:
        pytest.skip(f"Set5 HR images not found in {hr}")
    return hr


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded mini benchmark, built once per test session (read-only for tests)."""
    from suite.data.mini import build_mini

    root = tmp_path_factory.mktemp("mini")
    build_mini(root)
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked `gpu` where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason=f"needs a CUDA device; torch {torch.__version__} sees none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


# --- the workflow on a copy of the checkout ----------------------------------------------------------

def copy_workflow(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", target / "Snakefile")
    shutil.copytree(REPO / "workflows", target / "workflows")
    shutil.copytree(REPO / SWEEPS, target / SWEEPS)
    return target


@functools.cache
def no_slurm_controller() -> Path:
    """A folder with an `scontrol` that fails at once. The SLURM executor plugin, when installed, runs
    `scontrol show config` as snakemake imports it, whatever the executor; on a machine with SLURM's client
    but no controller answering, that waits 9-10 s per snakemake call. These tests use the local executor."""
    folder = Path(tempfile.mkdtemp(prefix="no-slurm-"))
    stub = folder / "scontrol"
    stub.write_text("#!/bin/sh\necho 'scontrol: stubbed by the workflow tests (no controller)' >&2\nexit 1\n")
    stub.chmod(0o755)
    return folder


def snakemake(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run snakemake of this interpreter in `workdir`, with this environment's `suite` on PATH (and no
    SLURM controller probe: `no_slurm_controller`)."""
    path = os.pathsep.join([str(no_slurm_controller()), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a dry run as {rule: count}."""
    block = output.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match[1]] = int(match[2])
    return counts


def shell_lines(output: str, needle: str) -> list[str]:
    """The printed shell commands (dry run with -p) that contain `needle`."""
    commands = [line.strip().removeprefix("Shell command:").strip() for line in output.splitlines()]
    return [command for command in commands if needle in command and command.startswith(("suite", "OMP", "torchrun"))]
