"""Precision of a profiled step, through the model's own switch (`suite.models.apply_precision`):
fp32, autocast-bf16 (the forward under torch.autocast) or attention-bf16 (the official setting: only
q, k, v and RIB's factors in bfloat16 inside attention)."""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
from torch import nn

from suite.models import PRECISIONS, apply_precision, check_precision

__all__ = ["PRECISIONS", "check_precision", "compute_dtype", "precision_scope"]


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype attention kernels see under `precision` (what `auto` backends resolve for)."""
    return torch.float32 if check_precision(precision) == "fp32" else torch.bfloat16


def precision_scope(model: nn.Module, precision: str, device: torch.device) -> Callable[[], ContextManager]:
    """Apply `precision` to `model` (a network or one layer); returns the factory of the context its
    forward runs in (autocast for autocast-bf16, nothing otherwise)."""
    dtype = apply_precision(model, precision)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)
