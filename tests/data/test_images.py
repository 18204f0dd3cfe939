"""Image reading: one pixel limit, checked from the header before decoding."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vpr_embedded.data.images import MAX_IMAGE_PIXELS, ImageReadError, read_image


def test_an_image_claiming_too_many_pixels_is_refused_before_decoding(bomb_png: Path) -> None:
    # 20000 x 20000 is over Pillow's own bomb limit (it raises DecompressionBombError).
    with pytest.raises(ImageReadError, match=r"claims more pixels than Pillow allows.*8192 x 8192"):
        read_image(bomb_png)


def test_the_limit_is_ours_not_only_pillows(
    tmp_path: Path, png_claiming: Callable[[Path, int, int], Path]
) -> None:
    # 9000 x 9000 is under Pillow's limit (it would only warn) but over ours.
    p = png_claiming(tmp_path / "big.png", 9000, 9000)
    assert MAX_IMAGE_PIXELS < 9000 * 9000
    with pytest.raises(ImageReadError, match=r"claims 9000 x 9000 pixels, over the limit"):
        read_image(p)
