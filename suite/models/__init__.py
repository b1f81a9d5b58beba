"""SR transformer models: window attention with RPB / RIB / no positional bias, the network and its presets."""

from suite.models.attention import BACKENDS, BIASES, WindowAttention, check_pair, resolve_backend
from suite.models.network import SRTransformer
from suite.models.presets import PRESETS, build_model, count_parameters

__all__ = [
    "BACKENDS", "BIASES", "PRESETS", "SRTransformer", "WindowAttention",
    "build_model", "check_pair", "count_parameters", "resolve_backend",
]
