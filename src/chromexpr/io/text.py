"""Helpers for line-oriented text inputs (plain or gzip): opening, sniffing, locating bad lines."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from chromexpr.errors import InputError

COMMENT_PREFIXES = ("#", "track", "browser")

#: What reading a corrupt or truncated gzip file raises.
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def corrupt_gzip(path: str | Path) -> InputError:
    """The error for a gzip file that cannot be decompressed to its end."""
    return InputError(
        "corrupt or truncated gzip file", path=path, fix="re-compress it, or check the download"
    )


def is_gzip(path: str | Path) -> bool:
    """Whether the file starts with the gzip magic bytes."""
    with Path(path).open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def open_text(path: str | Path) -> IO[str]:
    """Open a plain or gzipped text file for reading (detected from its bytes, not its name)."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path=p)
    if p.is_dir():
        raise InputError("is a directory, expected a file", path=p)
    if is_gzip(p):
        return gzip.open(p, "rt", encoding="utf-8", errors="replace")
    return p.open("rt", encoding="utf-8", errors="replace")


def check_gzip_complete(path: str | Path) -> None:
    """Decompress a gzip file to its end (discarding the bytes); raise if corrupt or truncated.

    For readers whose parser stops quietly at a truncated stream (pandas' chunked reader, used by
    pyranges, returns the lines it got).
    """
    if not is_gzip(path):
        return
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 22):
                pass
    except GZIP_ERRORS as exc:
        raise corrupt_gzip(path) from exc


def strip_compression_suffix(name: str) -> str:
    """``sample.bedGraph.gz`` -> ``sample.bedGraph``."""
    for suffix in (".gz", ".bgz", ".gzip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def data_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for non-empty, non-comment lines (1-based line numbers)."""
    try:
        with open_text(path) as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw.rstrip("\n\r")
                if not line.strip() or line.startswith(COMMENT_PREFIXES):
                    continue
                yield number, line
    except GZIP_ERRORS as exc:
        raise corrupt_gzip(path) from exc


def first_bad_line(
    path: str | Path, check: Callable[[list[str]], str | None]
) -> tuple[int, str] | None:
    """Scan a tab-separated file for the first line that ``check`` rejects.

    ``check`` gets the tab-split fields and returns a reason, or ``None`` if the line is fine. Used
    on error paths only, to turn a vectorised failure into "file:line: reason".
    """
    for number, line in data_lines(path):
        reason = check(line.split("\t"))
        if reason is not None:
            return number, reason
    return None


def require_nonempty(path: str | Path, what: str) -> None:
    """Raise a clear error for an empty (or comment-only) file."""
    for _ in data_lines(path):
        return
    raise InputError(f"empty {what} file (no data lines)", path=path)


def line_of_row(path: str | Path, row: int) -> int | None:
    """1-based file line number of the ``row``-th (0-based) data line.

    Comments and blank lines are skipped.
    """
    for i, (number, _) in enumerate(data_lines(path)):
        if i == row:
            return number
    return None


def read_table(
    path: str | Path,
    *,
    columns: dict[int, tuple[str, type]],
    what: str,
    check: Callable[[list[str]], str | None],
) -> pd.DataFrame:
    """Read typed columns of a tab-separated file with pandas' C parser, with one-line errors.

    Parameters
    ----------
    path
        Plain or gzipped file; leading ``#``/``track``/``browser`` lines are skipped.
    columns
        ``{column index: (name, dtype)}``.
    what
        What the file is, for messages ("bedGraph", "narrowPeak"...).
    check
        Validates one line's fields (returns a reason or ``None``); used to find the offending line
        when the fast typed read fails.

    Raises
    ------
    InputError
        Empty file, or a malformed line (with its number).
    """
    import pandas as pd

    require_nonempty(path, what)
    usecols = sorted(columns)
    try:
        frame = pd.read_csv(
            path,
            sep="\t",
            header=None,
            usecols=usecols,
            skiprows=_leading_comment_lines(path),
            dtype={i: columns[i][1] for i in usecols},
            compression="gzip" if is_gzip(path) else None,
            engine="c",
            na_filter=False,
        )
    except GZIP_ERRORS as exc:
        raise corrupt_gzip(path) from exc
    except (pd.errors.ParserError, ValueError, OverflowError) as exc:
        bad = first_bad_line(path, check)
        if bad is not None:
            raise InputError(f"malformed {what} line: {bad[1]}", path=path, line=bad[0]) from exc
        raise InputError(f"malformed {what}: {str(exc).splitlines()[0]}", path=path) from exc
    frame.columns = [columns[i][0] for i in usecols]
    return frame


def _leading_comment_lines(path: str | Path) -> int:
    count = 0
    with open_text(path) as handle:
        for raw in handle:
            if raw.startswith(COMMENT_PREFIXES) or not raw.strip():
                count += 1
            else:
                break
    return count
