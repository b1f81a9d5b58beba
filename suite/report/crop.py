"""Section "Visual comparison": one test image, one square crop, HR against every method's SR image saved by
`suite eval --save-images` (results/images/<method>/<dataset>-x<scale>/<name>.png)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from suite.report.declare import Built, Contents, Plot, ReportInputs, Section
from suite.report.markdown import model_title
from suite.report.readers import EvalResult, ReportInputError, method_key


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
    sums = (
        integral[ys[:, None] + size, xs[None, :] + size]
        - integral[ys[:, None], xs[None, :] + size]
        - integral[ys[:, None] + size, xs[None, :]]
        + integral[ys[:, None], xs[None, :]]
    )  # (len(ys), len(xs))
    row, col = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(xs[col]), int(ys[row])


def _find_image(folder: Path, name: str) -> Path:
    from suite.data.io import IMAGE_SUFFIXES

    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    raise ReportInputError(f"{folder}: no image named {name!r} (looked for {name}.png and other image suffixes)")


def build_crop(
    results: Path,
    evals: list[EvalResult],
    dataset: str,
    scale: int,
    hr_dir: Path,
    image: str | None = None,
    size: int = 64,
) -> CropComparison:
    from suite.data.io import IMAGE_SUFFIXES, read_image

    results, hr_dir = Path(results), Path(hr_dir)
    scored = sorted((r for r in evals if r.dataset == dataset and r.scale == scale), key=lambda r: method_key(r.method))
    if not scored or scored[0].method != "bicubic":
        raise ReportInputError(
            f"{results}/eval/bicubic/{dataset}-x{scale}.json: needed for the crop comparison "
            f"(bicubic picks the crop), not found"
        )
    folders = {r.method: results / "images" / r.method / f"{dataset}-x{scale}" for r in scored}
    for method, folder in folders.items():
        if not folder.is_dir():
            raise ReportInputError(
                f"{folder}: no saved images of {method} for the crop comparison "
                f"(run `suite eval ... --save-images {folder}`)"
            )
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
            raise ReportInputError(
                f"{folders[method]}: {image} is {picture.shape[1]}x{picture.shape[0]}, bicubic's is {width}x{height}"
            )
    hr_path = _find_image(hr_dir, image)
    hr = read_image(hr_path)
    if hr.shape[0] < height or hr.shape[1] < width:
        raise ReportInputError(
            f"{hr_path}: HR is {hr.shape[1]}x{hr.shape[0]}, smaller than the SR images ({width}x{height})"
        )
    hr = hr[:height, :width]  # modcrop: the SR images have the HR size cut to a multiple of the scale

    side = min(size, height, width)
    x, y = most_lost_detail(hr, sr["bicubic"], side)
    psnr = {r.method: {row.get("name"): row.get("psnr") for row in r.images} for r in scored}

    def cut(picture: np.ndarray) -> np.ndarray:
        return picture[y : y + side, x : x + side]

    panels = [("HR", cut(hr))]
    for method in folders:
        value = psnr[method].get(image)
        title = model_title(method) + (f"\n{value:.2f} dB" if isinstance(value, (int, float)) else "")
        panels.append((title, cut(sr[method])))
    return CropComparison(dataset=dataset, scale=scale, image=image, box=(x, y, side), hr_full=hr, panels=tuple(panels))


PANELS_PER_ROW = 8  # a study of many models (cpu-study: 32) wraps into rows


def crop_figure(comparison: CropComparison):
    """The full HR image with the crop marked, then the crop of HR and of each method."""
    from matplotlib.patches import Rectangle

    from suite.report.plotting import new_figure

    panels = [("HR (full image)", comparison.hr_full), *comparison.panels]
    columns = min(len(panels), PANELS_PER_ROW)
    rows = -(-len(panels) // columns)
    fig = new_figure(2.6 * columns, 3.0 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    x, y, size = comparison.box
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].add_patch(Rectangle((x - 0.5, y - 0.5), size, size, fill=False, edgecolor="red", linewidth=1.5))
    fig.suptitle(
        f"{comparison.image} ({comparison.dataset}, x{comparison.scale}): {size}x{size} HR pixels "
        f"at x={x}, y={y}; titles give PSNR over the whole image",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def build(inputs: ReportInputs) -> Built:
    request = inputs.crop
    comparison = build_crop(
        inputs.results, inputs.evals, request.dataset, request.scale, request.hr_dir, request.image, request.size
    )
    return Built(f"Test image {comparison.image} of {comparison.dataset} at x{comparison.scale}.\n", data=comparison)


def present(contents: Contents) -> bool:
    return contents.crop


SECTION = Section(
    key="crop",
    title="Visual comparison",
    build=build,
    present=present,
    figures=(
        Plot(
            "crop",
            "Visual comparison",
            "One test image: the full HR image with the crop marked, then the crop of HR, bicubic and each "
            "trained model. Titles give each method's PSNR over the whole image.",
            lambda inputs, built: crop_figure(built.data),
        ),
    ),
)
