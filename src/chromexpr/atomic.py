"""Atomic outputs: write to a temporary sibling, then rename into place.

An interrupted run therefore leaves either the previous output or nothing, never a half-written file
presented as complete. Existing outputs are replaced only with ``force=True``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chromexpr.errors import OutputExistsError


def check_writable(path: str | Path, *, force: bool) -> Path:
    """Raise :class:`OutputExistsError` if ``path`` exists and ``force`` is false."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(p)
    return p


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def replace_into(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``, replacing whatever is there (file or directory)."""
    if final.exists() and final.is_dir() and not final.is_symlink():
        old = _temporary_sibling(final)
        final.rename(old)
        tmp.rename(final)
        _remove(old)
    else:
        tmp.replace(final)


@contextmanager
def atomic_path(path: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` when the block succeeds.

    Works for files and directories. On an exception the temporary output is removed.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "out.tsv") as tmp:
    ...     _ = tmp.write_text("a\\n")
    >>> (d / "out.tsv").read_text()
    'a\\n'
    """
    final = check_writable(path, force=force)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(final)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not tmp.exists():
        return
    replace_into(tmp, final)
