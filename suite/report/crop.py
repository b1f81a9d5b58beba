"""Pick and cut the visual comparison: one test image, one square crop, HR against every method's SR
image saved by `suite eval --save-images` (results/images/<method>/<dataset>-x<scale>/<name>.png)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from suite.data.io import IMAGE_SUFFIXES, read_image
from suite.report.readers import EvalResult, ReportInputError, method_key
from suite.report.tables import model_title


@dataclass(frozen=True)
class CropComparison:
    dataset: str
    scale: int
    image: str
    box: tuple[int, int, int]  # x, y (top-left, HR pixels) and side
    hr_full: np.ndarray  # uint8 (H, W, 3), modcropped to the SR size
    panels: tuple[tuple[str, np.ndarray], ...]  # (title, uint8 (side, side, 3)): HR, then each method


def most_lost_detail(hr: np.ndarray, bicubic: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the `size` x `size` window where bicubic differs most from HR (largest
    summed absolute error), scanning at a stride of size/4; the first such window on ties."""
    error = np.abs(hr.astype(np.float64) - bicubic.astype(np.float64)).mean(axis=2)  # (H, W)
    integral = np.pad(error.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # (H+1, W+1)
    height, width = error.shape
    stride = max(1, size // 4)
    ys = np.arange(0, height - size + 1, stride)
    xs = np.arange(0, width - size + 1, stride)
    sums = (integral[ys[:, None] + size, xs[None, :] + size] - integral[ys[:, None], xs[None, :] + size]
            - integral[ys[:, None] + size, xs[None, :]] + integral[ys[:, None], xs[None, :]])  # (len(ys), len(xs))
    row, col = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(xs[col]), int(ys[row])


def _find_image(folder: Path, name: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    raise ReportInputError(f"{folder}: no image named {name!r} (looked for {name}.png and other image suffixes)")


def _title(method: str) -> str:
    return model_title(method)


def build_crop(results: Path, evals: list[EvalResult], dataset: str, scale: int, hr_dir: Path,
               image: str | None = None, size: int = 64) -> CropComparison:
    results, hr_dir = Path(results), Path(hr_dir)
    scored = sorted((r for r in evals if r.dataset == dataset and r.scale == scale), key=lambda r: method_key(r.method))
    if not scored or scored[0].method != "bicubic":
        raise ReportInputError(f"{results}/eval/bicubic/{dataset}-x{scale}.json: needed for the crop comparison "
                               f"(bicubic picks the crop), not found")
    folders = {r.method: results / "images" / r.method / f"{dataset}-x{scale}" for r in scored}
    for method, folder in folders.items():
        if not folder.is_dir():
            raise ReportInputError(f"{folder}: no saved images of {method} for the crop comparison "
                                   f"(run `suite eval ... --save-images {folder}`)")
    if image is None:
        names = sorted(row["name"] for row in scored[0].images if "name" in row)
        if not names:
            names = sorted(p.stem for p in folders["bicubic"].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not names:
            raise ReportInputError(f"{folders['bicubic']}: no images to pick the crop from")
        image = names[0]

    sr = {method: read_image(_find_image(folder, image)) for method, folder in folders.items()}
    height, width = sr["bicubic"].shape[:2]
    for method, picture in sr.items():
        if picture.shape[:2] != (height, width):
            raise ReportInputError(f"{folders[method]}: {image} is {picture.shape[1]}x{picture.shape[0]}, "
                                   f"bicubic's is {width}x{height}")
    hr_path = _find_image(hr_dir, image)
    hr = read_image(hr_path)
    if hr.shape[0] < height or hr.shape[1] < width:
        raise ReportInputError(f"{hr_path}: HR is {hr.shape[1]}x{hr.shape[0]}, smaller than the SR images "
                               f"({width}x{height})")
    hr = hr[:height, :width]  # modcrop: the SR images have the HR size cut to a multiple of the scale

    side = min(size, height, width)
    x, y = most_lost_detail(hr, sr["bicubic"], side)
    psnr = {r.method: {row.get("name"): row.get("psnr") for row in r.images} for r in scored}

    def cut(picture: np.ndarray) -> np.ndarray:
        return picture[y:y + side, x:x + side]

    panels = [("HR", cut(hr))]
    for method in folders:
        value = psnr[method].get(image)
        title = _title(method) + (f"\n{value:.2f} dB" if isinstance(value, (int, float)) else "")
        panels.append((title, cut(sr[method])))
    return CropComparison(dataset=dataset, scale=scale, image=image, box=(x, y, side), hr_full=hr,
                          panels=tuple(panels))
