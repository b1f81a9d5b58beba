"""Peak memory of the measured steps: the CUDA allocator's peak on GPU, peak RSS growth on CPU.

CPU: the resident set's high-water mark (`VmHWM`) is reset to the current RSS through
`/proc/self/clear_refs` (Linux >= 4.0) right before the first measured step, and the growth is
`VmHWM - RSS at reset`: weights and inputs are excluded, gradients, optimizer state and activations
included. Sweeps run each point in a fresh worker process, so allocator caches of earlier points
cannot hide memory. Where the reset is unavailable the process-lifetime `ru_maxrss` is used
instead (an upper bound). The row's `memory_method` names the method and the kind of process.
"""

from __future__ import annotations

import resource
from pathlib import Path

import torch

PROC_STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
MIB = 2**20
PROCESS_NOTES = {
    "worker": "fresh process per point",
    "single": "one point in this process",
    "shared": "several points in one process: allocator caches of earlier points can hide memory",
}


def _status_kib(field: str) -> int | None:
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """Current resident set size of this process."""
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import psutil  # portable fallback where /proc is absent

    return psutil.Process().memory_info().rss


class PeakMemory:
    """Measure peak memory from `start()` to `peak_mib()` on one device."""

    def __init__(self, device: torch.device, process: str) -> None:
        self.device = device
        self.process = process  # one of PROCESS_NOTES: how fresh the allocator and the RSS are
        self.baseline = 0
        self.method = ""

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
            self.method = "cuda max_memory_allocated (absolute: weights, gradients, optimizer state, activations)"
            return
        self.baseline = rss_bytes()
        where = PROCESS_NOTES[self.process]
        try:
            CLEAR_REFS.write_text("5")  # reset VmHWM to the current RSS
            self.method = f"VmHWM growth over RSS at the first step ({where})"
        except OSError:
            self.method = f"ru_maxrss growth over RSS at the first step ({where}; lifetime peak: upper bound)"

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / MIB
        if self.method.startswith("VmHWM"):
            peak = (_status_kib("VmHWM") or 0) * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        return max(peak - self.baseline, 0) / MIB

    def baseline_mib(self) -> float:
        return self.baseline / MIB
