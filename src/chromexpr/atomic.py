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

from chromexpr.errors import InputError, OutputExistsError


def check_writable(path: str | Path, *, force: bool) -> Path:
    """Check that ``path`` can be written, before any work is done; return it as a Path.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``force`` is false.
    InputError
        ``path`` cannot be created (see :func:`check_location`).
    """
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(p)
    check_location(p)
    return p


def check_location(path: str | Path) -> None:
    """Raise :class:`InputError` if ``path`` cannot be created where it is.

    Every command runs this on its ``--output`` before it reads anything (see
    :func:`chromexpr.cli._app.command_context`), so that a run never computes for minutes and then
    fails to write. Existing outputs are :func:`check_writable`'s concern.

    Raises
    ------
    InputError
        A parent of ``path`` is a file (``-o afile/out``) or a broken symbolic link, or the nearest
        existing parent is not writable.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "afile").write_text("x")
    >>> check_location(d / "new" / "out.tsv")
    >>> check_location(d / "afile" / "out.tsv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    chromexpr.errors.InputError: .../afile: is a file, not a directory: ...
    """
    p = Path(path)
    parent = p.absolute().parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link: mkdir would fail on it
            raise InputError(
                f"is a broken symbolic link: cannot create {p} under it",
                path=parent,
                fix="choose another -o",
            )
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(
            f"is a file, not a directory: cannot create {p} under it",
            path=parent,
            fix="choose another -o",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(
            f"no permission to write here: cannot create {p}", path=parent, fix="choose another -o"
        )


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
