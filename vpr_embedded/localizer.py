"""The on-device localizer for Python: a bundle and a map, frames in, places out.

``Localizer(bundle, map).localize(frame)`` runs the C++ localizer (csrc/runtime: the
ExecuTorch C++ runtime with XNNPACK, the manifest's preprocessing, vpr_core matching) on an
RGB frame, a (height, width, 3) uint8 numpy array, and ``.stream(frames)`` does so frame
after frame. Nothing here imports torch: the ExecuTorch *Python* runtime does (its
pybindings import torch), so this binds the C++ one, as vpr-localize and the Android app
use it. The same bundle and frame give the same top-k as vpr-localize.

The extension ``vpr_embedded._localizer`` is built with the package when the ExecuTorch
runtime is present at build time (the dev install); a core wheel built without it raises
:class:`LocalizerUnavailable` with what to do.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from numpy.typing import NDArray

from vpr_embedded.manifest import read_manifest


class LocalizerUnavailable(ImportError):
    """This install has no C++ localizer (vpr_embedded._localizer)."""


def _module() -> ModuleType:
    try:
        return importlib.import_module("vpr_embedded._localizer")
    except ImportError as exc:
        raise LocalizerUnavailable(
            f"this install has no C++ localizer ({exc}): build vpr-embedded from source in an "
            "environment with executorch installed (make install), or run the bundle with "
            "vpr-localize; the ExecuTorch Python runtime (vpr_embedded.bundle) needs torch"
        ) from None


@dataclass(frozen=True)
class Localization:
    """One frame's top-k places, best first, and where its time went."""

    ids: list[int]
    scores: list[float]
    names: list[str]
    preprocess_ms: float
    inference_ms: float
    match_ms: float


@dataclass(frozen=True)
class FrameError:
    """A frame of a stream that gave no result (the stream goes on): its number and why."""

    frame: int
    error: str


class Localizer:
    """A bundle folder and a map file, validated against each other (the map must have been
    built with this bundle's model unless ``allow_model_mismatch``)."""

    def __init__(
        self,
        bundle: str | Path,
        map: str | Path,
        *,
        threads: int = 1,
        k: int = 5,
        verify_map_checksum: bool = True,
        allow_model_mismatch: bool = False,
    ) -> None:
        read_manifest(bundle)  # the same checks and messages as the Python path, first
        if not Path(map).is_file():
            raise FileNotFoundError(f"map {map} does not exist")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 1024:
            raise ValueError(f"threads must be an integer in [1, 1024], got {threads!r}")
        core = _module()
        try:
            self._core = core.Localizer(
                str(bundle), str(map), threads, k, verify_map_checksum, allow_model_mismatch
            )
        except RuntimeError as exc:  # the C++ refusal of a bundle or map, with the fix
            raise ValueError(str(exc)) from None

    @property
    def descriptor_dim(self) -> int:
        return int(self._core.descriptor_dim)

    @property
    def model_name(self) -> str:
        return str(self._core.model_name)

    @property
    def places(self) -> int:
        return int(self._core.places)

    def localize(self, frame: NDArray[np.uint8]) -> Localization:
        """The top-k places of one RGB frame, (height, width, 3) uint8."""
        r = self._core.localize(_frame(frame))
        return Localization(
            ids=[int(i) for i in r["ids"]],
            scores=[float(s) for s in r["scores"]],
            names=list(r["names"]),
            preprocess_ms=float(r["preprocess_ms"]),
            inference_ms=float(r["inference_ms"]),
            match_ms=float(r["match_ms"]),
        )

    def embed(self, frame: NDArray[np.uint8]) -> NDArray[np.float32]:
        """The model's descriptor of one RGB frame (what the map is searched with)."""
        return np.asarray(self._core.embed(_frame(frame)), dtype=np.float32)

    def stream(self, frames: Iterable[NDArray[np.uint8]]) -> Iterator[Localization | FrameError]:
        """Localize frames one after another, as they come. A frame that cannot be
        localized (wrong shape or dtype, too small) gives a :class:`FrameError` in its
        place and the stream goes on."""
        for number, frame in enumerate(frames):
            try:
                yield self.localize(frame)
            except (ValueError, RuntimeError) as exc:
                yield FrameError(frame=number, error=str(exc))


def _frame(frame: object) -> NDArray[np.uint8]:
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"a frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(
            f"a frame must be a (height, width, 3) uint8 RGB array, got {frame.dtype} {frame.shape}"
        )
    return np.ascontiguousarray(frame)
