"""Datasets read in place, ground truth, image preprocessing."""

from vpr_embedded.data.datasets import (
    FORMATS,
    PlaceDataset,
    detect_format,
    load_dataset,
    read_aligned,
    read_gmberton,
    read_vpr_bench,
)
from vpr_embedded.data.ground_truth import RestrictedUnpickler, UnsafePickleError, load_object_npy
from vpr_embedded.data.images import ImageReadError, load_tensor, read_image, to_tensor

__all__ = [
    "FORMATS",
    "ImageReadError",
    "PlaceDataset",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "detect_format",
    "load_dataset",
    "load_object_npy",
    "load_tensor",
    "read_aligned",
    "read_gmberton",
    "read_image",
    "read_vpr_bench",
    "to_tensor",
]
