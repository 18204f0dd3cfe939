"""Map writers under faults and concurrency, with real processes: two appends at once,
kill -9 at random moments, file modes, stale temporary files, symlinks, a held lock, and a
reader whose map is overwritten in place."""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from vpr_embedded import maps
from vpr_embedded.maps import Map, MapLockedError, append_to_map, build_map

SHA = "0123456789abcdef" * 4


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def base_map(path: Path, places: int, dim: int = 64) -> Path:
    rng = np.random.default_rng(0)
    return build_map(
        unit_rows(rng, places, dim),
        out_path=path,
        storage="int8",
        names=[f"base-{i}" for i in range(places)],
        model_sha256=SHA,
        model_name="m",
    )


# A writer process: `rounds` appends of 3 named places each. With a start file it says it
# is ready (PATH.ready-TAG) and waits for the start file, so that writers really overlap.
_APPENDER = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from vpr_embedded.maps import append_to_map
    path, tag, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    start = sys.argv[4] if len(sys.argv) > 4 else None
    rng = np.random.default_rng(sum(map(ord, tag)))
    if start:
        open(path + ".ready-" + tag, "w").close()
        while not os.path.exists(start):
            time.sleep(0.001)
    for i in range(rounds):
        x = rng.standard_normal((3, 64)).astype(np.float32)
        append_to_map(path, x, names=[f"{tag}-{i}-{j}" for j in range(3)])
    """
)


def _appender(
    path: Path, tag: str, rounds: int, start: Path | None = None
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", _APPENDER, str(path), tag, str(rounds)]
    return subprocess.Popen([*args, str(start)] if start else args)


def test_two_appends_at_once_lose_no_place(tmp_path: Path) -> None:
    # Two writers released together, each rewriting a 20,000-place map 15 times: without
    # the lock both read the same old map and the later rename drops the other's places
    # (both exit 0).
    p = base_map(tmp_path / "m.vprmap", 20_000)
    start = tmp_path / "go"
    writers = [_appender(p, tag, 15, start) for tag in ("a", "b")]
    deadline = time.monotonic() + 120
    while not all(Path(f"{p}.ready-{t}").exists() for t in "ab"):
        assert time.monotonic() < deadline and all(w.poll() is None for w in writers)
        time.sleep(0.01)
    start.touch()
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    m = Map.open(p)
    names = m.names
    assert names is not None
    expected = {f"{t}-{i}-{j}" for t in "ab" for i in range(15) for j in range(3)}
    assert m.count == 20_000 + len(expected), f"{20_000 + len(expected) - m.count} places lost"
    assert expected <= set(names)


def test_a_writer_that_cannot_get_the_lock_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = base_map(tmp_path / "m.vprmap", 100)
    before = p.read_bytes()
    fd = os.open(tmp_path / ".m.vprmap.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another writer, as far as the map knows
    monkeypatch.setattr(maps, "LOCK_TIMEOUT_S", 0.3)
    try:
        with pytest.raises(MapLockedError, match="another process has been writing this map"):
            append_to_map(p, np.ones((1, 64), np.float32), names=["x"])
    finally:
        os.close(fd)
    assert p.read_bytes() == before
    append_to_map(p, np.ones((1, 64), np.float32), names=["x"])  # free again
    assert Map.open(p).count == 101


def test_kill_9_at_random_moments_leaves_a_map_that_opens(tmp_path: Path) -> None:
    p = base_map(tmp_path / "m.vprmap", 40_000)  # ~3 MB: a write takes tens of ms
    rng = np.random.default_rng(3)
    counts = {40_000}
    for _ in range(8):
        w = _appender(p, f"k{len(counts)}", 50)
        time.sleep(float(rng.uniform(0.3, 1.5)))  # after the interpreter starts, mid-loop
        w.send_signal(signal.SIGKILL)
        w.wait(timeout=60)
        m = Map.open(p)  # checks every size, offset and CRC
        assert (m.count - 40_000) % 3 == 0
        counts.add(m.count)
        del m
    # The next write removes what killed writers left behind (they were killed mid-write).
    append_to_map(p, np.ones((1, 64), np.float32), names=["after"])
    assert not list(tmp_path.glob(".m.vprmap.*.tmp"))
    assert Map.open(p).names[-1] == "after"  # type: ignore[index]
    assert len(counts) > 2  # some appends landed between the kills


def test_new_maps_follow_the_umask_and_rewrites_keep_the_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = base_map(tmp_path / "m.vprmap", 50)
        assert stat.S_IMODE(p.stat().st_mode) == 0o644  # was 0600 (mkstemp)
        os.chmod(p, 0o640)  # readable by the robot's service group
        append_to_map(p, np.ones((1, 64), np.float32), names=["x"])
        assert stat.S_IMODE(p.stat().st_mode) == 0o640  # was tightened to 0600
        base_map(p, 60)  # a rebuild in place keeps it too
        assert stat.S_IMODE(p.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_stale_temporary_files_are_removed_by_the_next_write(tmp_path: Path) -> None:
    p = base_map(tmp_path / "m.vprmap", 50)
    stale = tmp_path / ".m.vprmap.0123abcd.tmp"
    stale.write_bytes(b"x" * 4096)  # what a killed writer leaves
    other = tmp_path / ".other.vprmap.0123abcd.tmp"
    other.write_bytes(b"y")  # another map's: not ours to remove
    append_to_map(p, np.ones((1, 64), np.float32), names=["x"])
    assert not stale.exists() and other.exists()


def test_append_through_a_symlink_replaces_the_target(tmp_path: Path) -> None:
    real = base_map(tmp_path / "real.vprmap", 50)
    link = tmp_path / "current.vprmap"
    link.symlink_to(real.name)
    append_to_map(link, np.ones((1, 64), np.float32), names=["x"])
    assert link.is_symlink() and os.readlink(link) == real.name
    assert Map.open(real).count == 51


# A reader process: opens the map, says "ready", then searches for `seconds`, checking
# that every answer is the one the map gave first; exits 0, or dies (SIGBUS) trying.
_READER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from vpr_embedded.maps import Map
    path, seconds, limit = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    m = Map.open(path, copy_limit_bytes=limit)
    q = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    first = m.search(q, k=3, threads=1).ids
    print("ready", m.memory_mapped, flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert np.array_equal(m.search(q, k=3, threads=1).ids, first)
    """
)


def test_a_reader_survives_its_map_being_overwritten_in_place(tmp_path: Path) -> None:
    # `cp new.vprmap map.vprmap` truncates and rewrites the same inode. A shared mapping
    # then raises SIGBUS in the reader (exit 135 before); a map under the copy limit is
    # read into the reader's own memory, so it keeps answering as before.
    p = base_map(tmp_path / "m.vprmap", 30_000)
    other = base_map(tmp_path / "other.vprmap", 1_000).read_bytes()
    original = p.read_bytes()
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(p), "3", str(maps.COPY_LIMIT_BYTES)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().split() == ["ready", "False"]
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        for data in (other, original[: len(original) // 2], b"", original):
            with p.open("r+b") as f:  # what cp does: same inode, truncated, rewritten
                f.truncate(0)
                f.write(data)
    assert reader.wait(timeout=60) == 0


def test_maps_over_the_copy_limit_are_memory_mapped(tmp_path: Path) -> None:
    p = base_map(tmp_path / "m.vprmap", 1_000)
    assert not Map.open(p).memory_mapped
    m = Map.open(p, copy_limit_bytes=0)
    assert m.memory_mapped and m.count == 1_000
    with pytest.raises(ValueError, match="copy_limit_bytes must be >= 0"):
        Map.open(p, copy_limit_bytes=-1)


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "map.vprmap"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is not a regular file"):
        Map.open(fifo)
