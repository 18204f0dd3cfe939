"""Bundle manifests, read and written without torch (device layer).

A bundle is a folder with ``model.pte`` and ``manifest.json``. The manifest says
everything a runtime needs (input size, colour order, mean/std, resize method,
descriptor dimension) and pins the ``.pte`` by its size and sha256, so nothing guesses
preprocessing and a tampered or mismatched file is refused.

There is one validator, in C++ (csrc/src/manifest.cpp, through ``vpr_embedded._core``):
the localizer, this module and the Android app (through JNI) all use it, so they accept
and refuse the same manifests with the same messages. Its rules are written down in
schemas/bundle-manifest.schema.json; tests/fixtures/manifests holds the shared cases.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpr_embedded import _core
from vpr_embedded.preprocessing import Preprocessing

BUNDLE_FORMAT = "vpr-embedded-bundle"
BUNDLE_VERSION = 1
MANIFEST_NAME = "manifest.json"
PTE_NAME = "model.pte"


class BundleError(ValueError):
    """A bundle folder is missing files, its manifest is invalid, or the .pte does not
    match the manifest."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """The validated fields of ``manifest.json`` (``raw`` keeps the whole document)."""

    model_name: str
    preprocessing: Preprocessing
    descriptor_dim: int
    quantization: str
    pte_file: str
    pte_sha256: str
    pte_bytes: int
    raw: dict[str, Any]

    @staticmethod
    def _from_fields(fields: dict[str, Any], raw: dict[str, Any]) -> Manifest:
        prep = Preprocessing(
            int(fields["height"]),
            int(fields["width"]),
            tuple(float(v) for v in fields["mean"]),  # type: ignore[arg-type]
            tuple(float(v) for v in fields["std"]),  # type: ignore[arg-type]
            str(fields["colour_order"]),
            bool(fields["rotate_180"]),
        )
        return Manifest(
            model_name=str(fields["model_name"]),
            preprocessing=prep,
            descriptor_dim=int(fields["descriptor_dim"]),
            quantization=str(fields["quantization"]),
            pte_file=str(fields["pte_file"]),
            pte_sha256=str(fields["pte_sha256"]),
            pte_bytes=int(fields["pte_bytes"]),
            raw=raw,
        )

    @staticmethod
    def from_text(text: str, where: str = "manifest") -> Manifest:
        """Validate a manifest document (JSON text)."""
        try:
            fields = _core.parse_manifest(text, where)
        except ValueError as exc:
            raise BundleError(str(exc)) from None
        return Manifest._from_fields(fields, json.loads(text))

    @staticmethod
    def from_dict(d: Any, where: str = "manifest") -> Manifest:
        """Validate a manifest given as a dict (what export writes)."""
        try:
            text = json.dumps(d, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{where}: the manifest is not JSON data ({exc})") from None
        return Manifest.from_text(text, where)


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> Path:
    """Validate and write ``manifest.json`` atomically."""
    Manifest.from_dict(manifest, "new manifest")
    path = Path(folder) / MANIFEST_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def read_manifest(folder: str | Path, *, check_pte: bool = True) -> Manifest:
    """Read and validate a bundle's manifest; with ``check_pte`` also the .pte's size
    and sha256. Raises BundleError (a ValueError) with the fix in the message."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"bundle folder {root} does not exist")
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{root} is not a model bundle: {MANIFEST_NAME} is missing")
    try:
        fields = _core.load_manifest(str(root), check_pte)
    except ValueError as exc:
        raise BundleError(str(exc)) from None
    return Manifest._from_fields(fields, json.loads(path.read_bytes().decode("utf-8")))
