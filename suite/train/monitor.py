"""What a training run reports while it runs: `train_log.csv`, TensorBoard scalars and a progress
display (a tqdm bar with it/s, loss and ETA on a terminal; one line per log interval otherwise).

On resume, rows and events past the resumed iteration (written by the killed run) are dropped, since
the resumed run recomputes those iterations.

TensorBoard names each events file by its start time, host and pid. A fresh run that replaces a
committed run takes the committed events file's name once its own file is closed, so that git shows
the re-run as a change to that file, not as a new file beside a deleted one (the committed name's
older time still sorts it before any later resumed attempt's file, the order TensorBoard reads them in).
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path

from suite.files import atomic_write, take_committed_name

CSV_FIELDS = ("iteration", "loss", "lr", "step_time_s", "val_psnr", "val_ssim")


def _cell(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return repr(float(value))  # shortest round-trip text of the float


class TrainLog:
    """`train_log.csv` rows (iteration, loss, lr, step_time_s, val_psnr, val_ssim), flushed per row."""

    def __init__(self, path: str | Path, resume_at: int | None = None) -> None:
        self.path = Path(path)
        kept: list[dict] = []
        if resume_at is not None and self.path.is_file():
            with open(self.path, newline="") as handle:
                kept = [
                    row
                    for row in csv.DictReader(handle)
                    if row.get("iteration", "").isdigit() and int(row["iteration"]) <= resume_at
                ]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: row.get(key, "") for key in CSV_FIELDS} for row in kept)
        atomic_write(self.path, lambda handle: handle.write(buffer.getvalue().encode()))
        self._handle = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._handle, fieldnames=CSV_FIELDS, lineterminator="\n")

    def write(
        self,
        iteration: int,
        loss: float | None = None,
        lr: float | None = None,
        step_time_s: float | None = None,
        val_psnr: float | None = None,
        val_ssim: float | None = None,
    ) -> None:
        self._writer.writerow(
            {
                "iteration": iteration,
                "loss": _cell(loss),
                "lr": _cell(lr),
                "step_time_s": _cell(step_time_s),
                "val_psnr": _cell(val_psnr),
                "val_ssim": _cell(val_ssim),
            }
        )
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def _events_files(folder: Path) -> set[str]:
    return {path.name for path in folder.glob("*tfevents*")} if folder.is_dir() else set()


class Scalars:
    """TensorBoard scalars under `folder`; events after `resume_at` from an earlier attempt are purged.

    A fresh run's (`resume_at` None) events file takes the name of the one events file git has for
    `folder`, if any, when it closes.
    """

    def __init__(self, folder: str | Path, resume_at: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self._fresh = resume_at is None
        self._earlier = _events_files(self.folder)
        purge = resume_at + 1 if resume_at is not None else None
        self._writer = SummaryWriter(log_dir=str(folder), purge_step=purge)

    def add(self, iteration: int, **values: float | None) -> None:
        for tag, value in values.items():
            if value is not None:
                self._writer.add_scalar(tag.replace("__", "/"), value, iteration)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()
        if not self._fresh:
            return
        take_committed_name(self.folder, _events_files(self.folder) - self._earlier, lambda name: "tfevents" in name)


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Iterations per second, loss and ETA: a tqdm bar on a terminal, else a line per `every` iterations."""

    def __init__(self, total: int, start: int, every: int, name: str, enabled: bool = True) -> None:
        self.total, self.every, self.name, self.enabled = total, every, name, enabled
        self._bar = None
        self._start_iteration, self._start_time = start, time.perf_counter()
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, desc=name, unit="it", dynamic_ncols=True)

    def update(self, iteration: int, loss: float, lr: float) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(1)
            if iteration % self.every == 0 or iteration == self.total:
                self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            return
        if iteration % self.every and iteration != self.total:
            return
        done = iteration - self._start_iteration
        rate = done / max(1e-9, time.perf_counter() - self._start_time)
        eta = (self.total - iteration) / rate if rate > 0 else float("inf")
        print(
            f"{self.name}: iter {iteration}/{self.total} loss {loss:.4f} lr {lr:.3e} {rate:.2f} it/s ETA {_clock(eta)}",
            file=sys.stderr,
            flush=True,
        )

    def note(self, message: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
