"""Image-quality metrics of the SR protocol (PSNR/SSIM on the BT.601 Y channel, border = scale, via pyiqa).

The protocol names import without torch; `SRMetrics` and `to_unit_tensor` load torch on first use.
"""

from suite.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOL_DESCRIPTIONS, PROTOCOLS

__all__ = ["DEFAULT_PROTOCOL", "PROTOCOLS", "PROTOCOL_DESCRIPTIONS", "SRMetrics", "to_unit_tensor"]


def __getattr__(name: str):
    if name in ("SRMetrics", "to_unit_tensor"):
        from suite.metrics import fidelity

        return getattr(fidelity, name)
    raise AttributeError(f"module 'suite.metrics' has no attribute {name!r}")
