"""The run folder: a lock naming its holder, and what a new `suite train` does with earlier outputs.

Three start modes, so that no run's outputs are ever overwritten without being asked to:
- `new` (no flag): an `out_dir` that already holds run outputs is an error naming it.
- `resume` (`--resume`): continue from the newest checkpoint that loads and checks out, found by
  scanning `checkpoints/`; an error naming the folder when outputs exist but no checkpoint is valid,
  or the recipe differs.
- `resume-or-restart` (`--resume-or-restart`, the workflow's): give back the complete run of the same
  recipe (`finished_run`: final.pt and its summary.json, e.g. the rule run again without deleting them);
  resume an unfinished run of the same recipe; otherwise (recipe changed, run complete but its final.pt gone
  = a forced re-run, Snakemake deleting final.pt and keeping summary.json, or no valid checkpoint) clear the
  earlier run with `suite.files.clear_for_rerun` and train afresh: the files git holds (committed results)
  are replaced in place, the rest (the old summary.json among them) is moved to `out_dir/replaced/<UTC time>/`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
from pathlib import Path
from typing import Callable

from suite.checkpoint import CheckpointError, check_training_state, latest_valid_checkpoint, load_checkpoint
from suite.files import REPLACED, clear_for_rerun, remove_stale_temps
from suite.train.config import resume_differences

MODES = ("new", "resume", "resume-or-restart")
LOCK_NAME = ".lock"
# What a training run writes into its folder: any of these means the folder holds a run.
RUN_OUTPUTS = ("checkpoints", "final.pt", "summary.json", "train_log.csv", "tb")


class RunFolderError(RuntimeError):
    """A run folder that cannot be used as asked; the message names the folder."""


class RunLock:
    """An exclusive lock on a run folder (flock on `out_dir/.lock`, released when the process ends).

    The lock file holds the holder's pid, host, start time and command, so the refusal names it.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown holder"
            os.close(fd)
            raise RunFolderError(
                f"out_dir {self.folder} is in use by another training ({holder}); lock file {self.path}"
            ) from None
        now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        text = f"pid {os.getpid()} on {socket.gethostname()} since {now}: {' '.join(sys.argv)[:300]}\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def existing_outputs(out_dir: Path) -> list[str]:
    return [name for name in RUN_OUTPUTS if (out_dir / name).exists() or (out_dir / name).is_symlink()]


def finished_run(recipe: dict, mode: str, samples_per_epoch: int, note: Callable[[str], None]) -> Path | None:
    """out_dir/final.pt when `mode` is resume-or-restart and out_dir holds the complete run of this recipe, else
    None (restore_point decides). Complete: final.pt loads with its training state at schedule.iterations,
    trained with this recipe (no difference but RESUMABLE_CHANGES) on as many samples per epoch, and
    summary.json is its summary (name, iterations, config_hash). Starting such a run again gives it back
    untouched instead of training it a second time. Call it holding the folder's RunLock."""
    out_dir = Path(recipe["out_dir"])
    final, summary_path = out_dir / "final.pt", out_dir / "summary.json"
    if mode != "resume-or-restart" or not final.is_file() or not summary_path.is_file():
        return None
    try:
        state = load_checkpoint(final)
        check_training_state(final, state)
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (CheckpointError, OSError, ValueError):
        return None  # not a complete run: restore_point names what it finds
    total = recipe["schedule"]["iterations"]
    if (
        state["iteration"] != total
        or state["sampler"]["samples_per_epoch"] != samples_per_epoch
        or resume_differences(state["config"], recipe)
        or not isinstance(summary, dict)
        or (summary.get("name"), summary.get("iterations"), summary.get("config_hash"))
        != (state["config"].get("name"), total, state.get("config_hash"))
    ):
        return None
    note(
        f"{recipe['name']}: {out_dir} already holds the complete run of this recipe ({final}, {summary_path}); "
        "nothing to train"
    )
    return final


def _newest_checkpoint_aside(out_dir: Path) -> Path | None:
    """The newest valid checkpoint under `out_dir/replaced/*/checkpoints`, or None."""
    for earlier in sorted((out_dir / REPLACED).glob("*/checkpoints"), reverse=True):
        path, _, _ = latest_valid_checkpoint(earlier)
        if path is not None:
            return path
    return None


def restore_point(
    recipe: dict, mode: str, samples_per_epoch: int, note: Callable[[str], None]
) -> tuple[Path | None, dict | None]:
    """Clear stale temp files, apply `mode` to `out_dir` -> (checkpoint path, its state) or (None, None).

    Call it holding the folder's RunLock.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    out_dir = Path(recipe["out_dir"])
    for path in remove_stale_temps(out_dir):
        note(f"{recipe['name']}: removed {path}, left by a write that was killed")
    outputs = existing_outputs(out_dir)
    if mode == "new":
        if outputs:
            raise RunFolderError(
                f"out_dir {out_dir} already holds a run ({', '.join(outputs)}); pass --resume to "
                f"continue it, --resume-or-restart to continue it or start over (the earlier "
                f"run is moved aside, or replaced in place where git holds it), or choose "
                f"another out_dir"
            )
        return None, None
    ckpt_dir = out_dir / "checkpoints"
    path, state, skipped = latest_valid_checkpoint(ckpt_dir)
    for reason in skipped:
        note(f"{recipe['name']}: skipped {reason}")
    problem = None
    if state is None:
        problem = f"{ckpt_dir} holds no valid checkpoint" if outputs else None
        aside = _newest_checkpoint_aside(out_dir) if mode == "resume" else None
        if aside is not None:
            problem = (
                f"{ckpt_dir} holds no valid checkpoint; the newest valid one is {aside}, moved aside when a "
                f"re-run started over (move its run folder's contents back to resume from it)"
            )
    else:
        differences = resume_differences(state["config"], recipe)
        if state["sampler"]["samples_per_epoch"] != samples_per_epoch:
            differences.append(
                f"samples per epoch of data.train: {state['sampler']['samples_per_epoch']} -> {samples_per_epoch}"
            )
        if differences:
            problem = f"the recipe differs from the one {path} was trained with: " + "; ".join(differences)
    if mode == "resume":
        if problem is not None:
            raise RunFolderError(f"--resume: {problem} (out_dir {out_dir}); use --resume-or-restart to start over")
        return path, state
    if problem is None and state is not None and int(state["iteration"]) >= recipe["schedule"]["iterations"]:
        problem = f"the run in {out_dir} is complete (a forced re-run trains again)"
    if problem is None and state is not None:
        return path, state
    if outputs:
        earlier = [entry.name for entry in out_dir.iterdir() if entry.name not in (LOCK_NAME, REPLACED)]
        aside = clear_for_rerun(out_dir, earlier)
        where = (
            f"moved the earlier run (all but the files git holds) to {aside}"
            if aside
            else "git holds the earlier run, replacing it in place"
        )
        note(f"{recipe['name']}: {problem}; {where} and training afresh")
    return None, None
