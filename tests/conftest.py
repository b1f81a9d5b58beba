"""Shared pytest fixtures: the ../shared data folder (skipped where absent) and a session-wide mini set."""

from __future__ import annotations

from pathlib import Path

import pytest

# ../shared beside the checkout: present on the team's machines, absent on a bare clone.
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


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
