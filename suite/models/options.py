"""The model options that need no torch: attention backends, precisions, the pair check and the error a
configuration that cannot be built raises. Kept apart from `suite.models.attention` so that the preset and
recipe validators (`suite.models.presets`, `suite.train.config`) run without importing torch, e.g. in the
workflow's dry run."""

from __future__ import annotations

from suite.models.biases import bias_spec
from suite.overrides import short_repr

BACKENDS = ("auto", "math", "sdpa", "flex", "flash")

# `attention-bf16` is the official setting: network in float32, only q, k, v and RIB's factors in
# bfloat16 inside attention. `autocast-bf16` runs the whole network under torch.autocast (the caller's).
PRECISIONS = ("fp32", "autocast-bf16", "attention-bf16")


class ModelConfigError(ValueError):
    """A model configuration that cannot be built; the message names the field and its value."""


def check_precision(precision: object) -> str:
    """Return `precision` if it is one of PRECISIONS, else raise ModelConfigError naming it."""
    if precision not in PRECISIONS:
        raise ModelConfigError(f"precision = {short_repr(precision)} must be one of {', '.join(PRECISIONS)}")
    return precision  # type: ignore[return-value]


def check_pair(bias: str, backend: str) -> None:
    """Raise ValueError for an unknown bias or backend, or a pair that cannot run."""
    spec = bias_spec(bias)
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if not spec.flash and backend == "flash":
        raise ValueError(
            f"bias {bias!r} with backend 'flash' is invalid: FlashAttention kernels accept no additive "
            f"N x N bias, which {spec.label} needs; use backend 'sdpa', 'math' or 'flex', or bias 'rib'"
        )
