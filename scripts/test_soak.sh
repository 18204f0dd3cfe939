#!/usr/bin/env bash
# Soak test: SOAK_SEARCHES (default 10,000) searches, single-frame and sequence
# (SOAK_SEQUENCE_SHARE of them, default 0.25), against a memory-mapped map of
# SOAK_PLACES (default 100,000) int8 places of dimension 256. Prints resident
# memory (VmRSS) after warm-up and at the end, and fails if it grows by more
# than SOAK_RSS_BOUND_MB (default 8) MB. The C++ tests under ASan + LSan run in
# scripts/test_fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f .venv/bin/activate ]]; then . .venv/bin/activate; fi
python - <<'PY'
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from vpr_embedded.maps import Map, build_map
from vpr_embedded.sequence import SequenceConfig, SequenceMatcher

searches = int(os.environ.get("SOAK_SEARCHES", "10000"))
share = float(os.environ.get("SOAK_SEQUENCE_SHARE", "0.25"))
places = int(os.environ.get("SOAK_PLACES", "100000"))
bound_mb = float(os.environ.get("SOAK_RSS_BOUND_MB", "8"))
dim = 256


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


rng = np.random.default_rng(0)
with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    x = rng.standard_normal((places, dim), dtype=np.float32)
    path = build_map(x, out_path=Path(tmp) / "soak.vprmap", storage="int8",
                     model_sha256="5" * 64, model_name="soak")
    del x
    print(f"built {places} x {dim} int8 map ({path.stat().st_size / 1e6:.1f} MB) "
          f"in {time.perf_counter() - t0:.1f} s")
    m = Map.open(path)
    seq = SequenceMatcher(m, SequenceConfig(k=5, threads=1))
    queries = rng.standard_normal((256, dim), dtype=np.float32)
    n_seq = int(searches * share)
    n_single = searches - n_seq
    warm = max(1, min(200, searches // 20))
    # Warm-up: touch every page of the mapping and every buffer.
    for i in range(warm):
        m.search(queries[i % 256], k=5, threads=1)
        seq.push(queries[i % 256])
    start = rss_kb()
    print(f"RSS after warm-up ({2 * warm} searches): {start / 1024:.1f} MB")
    t0 = time.perf_counter()
    done = 0
    peak = start
    every = max(1, n_single // max(1, n_seq)) if n_seq else n_single + 1
    s_left, q_left = n_single, n_seq
    i = 0
    while s_left or q_left:
        q = queries[i % 256]
        if q_left and (i % (every + 1) == every or not s_left):
            r = seq.push(q)
            q_left -= 1
        else:
            r = m.search(q, k=5, threads=1)
            s_left -= 1
        assert r.ids.shape[-1] == 5
        done += 1
        i += 1
        if done % 1000 == 0:
            peak = max(peak, rss_kb())
    end = rss_kb()
    elapsed = time.perf_counter() - t0
    growth = (end - start) / 1024
    print(f"{done} searches ({n_single} single-frame, {n_seq} sequence L=10) in {elapsed:.1f} s")
    print(f"RSS start {start / 1024:.1f} MB, end {end / 1024:.1f} MB, peak {peak / 1024:.1f} MB, "
          f"growth {growth:+.2f} MB (bound {bound_mb} MB)")
    if (peak - start) / 1024 > bound_mb:
        raise SystemExit(f"SOAK FAILED: resident memory grew by {(peak - start) / 1024:.1f} MB")
    print("soak: resident memory flat")
PY
