"""Image-quality metrics of the SR protocol (PSNR/SSIM on the BT.601 Y channel, border = scale, via pyiqa)."""

from suite.metrics.fidelity import DEFAULT_PROTOCOL, PROTOCOLS, SRMetrics, to_unit_tensor

__all__ = ["DEFAULT_PROTOCOL", "PROTOCOLS", "SRMetrics", "to_unit_tensor"]
