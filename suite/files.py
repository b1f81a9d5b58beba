"""Atomic file writes and checksums shared by every part of the suite (no torch import).

A reader (or a resumed run) never sees half a file: each write goes to a hidden temp file in the
target's folder, is fsynced and renamed over the target; a killed run leaves only `.NAME.*.tmp`,
which `remove_stale_temps` clears on the next run. A target that exists and is not a regular file
(a device node, FIFO, symlink or folder) is refused: renaming over it would replace it.

A re-run that starts over (`clear_for_rerun`) loses no earlier output either: a file git holds (in HEAD
and unchanged in the work tree, e.g. the committed results of a fresh clone) is deleted, since git keeps
that version and the new file then shows as modified, not as a copy beside it; anything else is moved
to `replaced/<UTC time>/` in the same folder. Outside a git work tree, or where git is absent, that is
every file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

TEMP_SUFFIX = ".tmp"
REPLACED = "replaced"
SAFETENSORS_SUFFIX = ".safetensors"  # a checkpoint of tensors only (no pickle), read with the safetensors package


class NotARegularFileError(OSError):
    """An atomic write whose target exists and is not a regular file."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def found_instead(path: str | Path) -> str | None:
    """What is at `path`, for a message about a path that is not what a reader expected: None where nothing is
    (then "not found" is the truth); else "a file", "a folder", "a symlink to X, which does not exist", "a FIFO",
    ... (links followed)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return f"a symlink to {os.readlink(path)}, which does not exist" if path.is_symlink() else None
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    return "a file" if stat.S_ISREG(mode) else _kind(mode)


def not_found_message(label: str, path: str | Path, expected: str) -> str:
    """ "{label} not found: {path}" where nothing is there, else "{label} {path} is {what is}, not {expected}"."""
    found = found_instead(path)
    return f"{label} not found: {path}" if found is None else f"{label} {path} is {found}, not {expected}"


def check_regular_target(path: str | Path) -> Path:
    """`path` if it is absent or a regular file; else NotARegularFileError naming it and what it is."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(mode):
        raise NotARegularFileError(
            f"refusing to write {path}: it is {_kind(mode)}, not a regular file (an atomic write would replace it)"
        )
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; best effort where the platform cannot open folders."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Call `write(handle)` on a temp file beside `path`, then rename it over `path`."""
    path = check_regular_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; results are meant to be shared
        check_regular_target(path)  # it may have been replaced while we wrote
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json_atomic(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Indented JSON; NaN and infinities are refused rather than written as invalid JSON."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def remove_stale_temps(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Delete the `.NAME.*.tmp` files that killed atomic writes left in `folder`; -> what was removed.

    Call it only while no other process writes there (e.g. holding the run folder's lock).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".*{TEMP_SUFFIX}"
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    removed = []
    for path in sorted(found):
        if path.is_file() and not path.is_symlink() and path.name.count(".") >= 3:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git_paths(folder: Path, *args: str) -> set[Path] | None:
    """The NUL-separated paths a git command run in `folder` prints; None where git is absent or fails."""
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return {Path(os.fsdecode(name)) for name in done.stdout.split(b"\0") if name}


def files_in_head(folder: str | Path) -> set[Path]:
    """Paths (relative to `folder`) of the files under it in git's HEAD, whatever the work tree holds now.
    Empty outside a git work tree, or where git is absent."""
    return _git_paths(Path(folder), "ls-tree", "-r", "-z", "--name-only", "HEAD", "--", ".") or set()


def files_git_holds(folder: str | Path) -> set[Path]:
    """Paths (relative to `folder`) of the files under it that are in git's HEAD and unchanged in the work
    tree: deleting one loses nothing, `git checkout` brings it back. Empty outside a git work tree."""
    changed = _git_paths(Path(folder), "diff", "--name-only", "-z", "--relative", "--no-renames", "HEAD", "--", ".")
    return files_in_head(folder) - changed if changed is not None else set()


def take_committed_name(folder: str | Path, written: set, is_kind: Callable[[str], bool]) -> None:
    """A fresh run wrote `written` (file names in `folder`) where git's HEAD holds one file of the same kind
    (`is_kind(name)`) directly in `folder`, cleared for this run: give the one new file that name, so that git
    shows the committed file modified instead of a deleted one beside a new one. Anything else stays as is."""
    folder = Path(folder)
    committed = [path for path in files_in_head(folder) if is_kind(path.name) and path.parent == Path()]
    # A file of that name still here was not cleared for this run (it is not ours to replace).
    if len(written) == 1 and len(committed) == 1 and not (folder / committed[0]).exists():
        os.replace(folder / next(iter(written)), folder / committed[0])


def clear_for_rerun(folder: str | Path, names: Iterable[str]) -> Path | None:
    """Clear the entries `names` of `folder` (files or folders) for a run that starts over -> the
    `folder/replaced/<UTC time>/` that received what git does not hold, or None when git holds it all.

    Each file git holds (`files_git_holds`) is deleted; every other file, and a whole subfolder holding
    none that git holds, is moved to the same relative path under `replaced/<UTC time>/`. All or nothing:
    the moves come first, and a move that fails puts the earlier ones back and removes the folders it made
    (the error names both paths); the files git holds are deleted only once every move is done.
    """
    folder = Path(folder)
    held = files_git_holds(folder)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = folder / REPLACED / stamp
    moves: list[Path] = []  # relative paths to move aside
    deletions: list[Path] = []  # relative paths of files git holds
    emptied: list[Path] = []  # folders left empty once their entries are gone (deepest first)

    def plan(relative: Path) -> None:
        path = folder / relative
        if path.is_dir() and not path.is_symlink() and any(relative in held_path.parents for held_path in held):
            for child in sorted(path.iterdir()):
                plan(relative / child.name)
            emptied.append(relative)
        elif relative in held:
            deletions.append(relative)
        else:
            moves.append(relative)

    for name in sorted(names):
        if (folder / name).exists() or (folder / name).is_symlink():
            plan(Path(name))
    done: list[Path] = []
    try:
        for relative in moves:
            (aside / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).rename(aside / relative)
            done.append(relative)
    except OSError as err:
        for moved in reversed(done):
            (aside / moved).rename(folder / moved)
        _remove_empty_folders(aside, stop=folder)
        raise OSError(
            f"could not move {folder / relative} to {aside / relative} ({err.strerror or err}); the earlier "
            f"run in {folder} is left as it was"
        ) from None
    for relative in deletions:
        (folder / relative).unlink()
    for relative in emptied:
        (folder / relative).rmdir()
    return aside if moves else None


def _remove_empty_folders(path: Path, stop: Path) -> None:
    """Remove `path`'s empty folders, bottom up, then its empty parents up to (not including) `stop`."""
    if path.is_dir():
        for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if child.is_dir() and not any(child.iterdir()):
                child.rmdir()
    while path != stop and path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        path = path.parent
