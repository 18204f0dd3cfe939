"""Keep the ExecuTorch runtime's info lines off the user's terminal.

The ExecuTorch runtime logs from C++ straight to file descriptor 2, which no Python
logging setting reaches: the Python runtime's CPU probe and thread pool print
``[cpuinfo_utils.cpp:109] Failed to open midr file ...`` and ``[threadpool.cpp:66]
Resetting threadpool to 1 threads.`` when a program is loaded, first run or resized.
``quiet_runtime`` points fd 2 at a temporary file around those calls, then writes back
every line that is not one of those notices (other native output, warnings and errors
among it, always comes through). ``set_verbose(True)`` (the CLI's ``--verbose``) lets
everything through unfiltered.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

# The notices: the pybindings' "[file.cpp:line]" lines from the CPU probe and the thread
# pool, and the C++ runtime's info/debug lines ("I 00:00:00.001 executorch:...").
_INFO_LINE = re.compile(
    rb"^(\[(cpuinfo_utils|threadpool)\.cpp:\d+\] |[DI] \d\d:\d\d:\d\d\.\d+ executorch:)"
)
_verbose = False


def set_verbose(verbose: bool) -> None:
    global _verbose
    _verbose = bool(verbose)


def is_verbose() -> bool:
    return _verbose


def filter_lines(text: bytes) -> bytes:
    """Drop the ExecuTorch runtime's notices; keep every other line."""
    kept = [line for line in text.splitlines(keepends=True) if not _INFO_LINE.match(line)]
    return b"".join(kept)


@contextmanager
def quiet_runtime() -> Iterator[None]:
    """Filter what native code writes to fd 2 inside the block (no-op when verbose)."""
    if _verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = filter_lines(capture.read())
            if kept:
                os.write(2, kept)
