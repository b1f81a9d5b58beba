"""Training checkpoints on disk: atomic writes, the `last` pointer, safe loading and RNG states.

A checkpoint is a `torch.save`d dict of tensors and plain values only, so it loads with
`torch.load(weights_only=True)`: loading never runs code. Before unpickling, the zip archive's CRC32s
are checked (torch itself reads a corrupted tensor record without complaint), so a truncated or
corrupted file fails with an error naming it instead of yielding wrong weights.
"""

from __future__ import annotations

import hashlib
import pickle
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from suite.files import atomic_write

FORMAT = "suite-train-checkpoint"
FORMAT_VERSION = 1
POINTER = "last"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file."""


def checkpoint_name(iteration: int) -> str:
    return f"iter_{iteration:07d}.pt"


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """`torch.save` `state` (plus the format tag) to `path` atomically."""
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    return atomic_write(Path(path), lambda handle: torch.save(state, handle))


def copy_atomic(source: str | Path, target: str | Path) -> Path:
    """Copy a checkpoint file to `target` atomically (e.g. the last iteration to final.pt)."""
    def write(handle) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, handle, 1 << 20)

    return atomic_write(Path(target), write)


def write_pointer(folder: str | Path, target: str | Path) -> Path:
    """Point `folder/last` at `target` (a file name in `folder`), atomically."""
    name = Path(target).name
    return atomic_write(Path(folder) / POINTER, lambda handle: handle.write(f"{name}\n".encode()))


def read_pointer(folder: str | Path) -> Path | None:
    """The checkpoint `folder/last` names, or None when there is no pointer."""
    pointer = Path(folder) / POINTER
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    if not name or "/" in name or name in (".", ".."):
        raise CheckpointError(f"checkpoint pointer {pointer} holds {name!r}, not a file name")
    target = pointer.parent / name
    if not target.is_file():
        raise CheckpointError(f"checkpoint pointer {pointer} names {target}, which does not exist")
    return target


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a training checkpoint with `weights_only=True` after checking the archive's integrity.

    Raises FileNotFoundError for a missing file and CheckpointError, naming the file, for one that is
    truncated or corrupted, carries a pickled Python object, or is not a suite training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: it is not a torch zip archive "
                              f"({path.stat().st_size} bytes)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad_member = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {err}") from None
    if bad_member is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt: archive member {bad_member} fails its CRC32 check")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "GLOBAL" in text or "global" in text:
            detail = next((line.strip() for line in text.splitlines() if "Unsupported global" in line), "")
            raise CheckpointError(
                f"checkpoint {path} carries a pickled Python object and is refused: loading it could run "
                f"arbitrary code (suite checkpoints hold only tensors and plain values). {detail}".rstrip()
            ) from None
        raise CheckpointError(f"checkpoint {path} is corrupt: {text.splitlines()[0] if text else err!r}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a suite training checkpoint (no format tag {FORMAT!r})")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {state.get('format_version')!r}; "
                              f"this suite reads version {FORMAT_VERSION}")
    return state


# ---- RNG states: tensors and plain values only, so they survive weights_only loading ----

def capture_rng() -> dict[str, Any]:
    """Every RNG the training process touches: torch CPU, every CUDA device, NumPy, Python."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
