"""Keep the ExecuTorch runtime's info lines off the user's terminal.

The ExecuTorch runtime logs from C++ straight to file descriptor 2, which no Python
logging setting reaches: the Python runtime's CPU probe and thread pool print
``[cpuinfo_utils.cpp:109] Failed to open midr file ...`` and ``[threadpool.cpp:66]
Resetting threadpool to 1 threads.`` when a program is loaded, first run or resized.
A refused program adds ``[program.cpp:184] Verification failed; ...`` before the
exception that says the same in fewer words. ``quiet_runtime`` points fd 2 at a
temporary file around those calls, then writes back every line that is not the runtime's
own log line; the dropped lines are kept on the object it yields (``.lines``), so that
an error message can quote the runtime's reason in one line. ``set_verbose(True)`` (the
CLI's ``--verbose``) lets everything through unfiltered.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# The runtime's log lines: the pybindings' "[file.cpp:line] ..." and the C++ runtime's
# "I 00:00:00.001 executorch:file.cpp:line] ...".
_RUNTIME_LINE = re.compile(rb"^(\[[\w.]+\.cpp:\d+\] |[DIEF] \d\d:\d\d:\d\d\.\d+ executorch:)")
_verbose = False


def set_verbose(verbose: bool) -> None:
    global _verbose
    _verbose = bool(verbose)


def is_verbose() -> bool:
    return _verbose


def split_lines(text: bytes) -> tuple[bytes, list[str]]:
    """(every line that is not the runtime's own log line, the runtime's lines as text)."""
    kept: list[bytes] = []
    dropped: list[str] = []
    for line in text.splitlines(keepends=True):
        if _RUNTIME_LINE.match(line):
            dropped.append(line.decode("utf-8", "replace").rstrip("\n"))
        else:
            kept.append(line)
    return b"".join(kept), dropped


def filter_lines(text: bytes) -> bytes:
    """Drop the ExecuTorch runtime's log lines; keep every other line."""
    return split_lines(text)[0]


@dataclass
class RuntimeLog:
    """The runtime's log lines a quiet block dropped (empty when verbose: they were shown)."""

    lines: list[str] = field(default_factory=list)

    def reason(self) -> str:
        """The last line's message without its "[file.cpp:N]" prefix, or ""."""
        return self.lines[-1].split("] ", 1)[-1] if self.lines else ""


@contextmanager
def quiet_runtime() -> Iterator[RuntimeLog]:
    """Filter what the runtime writes inside the block (no-op when verbose): both fd 2
    (native fprintf) and Python's sys.stderr (the pybindings also log through it)."""
    log = RuntimeLog()
    if _verbose:
        yield log
        return
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    python_capture = io.StringIO()
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        sys.stderr = python_capture
        try:
            yield log
        finally:
            sys.stderr = python_stderr
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept, log.lines = split_lines(capture.read())
            if kept:
                os.write(2, kept)
            kept_py, dropped_py = split_lines(python_capture.getvalue().encode())
            log.lines += dropped_py
            if kept_py:
                python_stderr.write(kept_py.decode())
