"""Shared helpers for the benchmarks: clean BLAS environment, timing, data."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

BLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
REEXEC_MARK = "VPR_BENCH_REEXECED"


# Methods run interleaved, so an idle OpenMP/OpenBLAS pool of one library must sleep
# instead of spinning on the second core while the next method runs (a spinning pool
# made every 2-thread method after numpy look slower than its 1-thread self).
QUIET_POOLS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}


def reexec_without_blas_env(keep: bool) -> None:
    """Re-exec this process without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE and with idle
    thread pools that sleep (QUIET_POOLS), before numpy loads."""
    if os.environ.get(REEXEC_MARK):
        return
    found = [] if keep else [v for v in BLAS_ENV_VARS if v in os.environ]
    env = {k: v for k, v in os.environ.items() if k not in found}
    for key, value in QUIET_POOLS.items():
        env.setdefault(key, value)
    env[REEXEC_MARK] = ",".join(found) or "-"
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def blas_report() -> list[str]:
    """One line per thread pool that threadpoolctl sees (BLAS kernel / coretype)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl not installed: BLAS kernel unknown"]
    lines = []
    for info in threadpool_info():
        lines.append(
            f"{info.get('internal_api')} {info.get('version') or ''} "
            f"coretype={info.get('architecture') or '-'} threads={info.get('num_threads')} "
            f"({Path(info.get('filepath', '')).name})"
        )
    return lines


def time_call(fn: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def read_bandwidth(gib: float = 1.0, repeats: int = 5) -> tuple[float, str]:
    """Single-thread read bandwidth in bytes/s: best of a few numpy streaming reductions.

    numpy reductions run on one thread; each kernel streams the array once. The fastest
    kernel (median over repeats) is taken as the achievable single-thread read bandwidth.
    """
    import numpy as np

    data = np.ones(int(gib * 2**30) // 8, dtype=np.int64)
    kernels: dict[str, Callable[[], object]] = {
        "float32 max": lambda: data.view(np.float32).max(),
        "int64 bitwise_or.reduce": lambda: np.bitwise_or.reduce(data),
        "int32 count_nonzero": lambda: np.count_nonzero(data.view(np.int32)),
        "float32 sum": lambda: data.view(np.float32).sum(),
    }
    best = (0.0, "")
    for name, fn in kernels.items():
        fn()
        secs = sorted(time_call(fn) for _ in range(repeats))[repeats // 2]
        best = max(best, (data.nbytes / secs, name))
    return best


def random_chunks(
    n: int, d: int, seed: int, chunk_rows: int
) -> Callable[[], Iterator[tuple[int, object]]]:
    """Factory of an iterator over (start_row, L2-normalised float32 gaussian chunk).

    Chunk i is seeded by (seed, d, i), so the stream is reproducible and can be replayed.
    """
    import numpy as np

    def chunks() -> Iterator[tuple[int, object]]:
        for i, start in enumerate(range(0, n, chunk_rows)):
            rows = min(chunk_rows, n - start)
            rng = np.random.default_rng([seed, d, i])
            x = rng.standard_normal((rows, d), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            yield start, x

    return chunks


def normalise(x: object) -> object:
    import numpy as np

    arr = np.asarray(x, dtype=np.float32)
    return np.ascontiguousarray(arr / np.linalg.norm(arr, axis=-1, keepdims=True))


def nordland_pixels(root: Path, limit: int | None = None) -> tuple[object, object] | None:
    """Nordland summer (database) and winter (queries) as flattened float32 pixel rows."""
    import numpy as np
    from PIL import Image

    summer, winter = root / "summer", root / "winter"
    if not summer.is_dir() or not winter.is_dir():
        return None
    names = sorted(p.name for p in summer.glob("*.png") if (winter / p.name).exists())[:limit]

    def load(folder: Path) -> object:
        return np.stack(
            [np.asarray(Image.open(folder / n).convert("L"), np.float32).ravel() for n in names]
        )

    return load(summer), load(winter)


def project_descriptors(db: object, q: object, d: int, seed: int) -> tuple[object, object]:
    """Mean-remove (database mean), project by a fixed gaussian matrix to d, L2-normalise."""
    import numpy as np

    db, q = np.asarray(db), np.asarray(q)
    mean = db.mean(axis=0)
    proj = np.random.default_rng([seed, d]).standard_normal((db.shape[1], d), dtype=np.float32)
    return normalise((db - mean) @ proj), normalise((q - mean) @ proj)


def machine_info() -> dict[str, object]:
    """The CPU a benchmark ran on, from /proc/cpuinfo (first processor): vendor, family,
    model, stepping, name and flags on x86; implementer, part and features on arm."""
    import platform
    from datetime import datetime

    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "arch": platform.machine(),
        "vendor": fields.get("vendor_id") or fields.get("CPU implementer", "?"),
        "family": fields.get("cpu family") or fields.get("CPU architecture", "?"),
        "model": fields.get("model") or fields.get("CPU part", "?"),
        "stepping": fields.get("stepping") or fields.get("CPU revision", "?"),
        "model_name": fields.get("model name", platform.processor() or "?"),
        "cores": os.cpu_count(),
        "flags": flags,
        "simd_flags": [
            f
            for f in flags
            if f.startswith(("avx", "sse4", "fma", "f16c", "asimd", "amx"))
            or f in ("popcnt", "dotprod", "asimddp")
        ],
    }


def machine_line(info: dict[str, object], bandwidth: float) -> str:
    """One line naming the machine: what every result table carries."""
    simd = " ".join(str(f) for f in info["simd_flags"])  # type: ignore[attr-defined]
    return (
        f"machine: {info['vendor']} family {info['family']} model {info['model']} stepping "
        f"{info['stepping']} ({info['model_name']}), {info['cores']} cores, {info['arch']}; "
        f"single-thread read bandwidth {bandwidth / 1e9:.1f} GB/s; {info['date_utc']} UTC; "
        f"SIMD flags: {simd}"
    )
