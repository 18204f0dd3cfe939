"""What a model expects as input, said once for every runtime (device layer, no torch).

A bundle's manifest carries these fields; the C++ localizer (csrc/src/preprocess.cpp)
and the Python readers (data/images.py) apply them the same way: PIL-style bilinear resize
to height x width (antialiased when shrinking), colour order, ``(x / 255 - mean) / std``
per channel, and the 180-degree rotation of the pad-free export (models/rotate.py).
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# How images are resized, as the manifest names it: PIL's Image.resize(BILINEAR)
# (antialiased when shrinking, uint8 result), reproduced by the C++ preprocessing.
RESIZE_METHOD = "pil-bilinear"


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects as input: resize to height x width, colour order, then
    ``(x / 255 - mean) / std`` per channel (in ``colour_order``); rotate_180: the image
    upside down (bundles exported in the pad-free form, models/rotate.py)."""

    height: int
    width: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    colour_order: str = "RGB"
    rotate_180: bool = False
