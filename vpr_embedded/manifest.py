"""Bundle manifests: read, validated and written without torch (device layer).

A bundle is a folder with ``model.pte`` and ``manifest.json``. The manifest says
everything a runtime needs (input size, colour order, mean/std, resize method,
descriptor dimension) and pins the ``.pte`` by its size and sha256, so nothing guesses
preprocessing and a tampered or mismatched file is refused. The C++ localizer
(csrc/runtime/src/manifest.cpp) applies the same rules; vpr_embedded.bundle runs a
bundle with the ExecuTorch Python runtime, vpr_embedded.localizer with the C++ one.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpr_embedded.preprocessing import RESIZE_METHOD, Preprocessing

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


def _require(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise BundleError(f"{where}: manifest lacks '{key}'; re-export the bundle")
    v = d[key]
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
        raise BundleError(f"{where}: manifest field '{key}' has the wrong type ({v!r})")
    return v


def _floats3(v: Any, key: str, where: str, positive: bool = False) -> tuple[float, float, float]:
    ok = (
        isinstance(v, list)
        and len(v) == 3
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
        and all(math.isfinite(float(x)) and (not positive or float(x) > 0) for x in v)
    )
    if not ok:
        what = "positive " if positive else ""
        raise BundleError(f"{where}: manifest '{key}' must be 3 finite {what}numbers, got {v!r}")
    return (float(v[0]), float(v[1]), float(v[2]))


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
    def from_dict(d: Any, where: str = "manifest") -> Manifest:
        if not isinstance(d, dict):
            raise BundleError(f"{where}: the manifest must be a JSON object")
        fmt = _require(d, "format", str, where)
        if fmt != BUNDLE_FORMAT:
            raise BundleError(f"{where}: format {fmt!r} is not a {BUNDLE_FORMAT!r} manifest")
        ver = _require(d, "format_version", int, where)
        if ver != BUNDLE_VERSION:
            raise BundleError(
                f"{where}: bundle format version {ver} is not supported (this reader: "
                f"{BUNDLE_VERSION}); re-export the bundle with this vpr-embedded"
            )
        name = _require(d, "model_name", str, where)
        _require(d, "model_config", dict, where)
        inp = _require(d, "input", dict, where)
        h = _require(inp, "height", int, where)
        w = _require(inp, "width", int, where)
        if not (0 < h <= 8192 and 0 < w <= 8192):
            raise BundleError(f"{where}: input size {h}x{w} is out of range")
        colour = _require(inp, "colour_order", str, where)
        if colour not in ("RGB", "BGR"):
            raise BundleError(f"{where}: colour_order {colour!r} must be RGB or BGR")
        resize = _require(inp, "resize", str, where)
        if resize != RESIZE_METHOD:
            raise BundleError(f"{where}: unknown resize method {resize!r} ({RESIZE_METHOD})")
        mean = _floats3(inp.get("mean"), "input.mean", where)
        std = _floats3(inp.get("std"), "input.std", where, positive=True)
        rotate = inp.get("rotate_180", False)
        if not isinstance(rotate, bool):
            raise BundleError(f"{where}: input.rotate_180 must be true or false")
        dim = _require(d, "descriptor_dim", int, where)
        if dim <= 0:
            raise BundleError(f"{where}: descriptor_dim must be positive, got {dim}")
        quant = _require(_require(d, "quantization", dict, where), "mode", str, where)
        pte = _require(d, "pte", dict, where)
        file = _require(pte, "file", str, where)
        if "/" in file or "\\" in file or file in ("", ".", ".."):
            raise BundleError(f"{where}: pte.file must be a plain file name, got {file!r}")
        sha = _require(pte, "sha256", str, where)
        # Lower-case hex only, as the C++ reader and every writer have it.
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise BundleError(f"{where}: pte.sha256 is not a lower-case sha256 hex digest")
        nbytes = _require(pte, "bytes", int, where)
        return Manifest(
            name,
            Preprocessing(h, w, mean, std, colour, rotate),
            dim,
            quant,
            file,
            sha,
            nbytes,
            d,
        )


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
    mpath = root / MANIFEST_NAME
    if not mpath.is_file():
        raise BundleError(f"{root} is not a model bundle: {MANIFEST_NAME} is missing")
    try:
        raw = mpath.read_bytes()
        if raw.startswith(b"\xef\xbb\xbf"):  # the rule of the C++ reader too
            raise BundleError(
                f"{mpath}: the manifest starts with a UTF-8 byte order mark, which JSON does "
                "not allow; re-export the bundle"
            )
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{mpath}: not valid JSON ({exc}); re-export the bundle") from None
    man = Manifest.from_dict(doc, str(mpath))
    if check_pte:
        pte = root / man.pte_file
        if not pte.is_file():
            raise BundleError(f"{root}: the program file {man.pte_file} is missing")
        size = pte.stat().st_size
        if size != man.pte_bytes:
            raise BundleError(
                f"{pte} has {size} bytes, the manifest says {man.pte_bytes}: the program "
                "or the manifest was modified; re-export the bundle"
            )
        digest = sha256_file(pte)
        if digest != man.pte_sha256:
            raise BundleError(
                f"{pte}: sha256 {digest[:16]}... does not match the manifest's "
                f"{man.pte_sha256[:16]}...: the program or the manifest was modified; "
                "re-export the bundle"
            )
    return man
