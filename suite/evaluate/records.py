"""Result records: atomic JSON files and the provenance dict written beside every number."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

import suite


def _git(*args: str) -> str | None:
    """Output of a git command in the suite's checkout, or None outside a repository."""
    repo = Path(suite.__file__).resolve().parent.parent
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def provenance(device: str | torch.device = "cpu", **extra: object) -> dict:
    """Versions, commit, device and time of a run; `extra` items are added as given."""
    import pyiqa

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    record = {
        "suite_version": suite.__version__,
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyiqa": getattr(pyiqa, "__version__", "unknown"),
        "numpy": np.__version__,
        "device": str(device),
        "platform": platform.platform(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    record.update(extra)
    return record
