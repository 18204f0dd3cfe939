"""Image reading and preprocessing to model input tensors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vpr_embedded.preprocessing import Preprocessing
from vpr_embedded.progress import track

# The most pixels an image may claim. A camera frame or a reference photo is far below it
# (8192 x 8192); a file claiming more (a decompression bomb: 48 KB of PNG can claim
# 20000 x 20000 and gigabytes of memory) is refused from its header, before decoding.
MAX_IMAGE_PIXELS = 8192 * 8192


class ImageReadError(ValueError):
    """An image file is missing, cannot be decoded, or claims too many pixels."""


def read_image(path: str | Path) -> Image.Image:
    """Open an image as RGB (greyscale and palette images become 3 channels)."""
    p = Path(path)
    try:
        with Image.open(p) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ImageReadError(_too_large(p, w, h))
            return im.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(f"image {p} does not exist") from None
    except Image.DecompressionBombError:
        # Pillow refuses before we see the size (over twice its own limit).
        raise ImageReadError(_too_large(p, None, None)) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        if isinstance(exc, ImageReadError):
            raise
        raise ImageReadError(f"cannot decode image {p}: {exc}") from None


def _too_large(path: Path, w: int | None, h: int | None) -> str:
    size = f"{w} x {h} pixels" if w is not None else "more pixels than Pillow allows"
    return (
        f"image {path} claims {size}, over the limit of {MAX_IMAGE_PIXELS} "
        "(8192 x 8192): a corrupt or hostile file, or a photo to downscale first"
    )


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


def load_images(
    paths: Sequence[Path], prep: Preprocessing, *, desc: str | None = None
) -> torch.Tensor:
    """Image files as one preprocessed batch (N, 3, H, W); with ``desc``, progress is
    reported (vpr_embedded.progress)."""
    items = track(paths, desc, "img") if desc is not None else paths
    return torch.stack([load_tensor(p, prep) for p in items])
