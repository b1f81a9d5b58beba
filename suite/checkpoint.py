"""The suite's one checkpoint format: atomic save, safe load, newest-valid lookup.

A checkpoint is a `torch.save`d dict of tensors and plain values only, so it loads with
`torch.load(weights_only=True)`: loading never runs code. Before unpickling, the zip archive's CRC32s
are checked (torch itself reads a corrupted tensor record without complaint), so a truncated or
corrupted file fails with an error naming it instead of yielding wrong weights. A loaded checkpoint
must carry its model settings (`model_config`) and finite weights: NaN weights are refused here, not
discovered as a 6 dB score. Its metadata is checked too (`check_metadata`): a field of the wrong type (a
`config` that is a string, an `iteration` that is None) is one line naming the file and the field, for every
reader, instead of a traceback wherever the field is first used.

Every checkpoint the suite reads (this format and the BasicSR files of the official releases, through
`suite.models.official.read_basicsr`) goes through the same two checks before a weight is used:
`load_torch_archive` (a torch zip archive whose members torch stored uncompressed, within
MAX_ARCHIVE_BYTES, every CRC32 correct, no pickled object) and `check_weights` (string keys, tensors of a
real dtype whose shape and strides stay inside their stored bytes, finite floating-point values).

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
from suite.overrides import short_repr

FORMAT = "suite-train-checkpoint"
FORMAT_VERSION = 1
MODEL_SETTINGS = ("preset", "bias", "scale")
WEIGHT_KEYS = ("model", "ema")
# What a checkpoint written during training holds besides its weights, with its type: what `--resume`
# restores. A converted checkpoint (`suite convert`) has weights only.
TRAINING_STATE = {
    "iteration": int,
    "ema_updates": int,
    "optimizer": dict,
    "scheduler": dict,
    "rng": list,
    "sampler": dict,
    "config": dict,
    "timing": dict,
    "provenance": dict,
}
# The largest checkpoint the suite reads (XL+ with its optimizer state is well under 1 GiB): a bound on
# what a file can make the loader hold in memory.
MAX_ARCHIVE_BYTES = 8 << 30
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
    """The newest checkpoint in `folder` that loads, checks out and holds the training state to resume from
    -> (path, state, skipped reasons).

    The folder itself is scanned, newest iteration first, so a kill at any moment leaves nothing to
    repair; files that fail to load (a kill mid-write) or lack the training state (a converted checkpoint
    copied in) are skipped with their reason. (None, None, reasons) when no file is valid.
    """
    skipped = []
    for path in iteration_files(folder):
        try:
            state = load_checkpoint(path)
            check_training_state(path, state)
            return path, state, skipped
        except (CheckpointError, OSError) as err:
            skipped.append(str(err))
    return None, None, skipped


def check_training_state(path: Path, state: dict) -> None:
    """Refuse a checkpoint (already through `check_metadata`) without TRAINING_STATE: both weight dicts, each
    field, and the entries of `sampler` and `timing` that a resume reads."""
    problems = [key for key in ("model", "ema", *TRAINING_STATE) if key not in state]
    if problems:
        raise CheckpointError(
            f"checkpoint {path} lacks the training state to resume from: {', '.join(problems)} "
            "(a converted or hand-made checkpoint holds weights only)"
        )
    for field, value, expected, fits in (
        ("sampler.samples_per_epoch", state["sampler"].get("samples_per_epoch"), "an integer >= 1", _is_count),
        ("timing.elapsed_s", state["timing"].get("elapsed_s"), "a finite number >= 0", _is_duration),
        ("timing.step_times_s", state["timing"].get("step_times_s"), "a 1-d float64 tensor", _is_step_times),
    ):
        if not fits(value):
            raise _field_error(path, field, value, expected)


def _is_count(value: object, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_duration(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf")


def _is_step_times(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() == 1 and value.dtype == torch.float64


def _field_error(path: Path, field: str, value: object, expected: str) -> CheckpointError:
    shown = "None" if value is None else f"{type(value).__name__} {short_repr(value)}"
    return CheckpointError(f"checkpoint {path}: {field} is {shown}, not {expected}")


def _non_string_key(value: object, where: str) -> str | None:
    """The dotted place of the first dict key that is not a string inside `value` (dicts and lists), or None."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {short_repr(key)} of type {type(key).__name__}"
            found = _non_string_key(item, f"{where}.{key}")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _non_string_key(item, f"{where}[{index}]")
            if found:
                return found
    return None


def check_metadata(path: Path, state: dict) -> None:
    """Refuse a checkpoint whose metadata a reader would trip over: `model_config` that does not resolve to a
    network (string keys, preset and bias strings, each field as `resolve_model_config` validates it), and each
    TRAINING_STATE field, `config_hash` and `validation` of its type where present (a converted checkpoint has
    none of them). The CheckpointError names the file and the field."""
    settings = state.get("model_config")
    if settings is None or (isinstance(settings, dict) and any(key not in settings for key in MODEL_SETTINGS)):
        raise CheckpointError(
            f"checkpoint {path} lacks its model settings (model_config with "
            f"{', '.join(MODEL_SETTINGS)}); it cannot rebuild its network"
        )
    if not isinstance(settings, dict):
        raise _field_error(path, "model_config", settings, "a dict of model settings")
    bad_key = _non_string_key(settings, "model_config")
    if bad_key:
        raise CheckpointError(f"checkpoint {path}: {bad_key}, not str")
    for key in ("preset", "bias"):
        if not isinstance(settings[key], str):
            raise _field_error(path, f"model_config.{key}", settings[key], "a string")
    for key, kind in TRAINING_STATE.items():
        if key not in state:
            continue
        value = state[key]
        if kind is int and not _is_count(value, minimum=0):
            raise _field_error(path, key, value, "an integer >= 0")
        if kind is not int and not isinstance(value, kind):
            raise _field_error(path, key, value, f"a {kind.__name__}")
        # The recipe is compared field by field on resume; optimizer state is keyed by parameter index.
        bad_key = _non_string_key(value, key) if key == "config" else None
        if bad_key:
            raise CheckpointError(f"checkpoint {path}: {bad_key}, not str")
    name = state.get("config", {}).get("name")
    if name is not None and not isinstance(name, str):
        raise _field_error(path, "config.name", name, "a string")
    if state.get("config_hash") is not None and not isinstance(state["config_hash"], str):
        raise _field_error(path, "config_hash", state["config_hash"], "a string")
    if state.get("validation") is not None and not isinstance(state["validation"], dict):
        raise _field_error(path, "validation", state["validation"], "a dict (or None)")


def check_weights(path: Path, label: str, weights: object, error: type[Exception] = CheckpointError) -> None:
    """Refuse a state dict that is not {str: tensor} of real values, finite where floating point, each tensor
    inside its stored bytes (a stride-0 or out-of-bounds view could make a check allocate gigabytes).
    `label` names the dict in the message (e.g. `ema`, `params_ema`); `error` is the exception type raised."""
    if not isinstance(weights, dict) or not weights:
        kind = "an empty dict" if isinstance(weights, dict) else type(weights).__name__
        raise error(f"checkpoint {path}: {label} is {kind}, not a state dict of tensors")
    for name, tensor in weights.items():
        if not isinstance(name, str):
            raise error(f"checkpoint {path}: {label} has a key {name!r} of type {type(name).__name__}, not str")
        where = f"{label}.{name}"
        if not isinstance(tensor, torch.Tensor):
            raise error(f"checkpoint {path}: {where} is {type(tensor).__name__}, not a tensor")
        if tensor.is_complex() or tensor.is_quantized or tensor.layout != torch.strided:
            raise error(f"checkpoint {path}: {where} is a {tensor.dtype} {tensor.layout} tensor, not real-valued")
        stored = tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1)
        if tensor.numel():
            last = tensor.storage_offset() + sum(
                (size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride())
            )
            if tensor.numel() > stored or last >= stored or min(tensor.stride(), default=0) < 0:
                raise error(
                    f"checkpoint {path}: {where} of shape {tuple(tensor.shape)} and strides {tensor.stride()} "
                    f"does not fit its {stored} stored values (a crafted view)"
                )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise error(f"checkpoint {path}: {where} holds NaN or infinite weights")


def _check_content(path: Path, state: dict) -> None:
    check_metadata(path, state)
    present = [key for key in WEIGHT_KEYS if key in state]
    if not present:
        raise CheckpointError(f"checkpoint {path} holds no weights (neither of {', '.join(WEIGHT_KEYS)})")
    for key in present:
        check_weights(path, key, state[key])


def load_torch_archive(path: str | Path, error: type[Exception] = CheckpointError) -> object:
    """`torch.load(weights_only=True)` of `path` after checking its archive: a zip whose members are stored
    uncompressed (as torch writes them) and add up to at most MAX_ARCHIVE_BYTES, each CRC32 correct.
    FileNotFoundError for a missing file; `error` (CheckpointError by default), naming the file, for
    anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise error(
            f"checkpoint {path} is truncated or corrupt, or in torch's legacy format: it is not a torch zip archive "
            f"({path.stat().st_size} bytes); a legacy file can be re-saved with a current torch.save"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            packed = [m.filename for m in members if m.compress_type != zipfile.ZIP_STORED]
            if packed:
                raise error(
                    f"checkpoint {path}: archive member {packed[0]} is compressed; torch stores its members "
                    "uncompressed, so this file was not written by torch.save"
                )
            total = sum(m.file_size for m in members)
            if total > MAX_ARCHIVE_BYTES:
                raise error(f"checkpoint {path} holds {total} bytes, more than the {MAX_ARCHIVE_BYTES} the suite reads")
            bad_member = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise error(f"checkpoint {path} is truncated or corrupt: {err}") from None
    if bad_member is not None:
        raise error(f"checkpoint {path} is corrupt: archive member {bad_member} fails its CRC32 check")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "GLOBAL" in text or "global" in text:
            detail = next((line.strip() for line in text.splitlines() if "Unsupported global" in line), "")
            raise error(
                f"checkpoint {path} carries a pickled Python object and is refused: loading it could run "
                f"arbitrary code (checkpoints hold only tensors and plain values). {detail}".rstrip()
            ) from None
        raise error(f"checkpoint {path} is corrupt: {text.splitlines()[0] if text else err!r}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise error(f"checkpoint {path} is truncated or corrupt: {str(err).splitlines()[0]}") from None


def load_checkpoint(path: str | Path) -> dict:
    """Load a suite checkpoint to the CPU: `load_torch_archive`, then `check_weights` on each weight dict.

    Raises FileNotFoundError for a missing file and CheckpointError, naming the file, for one that is
    truncated or corrupted, carries a pickled Python object, is not a suite checkpoint, lacks its model
    settings, holds metadata of the wrong type (`check_metadata`) or weights that are not finite real tensors.
    """
    path = Path(path)
    state = load_torch_archive(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a suite training checkpoint (no format tag {FORMAT!r})")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {state.get('format_version')!r}; "
            f"this suite reads version {FORMAT_VERSION}"
        )
    _check_content(path, state)
    return state
