"""The paper's published figures (SPEC section 7) as data, for table rows labelled as the paper's."""

from __future__ import annotations

from dataclasses import dataclass

PAPER = "Lee, Yun, Im, Ro, arXiv 2603.06738 (2026)"
PAPER_SOURCE = "paper"  # the `source` of every row below; measured rows say "measured"


@dataclass(frozen=True)
class PaperRow:
    """One method's PSNR (dB) and SSIM as the paper states them; SSIM is None where it gives none."""

    method: str
    bias: str  # "rib" for the paper's RIB models; empty where SPEC does not say
    note: str  # the setting, as SPEC states it
    scores: dict[tuple[str, int], tuple[float, float | None]]  # (dataset, scale) -> (psnr, ssim)


def _urban(x2: float, x3: float, x4: float) -> dict[tuple[str, int], tuple[float, None]]:
    return {("Urban100", 2): (x2, None), ("Urban100", 3): (x3, None), ("Urban100", 4): (x4, None)}


def _baseline(set5_x2, set5_x4, urban_x2, urban_x4) -> dict[tuple[str, int], tuple[float, float]]:
    return {("Set5", 2): set5_x2, ("Set5", 4): set5_x4, ("Urban100", 2): urban_x2, ("Urban100", 4): urban_x4}


PAPER_ROWS: tuple[PaperRow, ...] = (
    PaperRow("RIB large+", "rib", "DF2K; paper's teaser", _urban(35.63, 31.53, 29.06)),
    PaperRow("PFT", "", "paper's teaser", _urban(35.24, 31.08, 28.71)),
    PaperRow("MambaIRv2-L", "", "paper's teaser", _urban(35.20, 31.13, 28.75)),
    PaperRow("RIB large", "rib", "DIV2K+Flickr2K+LSDIR+DiverSeg-IP", {
        ("Set5", 2): (38.77, 0.9636), ("Set5", 3): (35.39, 0.9350), ("Set5", 4): (33.24, 0.9078),
        ("Urban100", 2): (35.83, 0.9540), ("Urban100", 3): (31.82, 0.9077), ("Urban100", 4): (29.38, 0.8636),
        ("Manga109", 2): (41.01, 0.9825), ("Manga109", 3): (36.30, 0.9589), ("Manga109", 4): (33.40, 0.9360),
    }),
    PaperRow("lightweight network, window 32", "", "paper's lightweight study",
             {("Urban100", 2): (33.86, None), ("Urban100", 4): (27.45, None)}),
    PaperRow("lightweight network + RIB, window 64, rank 16", "rib", "paper's lightweight study",
             {("Urban100", 2): (34.09, None), ("Urban100", 4): (27.59, None)}),
    PaperRow("bicubic", "", "published baseline",
             _baseline((33.66, 0.9299), (28.42, 0.8104), (26.88, 0.8403), (23.14, 0.6577))),
    PaperRow("EDSR", "", "published baseline",
             _baseline((38.11, 0.9602), (32.46, 0.8968), (32.93, 0.9351), (26.64, 0.8033))),
    PaperRow("SwinIR", "", "published baseline",
             _baseline((38.42, 0.9623), (32.92, 0.9044), (33.81, 0.9427), (27.45, 0.8254))),
    PaperRow("HAT", "", "published baseline",
             _baseline((38.63, 0.9630), (33.04, 0.9056), (34.45, 0.9466), (27.97, 0.8368))),
    PaperRow("PFT", "", "published baseline",
             _baseline((38.68, 0.9635), (33.15, 0.9065), (34.90, 0.9490), (28.20, 0.8412))),
)

# The paper's speed claims, kept as the text SPEC gives (units included) so nothing is converted.
PAPER_SPEED_SETTING = "RPB: 64x64 patch with 32x32 windows; RIB: 96x96 patch with 96x96 windows"
PAPER_SPEED: tuple[dict[str, str], ...] = (
    {"phase": "train", "method": "PFT", "time": "1.41 s/iter", "memory": "85.4 GB", "speedup": ""},
    {"phase": "train", "method": "RIB large+", "time": "0.672 s/iter", "memory": "67.7 GB", "speedup": "2.1x"},
    {"phase": "infer", "method": "PFT", "time": "1920.8 ms", "memory": "28869 MB", "speedup": ""},
    {"phase": "infer", "method": "RIB large+", "time": "644.9 ms", "memory": "2989 MB", "speedup": "2.9x"},
)
