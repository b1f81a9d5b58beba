"""Image-quality metrics of the SR protocol (PSNR/SSIM on the BT.601 Y channel, border = scale, via pyiqa).

The protocol names import without torch; `SRMetrics` loads torch on first use.
"""

from suite.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOL_DESCRIPTIONS, PROTOCOLS

__all__ = ["DEFAULT_PROTOCOL", "PROTOCOLS", "PROTOCOL_DESCRIPTIONS", "SRMetrics"]


def __getattr__(name: str):
    if name == "SRMetrics":
        from suite.metrics import fidelity

        return getattr(fidelity, name)
    raise AttributeError(f"module 'suite.metrics' has no attribute {name!r}")
