"""Learning-rate schedules: linear warm-up, then step decay at milestones or cosine decay to zero.

`LRFactor` is a picklable callable for `torch.optim.lr_scheduler.LambdaLR`, whose state_dict then
holds only plain numbers (so checkpoints load with `weights_only=True`).
"""

from __future__ import annotations

import bisect
import math

import torch
from torch.optim.lr_scheduler import LambdaLR


class LRFactor:
    """Multiplier of the base lr for the 0-based iteration `step` (the step about to be taken)."""

    def __init__(self, kind: str, iterations: int, warmup: int, milestones: list[int], gamma: float) -> None:
        if kind not in ("step", "cosine"):
            raise ValueError(f"unknown schedule kind {kind!r}; expected step or cosine")
        self.kind = kind
        self.iterations = iterations
        self.warmup = warmup
        self.milestones = list(milestones)
        self.gamma = gamma

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup  # reaches the full lr on the last warm-up step
        if self.kind == "step":
            # Iteration numbers are 1-based in the recipe: "x0.5 at 250k" applies from iteration 250k on.
            return self.gamma ** bisect.bisect_right(self.milestones, step + 1)
        progress = (step - self.warmup) / max(1, self.iterations - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: dict) -> LambdaLR:
    """A LambdaLR for the `schedule` section of a recipe; call `.step()` once per iteration."""
    factor = LRFactor(
        schedule["kind"], schedule["iterations"], schedule["warmup"], schedule["milestones"], schedule["gamma"]
    )
    return LambdaLR(optimizer, factor)
