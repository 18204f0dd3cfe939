"""Progress of long stage work, reported through a callback the command layer installs.

The library prints nothing: a stage wraps its long loops in :func:`track` (or opens a
:func:`bar`), which does nothing unless a front end has installed a reporter with
:func:`install`. The CLI installs tqdm bars on stderr; a notebook or a service can install
its own, or none.

Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

T = TypeVar("T")


class Bar(Protocol):
    """One running progress report."""

    def update(self, n: int = 1) -> None: ...

    def set_postfix_str(self, text: str) -> None: ...

    def close(self) -> None: ...


# (total or None, description, unit) -> Bar
Reporter = Callable[[int | None, str, str], Bar]


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


_reporter: Reporter | None = None


def install(reporter: Reporter | None) -> None:
    """Send progress to ``reporter`` from now on (None: report nothing)."""
    global _reporter
    _reporter = reporter


def _open(total: int | None, desc: str, unit: str, enabled: bool) -> Bar:
    if _reporter is None or not enabled:
        return _Silent()
    return _reporter(total, desc, unit)


@contextmanager
def bar(total: int | None, desc: str, unit: str = "it", *, enabled: bool = True) -> Iterator[Bar]:
    """A progress report for a block of work of ``total`` steps."""
    b = _open(total, desc, unit, enabled)
    try:
        yield b
    finally:
        b.close()


def track(
    items: Iterable[T],
    desc: str,
    unit: str = "it",
    *,
    total: int | None = None,
    enabled: bool = True,
) -> Iterator[T]:
    """Yield ``items``, reporting one step per item."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total, desc, unit, enabled=enabled) as b:
        for item in items:
            yield item
            b.update()
