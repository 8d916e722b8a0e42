"""Logging to stderr and rich progress bars that ``--quiet`` silences."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

logger = logging.getLogger("chromexpr")

_state = {"quiet": False}


def configure(*, quiet: bool = False, verbose: bool = False, debug: bool = False) -> None:
    """Send chromexpr's log records to stderr.

    Parameters
    ----------
    quiet
        Only warnings and errors, and no progress bars.
    verbose
        Also debug records.
    debug
        Same as ``verbose`` (the CLI also shows tracebacks).
    """
    _state["quiet"] = quiet
    level = logging.WARNING if quiet else logging.INFO
    if verbose or debug:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("chromexpr %(levelname)s: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def is_quiet() -> bool:
    """Whether progress output is silenced."""
    return bool(_state["quiet"])


@contextmanager
def progress_bar(description: str, total: float | None) -> Iterator[object]:
    """A rich progress bar on stderr, or a silent stand-in under ``--quiet``.

    Yields an object with ``advance(n=1)``.
    """
    if is_quiet() or (not sys.stderr.isatty() and total is None):
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=not console.is_terminal,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield _Advancer(progress, task)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar (silent under ``--quiet``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_bar(description, total) as bar:
        for item in items:
            yield item
            bar.advance(1)  # type: ignore[attr-defined]


class _Silent:
    def advance(self, n: float = 1) -> None:
        del n


class _Advancer:
    def __init__(self, progress: object, task: object) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: float = 1) -> None:
        self._progress.advance(self._task, n)  # type: ignore[attr-defined]
