"""The suite's one checkpoint format: atomic save, safe load, newest-valid lookup.

A checkpoint is a `torch.save`d dict of tensors and plain values only, so it loads with
`torch.load(weights_only=True)`: loading never runs code. Before unpickling, the zip archive's CRC32s
are checked (torch itself reads a corrupted tensor record without complaint), so a truncated or
corrupted file fails with an error naming it instead of yielding wrong weights. A loaded checkpoint
must carry its model settings (`model_config`) and finite weights: NaN weights are refused here, not
discovered as a 6 dB score.

Training writes one (`iter_NNNNNNN.pt`) per checkpoint interval, `evaluate` and `suite convert` read
and write the same format.
"""

from __future__ import annotations

import pickle
import re
import shutil
import zipfile
from pathlib import Path

import torch

from suite.files import atomic_write

FORMAT = "suite-train-checkpoint"
FORMAT_VERSION = 1
MODEL_SETTINGS = ("preset", "bias", "scale")
WEIGHT_KEYS = ("model", "ema")
_NAME = re.compile(r"iter_(\d{7,})\.pt")


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


def iteration_files(folder: str | Path) -> list[Path]:
    """`iter_NNNNNNN.pt` files in `folder`, newest iteration first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))]
    return [path for _, path in sorted(found, reverse=True)]


def latest_valid_checkpoint(folder: str | Path) -> tuple[Path | None, dict | None, list[str]]:
    """The newest checkpoint in `folder` that loads and checks out -> (path, state, skipped reasons).

    The folder itself is scanned, newest iteration first, so a kill at any moment leaves nothing to
    repair; files that fail to load (a kill mid-write) are skipped with their reason. (None, None,
    reasons) when no file is valid.
    """
    skipped = []
    for path in iteration_files(folder):
        try:
            return path, load_checkpoint(path), skipped
        except (CheckpointError, OSError) as err:
            skipped.append(str(err))
    return None, None, skipped


def _check_content(path: Path, state: dict) -> None:
    settings = state.get("model_config")
    if not isinstance(settings, dict) or any(key not in settings for key in MODEL_SETTINGS):
        raise CheckpointError(
            f"checkpoint {path} lacks its model settings (model_config with "
            f"{', '.join(MODEL_SETTINGS)}); it cannot rebuild its network"
        )
    present = [key for key in WEIGHT_KEYS if key in state]
    if not present:
        raise CheckpointError(f"checkpoint {path} holds no weights (neither of {', '.join(WEIGHT_KEYS)})")
    for key in present:
        weights = state[key]
        if not isinstance(weights, dict):
            raise CheckpointError(f"checkpoint {path}: {key} is {type(weights).__name__}, not a state dict")
        for name, tensor in weights.items():
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"checkpoint {path}: {key}.{name} is {type(tensor).__name__}, not a tensor")
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(f"checkpoint {path}: {key}.{name} holds NaN or infinite weights")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a suite checkpoint with `weights_only=True` after checking the archive's integrity.

    Raises FileNotFoundError for a missing file and CheckpointError, naming the file, for one that is
    truncated or corrupted, carries a pickled Python object, is not a suite checkpoint, lacks its model
    settings or holds non-finite weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt: it is not a torch zip archive ({path.stat().st_size} bytes)"
        )
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
        raise CheckpointError(
            f"checkpoint {path} has format version {state.get('format_version')!r}; "
            f"this suite reads version {FORMAT_VERSION}"
        )
    _check_content(path, state)
    return state
