"""Image reading and preprocessing to model input tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vpr_embedded.models.vpr import Preprocessing


class ImageReadError(ValueError):
    """An image file is missing or cannot be decoded."""


def read_image(path: str | Path) -> Image.Image:
    """Open an image as RGB (greyscale and palette images become 3 channels)."""
    p = Path(path)
    try:
        with Image.open(p) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(f"image {p} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageReadError(f"cannot decode image {p}: {exc}") from None


def to_tensor(image: Image.Image, prep: Preprocessing) -> torch.Tensor:
    """Resize to (prep.height, prep.width) bilinearly, order colours, normalise, rotate
    by 180 degrees if ``prep.rotate_180``: (3, H, W)."""
    im = image.convert("RGB").resize((prep.width, prep.height), Image.Resampling.BILINEAR)
    a = np.asarray(im, dtype=np.float32) / 255.0
    if prep.colour_order == "BGR":
        a = a[:, :, ::-1]
    elif prep.colour_order != "RGB":
        raise ValueError(f"unknown colour order {prep.colour_order!r}; use RGB or BGR")
    norm = np.subtract(a, np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)
    if prep.rotate_180:
        norm = norm[::-1, ::-1]
    return torch.from_numpy(np.ascontiguousarray(norm.transpose(2, 0, 1), dtype=np.float32))


def load_tensor(path: str | Path, prep: Preprocessing) -> torch.Tensor:
    return to_tensor(read_image(path), prep)
