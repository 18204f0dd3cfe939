"""Model bundles run by the ExecuTorch Python runtime (host side: it imports torch).

``load_bundle`` validates a bundle (vpr_embedded.manifest: manifest fields, .pte size and
sha256) and returns a :class:`Bundle` that embeds images; the torch-free device path is
vpr_embedded.localizer (the C++ runtime).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from vpr_embedded.data.images import load_tensor, to_tensor
from vpr_embedded.manifest import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    MANIFEST_NAME,
    PTE_NAME,
    BundleError,
    Manifest,
    read_manifest,
    sha256_file,
    write_manifest,
)
from vpr_embedded.runtime_log import RuntimeLog, quiet_runtime

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "MANIFEST_NAME",
    "PTE_NAME",
    "Bundle",
    "BundleError",
    "Manifest",
    "load_bundle",
    "read_manifest",
    "set_runtime_threads",
    "sha256_file",
    "write_manifest",
]


def set_runtime_threads(threads: int) -> None:
    """Size the ExecuTorch (XNNPACK) thread pool of this process (>= 1)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    with quiet_runtime():
        import executorch.extension.pybindings.portable_lib as pl

        pl._unsafe_reset_threadpool(int(threads))


class Bundle:
    """A validated bundle, loaded into the ExecuTorch Python runtime. ``embed`` takes
    preprocessed (N, 3, H, W) float32 images; ``embed_images`` takes PIL images or
    paths and preprocesses them as the manifest says."""

    def __init__(self, folder: str | Path, manifest: Manifest) -> None:
        self.folder = Path(folder)
        self.manifest = manifest
        self.preprocessing = manifest.preprocessing
        self.descriptor_dim = manifest.descriptor_dim
        pte = self.folder / manifest.pte_file
        log = RuntimeLog()
        try:
            with quiet_runtime() as log:
                from executorch.runtime import Runtime

                # Verification.InternalConsistency (the default, said here on purpose): every
                # offset of the program is checked, so a damaged program is refused here.
                program = Runtime.get().load_program(pte)
                method = program.load_method("forward")
        except RuntimeError as exc:  # the runtime's refusal, e.g. "Failed to load program"
            why = log.reason() or str(exc)
            raise BundleError(
                f"{pte}: not a valid ExecuTorch program ({why}): the file is damaged; "
                "re-export the bundle"
            ) from None
        if method is None:
            raise BundleError(f"{self.folder}: the program has no 'forward' method")
        self._method = method
        meta = method.metadata
        if meta.num_inputs() != 1 or meta.num_outputs() != 1:
            raise BundleError(f"{self.folder}: the program must take 1 input and give 1 output")
        shape = tuple(meta.input_tensor_meta(0).sizes())
        p = self.preprocessing
        if shape != (1, 3, p.height, p.width):
            raise BundleError(
                f"{self.folder}: the program takes input {shape}, the manifest says "
                f"(1, 3, {p.height}, {p.width}); re-export the bundle"
            )
        out = tuple(meta.output_tensor_meta(0).sizes())
        if out != (1, self.descriptor_dim):
            raise BundleError(
                f"{self.folder}: the program gives {out}, the manifest says descriptor_dim "
                f"{self.descriptor_dim}; re-export the bundle"
            )

        # One run now, on zeros: the runtime probes the CPU and builds its thread pool on
        # the first execute, printing notices that quiet_runtime keeps off the terminal,
        # and a first frame's latency should not include that set-up.
        with quiet_runtime():
            self._method.execute([torch.zeros(shape, dtype=torch.float32)])

    @property
    def name(self) -> str:
        return self.manifest.model_name

    def embed_one(self, x: torch.Tensor) -> NDArray[np.float32]:
        """One preprocessed image (1, 3, H, W) -> descriptor (D,)."""
        out = self._method.execute([x.contiguous()])[0]
        return np.asarray(out.detach().numpy()[0], dtype=np.float32)

    def embed(self, images: torch.Tensor) -> NDArray[np.float32]:
        """Preprocessed images (N, 3, H, W) float32 -> descriptors (N, D)."""
        p = self.preprocessing
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if (
            images.ndim != 4
            or tuple(images.shape[1:]) != (3, p.height, p.width)
            or images.dtype != torch.float32
        ):
            raise ValueError(
                f"images of shape {tuple(images.shape)} ({images.dtype}): expected float32 "
                f"(N, 3, {p.height}, {p.width}) preprocessed as bundle.preprocessing"
            )
        out = np.empty((images.shape[0], self.descriptor_dim), np.float32)
        for i in range(images.shape[0]):
            out[i] = self.embed_one(images[i : i + 1])
        return out

    def embed_images(self, images: Sequence[Image.Image | str | Path]) -> NDArray[np.float32]:
        """PIL images or image paths -> descriptors (N, D)."""
        p = self.preprocessing
        out = np.empty((len(images), self.descriptor_dim), np.float32)
        for i, im in enumerate(images):
            t = to_tensor(im, p) if isinstance(im, Image.Image) else load_tensor(im, p)
            out[i] = self.embed_one(t.unsqueeze(0))
        return out


def load_bundle(folder: str | Path, *, threads: int | None = None) -> Bundle:
    """Validate a bundle (manifest fields, .pte size and sha256, program input/output
    shapes) and load it; ``threads`` sizes the XNNPACK thread pool."""
    man = read_manifest(folder)
    if threads is not None:
        set_runtime_threads(threads)
    return Bundle(folder, man)
