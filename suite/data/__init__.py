"""Data: MATLAB-exact bicubic degradation, image IO, paired and training datasets, download, mini set."""

from suite.data.datasets import (
    ImagePair,
    PairedDataset,
    TrainPatches,
    check_pair_sizes,
    decode_all,
    modcrop,
    open_paired,
)
from suite.data.io import list_images, read_image, write_png
from suite.data.resize import degrade, imresize

__all__ = [
    "ImagePair",
    "PairedDataset",
    "TrainPatches",
    "check_pair_sizes",
    "decode_all",
    "modcrop",
    "open_paired",
    "list_images",
    "read_image",
    "write_png",
    "degrade",
    "imresize",
]
