"""Which optional extra each host-only feature needs, and one clear error when it is missing.

``pip install vpr-embedded`` is the core: numpy and the C++ extension, enough for
``matching``, ``maps`` and ``sequence`` (map search on a Raspberry Pi, no torch). Everything
else is an extra (pyproject.toml): ``export`` (torch, ExecuTorch, models, maps from images,
evaluation), ``train`` (pruning, recovery, distillation), ``bench`` (yardsticks), ``scale``
(maps built on a Ray cluster) and ``dev``.
"""

from __future__ import annotations

import importlib.util
import sys

# The top-level modules each extra provides (import names, not distribution names).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "export": ("torch", "executorch", "torchao", "PIL", "sklearn", "tqdm", "matplotlib"),
    "train": (
        "torch",
        "executorch",
        "torchao",
        "PIL",
        "sklearn",
        "tqdm",
        "torch_pruning",
        "pytorch_metric_learning",
    ),
    "bench": ("faiss", "simsimd", "numkong"),
    "scale": ("ray",),
}
# The first extra that provides a module: what to install when an import of it fails.
_EXTRA_OF_MODULE: dict[str, str] = {}
for _extra, _modules in EXTRA_MODULES.items():
    for _module in _modules:
        _EXTRA_OF_MODULE.setdefault(_module, _extra)


class MissingExtraError(ImportError):
    """A feature needs an optional extra that is not installed; the message says which."""


def install_hint(extra: str) -> str:
    return f"pip install 'vpr-embedded[{extra}]'"


def missing_modules(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The modules of ``extra`` (or just ``modules`` of it) that cannot be imported here
    (looked up, not imported)."""
    if extra not in EXTRA_MODULES:
        raise ValueError(f"unknown extra {extra!r}; extras: {', '.join(EXTRA_MODULES)}")
    wanted = EXTRA_MODULES[extra] if modules is None else modules
    return [m for m in wanted if not _importable(m)]


def _importable(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None  # None: import blocked on purpose
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(extra: str, feature: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise MissingExtraError naming ``extra`` when any of its modules (or of ``modules``,
    for a feature that needs only some of them) is missing."""
    missing = missing_modules(extra, modules)
    if missing:
        raise MissingExtraError(
            f"{feature} needs the '{extra}' extra (missing: {', '.join(missing)}): "
            f"{install_hint(extra)}"
        )


def explain(exc: ModuleNotFoundError) -> str | None:
    """The install hint for an import that failed on a module of an extra, else None."""
    top = (exc.name or "").split(".")[0]
    extra = _EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return f"the '{extra}' extra is not installed (no module {top!r}): {install_hint(extra)}"
