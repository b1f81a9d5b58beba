"""The metric protocols' names and descriptions (no torch import: the CLI builds its choices from them)."""

PROTOCOLS = ("basicsr-y", "pyiqa-rounded-y")
DEFAULT_PROTOCOL = PROTOCOLS[0]  # the paper's

PROTOCOL_DESCRIPTIONS = {
    "basicsr-y": "BasicSR calculate_psnr/calculate_ssim: BT.601 Y unrounded, crop = scale, PSNR without eps",
    "pyiqa-rounded-y": "pyiqa SSIM module: BT.601 Y rounded to integers, crop = scale, PSNR eps 1e-8",
}
