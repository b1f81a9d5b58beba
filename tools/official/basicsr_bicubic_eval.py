"""BasicSR's own bicubic evaluation of an HR folder, one whole process: the baseline of metric_bench.py.

    python tools/official/basicsr_bicubic_eval.py BASICSR_COPY HR_DIR SCALE OUT.json

BASICSR_COPY is the folder metric_bench.py prepares: BasicSR's metric and resize modules copied from a
checkout of XPixelGroup/BasicSR into a `basicsr` package with a stub registry (nothing of BasicSR enters
this project). Per image, as BasicSR's test pipeline does: `cv2.imread` (BGR uint8), modcrop to a multiple
of SCALE, MATLAB-style `imresize` by 1/SCALE and back by SCALE (`basicsr.utils.matlab_functions`, [0, 1]
float in, unrounded out, rounded to uint8 after each step as a saved image is), then `calculate_psnr` and
`calculate_ssim` with `test_y_channel=True` and `crop_border=SCALE`. Writes {"images": [{name, psnr, ssim}]}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        raise SystemExit(__doc__)
    copy, hr_dir, scale, out = Path(argv[0]), Path(argv[1]), int(argv[2]), Path(argv[3])
    sys.path.insert(0, str(copy))
    import cv2
    import numpy as np
    from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim
    from basicsr.utils.matlab_functions import imresize

    def to_uint8(image: np.ndarray) -> np.ndarray:  # [0, 1] float -> uint8, as BasicSR's tensor2img rounds
        return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)

    rows = []
    for path in sorted(hr_dir.glob("*.png")):
        hr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        height, width = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
        hr = hr[:height, :width]
        lr = to_uint8(imresize(hr.astype(np.float64) / 255.0, 1.0 / scale))
        sr = to_uint8(imresize(lr.astype(np.float64) / 255.0, scale))
        rows.append(
            {
                "name": path.stem,
                "psnr": float(calculate_psnr(sr, hr, crop_border=scale, test_y_channel=True)),
                "ssim": float(calculate_ssim(sr, hr, crop_border=scale, test_y_channel=True)),
            }
        )
    out.write_text(json.dumps({"images": rows}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
