"""The ExecuTorch runtime's notices stay off the terminal; everything else comes through."""

from __future__ import annotations

import subprocess
import sys

from vpr_embedded.runtime_log import RuntimeLog, filter_lines, split_lines

NOTICES = (
    b"[cpuinfo_utils.cpp:109] Failed to open midr file /sys/devices/x\n"
    b"[threadpool.cpp:66] Resetting threadpool to 1 threads.\n"
    b"I 00:00:00.024517 executorch:cpuinfo_utils.cpp:71] Reading file /sys/x\n"
)
KEPT = b"my own line\nW something else native\n"
ERROR = b"[program.cpp:184] Verification failed; data may be truncated or corrupt\n"


def test_filter_drops_only_the_runtime_lines_and_keeps_them_for_messages() -> None:
    assert filter_lines(NOTICES + ERROR + KEPT) == KEPT
    kept, dropped = split_lines(NOTICES + ERROR + KEPT)
    assert kept == KEPT and len(dropped) == 4
    assert RuntimeLog(dropped).reason() == "Verification failed; data may be truncated or corrupt"


# Native code writes to fd 2 directly; os.write stands in for it, in a child process so
# that this process's fd 2 is not touched.
_CHILD = """
import os, sys
from vpr_embedded import runtime_log
runtime_log.set_verbose(sys.argv[1] == "verbose")
with runtime_log.quiet_runtime():
    os.write(2, {payload!r})
"""


def test_quiet_runtime_filters_native_writes_to_fd_2() -> None:
    code = _CHILD.format(payload=NOTICES + KEPT)
    for mode, expect in (("quiet", KEPT), ("verbose", NOTICES + KEPT)):
        r = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, check=False)
        assert r.returncode == 0, r.stderr
        assert r.stderr == expect, (mode, r.stderr)
