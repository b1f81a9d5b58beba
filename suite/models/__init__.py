"""SR transformer models: window attention with RPB / RIB / low-rank / no positional bias, the network and its
presets."""

from suite.models.attention import (
    BACKENDS,
    BIASES,
    FACTORED_BIASES,
    FIXED_WINDOW_BIASES,
    PRECISIONS,
    ModelConfigError,
    WindowAttention,
    apply_precision,
    check_pair,
    check_precision,
    explain_backend,
    resolve_backend,
)
from suite.models.network import SRTransformer
from suite.models.presets import (
    OFFICIAL_NAMES,
    PRESETS,
    build_model,
    count_parameters,
    resolve_model_config,
)

__all__ = [
    "BACKENDS", "BIASES", "FACTORED_BIASES", "FIXED_WINDOW_BIASES", "OFFICIAL_NAMES", "PRECISIONS", "PRESETS",
    "ModelConfigError", "SRTransformer", "WindowAttention", "apply_precision", "build_model", "check_pair", "check_precision", "count_parameters",
    "explain_backend", "resolve_backend", "resolve_model_config",
]
