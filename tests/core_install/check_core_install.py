"""Run by scripts/test_wheel.sh and scripts/test_arm_python.sh inside an environment that
holds only the core wheel (numpy + the C++ extension; no torch): what `pip install
vpr-embedded` gives a Raspberry Pi. Exits non-zero on the first failed check.

Checks: torch is not installed at all; a map built from given descriptors is written,
memory-mapped and searched (int8 and float16, with a PCA projection), also by the sequence
matcher; the CLI answers --version and `datasets`, and a command that needs torch refuses
in one line naming the extra.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

import vpr_embedded
from vpr_embedded.cli import main as cli_main
from vpr_embedded.maps import Map, build_map
from vpr_embedded.matching import Index, simd_level
from vpr_embedded.sequence import SequenceConfig, SequenceMatcher


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        sys.exit(1)


def main() -> None:
    check(importlib.util.find_spec("torch") is None, "torch is not installed")
    print(f"     vpr_embedded {vpr_embedded.__version__} from {Path(vpr_embedded.__file__).parent}")
    print(f"     SIMD level: {simd_level()}")
    rng = np.random.default_rng(0)
    places = rng.standard_normal((5000, 128)).astype(np.float32)
    places /= np.linalg.norm(places, axis=1, keepdims=True)
    route = np.arange(100, 140)
    queries = places[route] + 0.05 * rng.standard_normal((len(route), 128)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp:
        for storage, pca in (("int8", None), ("float16", 64)):
            path = build_map(
                places,
                out_path=Path(tmp) / f"{storage}.vprmap",
                storage=storage,
                pca_dim=pca,
                model_sha256="a" * 64,
                model_name="given-descriptors",
            )
            m = Map.open(path)
            hits = m.search(queries, k=5, threads=2).ids[:, 0]
            check(
                float(np.mean(hits == route)) >= 0.95,
                f"{storage} map (pca {pca}): {np.mean(hits == route):.2f} of queries top-1",
            )
            seq = SequenceMatcher(m, SequenceConfig(length=5, k=1)).match(queries).ids[:, 0]
            check(bool(np.all(seq[5:] == route[5:])), f"{storage} map: sequence matcher")
        exact = Index.encode(places, "float32").search(queries, k=1).ids[:, 0]
        check(bool(np.all(exact == route)), "in-memory float32 index")
    from vpr_embedded.localizer import LocalizerUnavailable, _module

    try:
        _module()
        check(False, "a core wheel has no C++ localizer")
    except LocalizerUnavailable as exc:
        check("vpr-localize" in str(exc), "the localizer says what to do without its extension")
    # The CLI in this process: under qemu-user a child aarch64 process cannot be started.
    rc, out, err = run_cli("--version")
    check(rc == 0 and vpr_embedded.__version__ in out, "vpr-embedded --version")
    rc, out, err = run_cli("datasets")
    check(rc == 0 and "nordland_part1" in out, "vpr-embedded datasets")
    rc, out, err = run_cli("evaluate", "--model", "x", "--dataset", "y")
    lines = err.strip().splitlines()
    check(
        rc == 2 and len(lines) == 1 and "pip install 'vpr-embedded[export]'" in lines[0],
        f"evaluate without torch: {lines[-1] if lines else err!r}",
    )


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli_main(list(argv))
        except SystemExit as exc:  # argparse's --version
            rc = int(exc.code or 0)
    return rc, out.getvalue(), err.getvalue()


if __name__ == "__main__":
    main()
