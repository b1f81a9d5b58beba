"""SR transformer models: window attention with an interchangeable positional bias (the registry
`suite.models.biases`), the network and its presets.

Names are imported on first use (PEP 562), so `suite.models.biases` (the bias registry, which imports no
torch) serves the command line and the report without loading torch.
"""

import importlib

_EXPORTS = {
    "suite.models.attention": ("WindowAttention", "apply_precision", "explain_backend", "resolve_backend"),
    "suite.models.options": ("BACKENDS", "PRECISIONS", "ModelConfigError", "check_pair", "check_precision"),
    "suite.models.biases": (
        "BIASES",
        "FACTORED_BIASES",
        "FIXED_WINDOW_BIASES",
        "FLASH_BIASES",
        "REGISTRY",
        "BiasSpec",
        "bias_spec",
    ),
    "suite.models.network": ("SRTransformer",),
    "suite.models.presets": ("OFFICIAL_NAMES", "PRESETS", "build_model", "count_parameters", "resolve_model_config"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'suite.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
