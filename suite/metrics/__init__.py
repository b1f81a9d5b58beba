"""Image-quality metrics of the SR protocol (pyiqa PSNR/SSIM on the BT.601 Y channel, border = scale)."""

from suite.metrics.fidelity import SRMetrics, to_unit_tensor

__all__ = ["SRMetrics", "to_unit_tensor"]
