"""The core install: importing the core modules pulls in no torch, and a command that needs
an extra says which one to install, in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vpr_embedded import __version__
from vpr_embedded.extras import MissingExtraError, explain, missing_modules, require

CORE_MODULES = (
    "vpr_embedded.matching",
    "vpr_embedded.maps",
    "vpr_embedded.sequence",
    "vpr_embedded.extras",
    "vpr_embedded.data.catalog",
    "vpr_embedded.cli",
)
HOST_ONLY = ("torch", "executorch", "torchao", "torch_pruning", "sklearn", "PIL", "tqdm")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_core_modules_import_no_host_library() -> None:
    imports = "; ".join(f"import {m}" for m in CORE_MODULES)
    r = _python(
        f"import sys; {imports}; print(sorted(m for m in {HOST_ONLY!r} if m in sys.modules))"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"core modules imported {r.stdout.strip()}"


# Run the CLI with torch made unimportable (sys.modules[name] = None is what Python itself
# uses to block an import), as on a core install.
_BLOCKED_CLI = (
    "import sys; sys.modules['torch'] = None; from vpr_embedded.cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["evaluate", "--model", "m", "--dataset", "d"], "export"),
        (["build-map", "--model", "m", "--images", "i", "--out", "o.vprmap"], "export"),
        (["prune", "--model", "m", "--out", "o.pt"], "train"),
    ],
)
def test_a_command_without_its_extra_names_the_extra(argv: list[str], extra: str) -> None:
    r = subprocess.run(
        [sys.executable, "-c", _BLOCKED_CLI, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"pip install 'vpr-embedded[{extra}]'" in lines[0]
    assert "torch" in lines[0]


def test_core_commands_run_without_torch() -> None:
    r = subprocess.run(
        [sys.executable, "-c", _BLOCKED_CLI, "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0 and r.stdout.strip() == f"vpr-embedded {__version__}"
    r = subprocess.run(
        [sys.executable, "-c", _BLOCKED_CLI, "datasets", "--data-dir", "/nonexistent"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "nordland_part1  [missing]" in r.stdout


def test_require_and_explain() -> None:
    assert missing_modules("export", ("torch",)) == []
    with pytest.raises(MissingExtraError, match=r"needs the 'bench' extra \(missing: nope\)"):
        require("bench", "a benchmark", modules=("nope",))
    with pytest.raises(ValueError, match="unknown extra"):
        require("gpu", "x")
    hint = explain(ModuleNotFoundError("No module named 'torch_pruning'", name="torch_pruning"))
    assert hint is not None and "vpr-embedded[train]" in hint
    assert explain(ModuleNotFoundError("x", name="some_other_module")) is None
