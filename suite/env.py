"""The one run record: what produced a result (versions, commit, device, time, environment lock), and the
one resolution of a device option (`auto`, cpu, cuda, cuda:N).

Every writer of a result (evaluation JSON, training summary, profile and benchmark files) embeds
`run_record(...)`. Versions come from the installed distributions' metadata, so building a record
imports neither torch nor pyiqa; only naming a CUDA device or resolving `auto` imports torch.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

import suite
from suite.overrides import short_repr

# Distributions whose versions decide the numbers a run produces.
VERSIONED = ("torch", "pyiqa", "numpy", "Pillow")


def _version(distribution: str) -> str | None:
    module = sys.modules.get(distribution.lower())
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)  # the one actually imported wins over metadata
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    """Output of a git command in the suite's checkout, or None outside a repository."""
    repo = Path(suite.__file__).resolve().parent.parent
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def check_device(device: object, option: str) -> str:
    """`device` when it is auto, cpu, cuda or cuda:N; otherwise ValueError naming `option` and the value."""
    if not isinstance(device, str) or not (
        device in ("auto", "cpu", "cuda")
        or (device.startswith("cuda:") and device[5:].isascii() and device[5:].isdigit())
    ):
        raise ValueError(f"{option} = {short_repr(device)} must be auto, cpu, cuda or cuda:N")
    return device


def resolve_device(device: str, option: str = "--device") -> str:
    """The one resolution of `auto`: cuda when torch sees a GPU, else cpu; cpu, cuda, cuda:N as given.

    Checked by check_device (the error names `option`); torch is imported only to resolve `auto`.
    """
    if check_device(device, option) != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name(device) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo where there is one."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def lock_status() -> dict:
    """The environment lock's hash and whether the installed versions match it (suite.lock)."""
    from suite.lock import lock_status as status

    try:
        return status()
    except Exception as err:  # the record must never fail over the lock: say why instead
        return {"error": f"{type(err).__name__}: {err}"}


def run_record(device=None, **extra: object) -> dict:
    """Versions, commit + dirty flag, device and its name, UTC time, lock status; `extra` added as given."""
    commit = _git("rev-parse", "HEAD")
    # Dirty means the code or configuration differs from the commit; result files under results/ are
    # outputs (a regenerated results folder is not a code change).
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results") if commit else None
    record = {
        "suite_version": suite.__version__,
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "python": platform.python_version(),
        **{name.lower(): _version(name) for name in VERSIONED},
        "device": None if device is None else str(device),
        "device_name": None if device is None else device_name(device),
        "platform": platform.platform(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "lock": lock_status(),
    }
    record.update(extra)
    return record
