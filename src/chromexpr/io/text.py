"""Helpers for line-oriented text files (plain or gzip): opening, sniffing, locating bad lines,
and the Unix conventions of inputs and outputs.

* ``-`` (or ``/dev/stdin``, or any pipe) as an input is read from standard input: it is copied once
  to a temporary file (:func:`spooled_input`) whose format readers then detect from its content.
* ``-`` as an output writes to standard output; an output named ``*.gz`` is gzip-compressed, any
  other name is plain text (:func:`open_output`). gzip headers carry no file name and no time, so
  the same data give the same bytes.
"""

from __future__ import annotations

import gzip
import io
import shutil
import stat
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from chromexpr.errors import InputError

COMMENT_PREFIXES = ("#", "track", "browser")

#: What reading a corrupt or truncated gzip file raises.
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


#: Names that mean standard input / standard output.
STDIN_NAMES = ("-", "/dev/stdin")
GZIP_SUFFIXES = (".gz", ".bgz", ".gzip")


def is_stdio(path: str | Path | None) -> bool:
    """Whether an output ``path`` means standard output (``None`` or ``-``)."""
    return path is None or str(path) == "-"


def is_gzip_name(path: str | Path) -> bool:
    """Whether a file name asks for gzip compression (``.gz``, ``.bgz``, ``.gzip``)."""
    return str(path).lower().endswith(GZIP_SUFFIXES)


def is_stream(path: str | Path) -> bool:
    """Whether an input is standard input (``-``, ``/dev/stdin``) or a pipe, not a regular file."""
    return _is_stream(path)


def _is_stream(path: str | Path) -> bool:
    if str(path) in STDIN_NAMES:
        return True
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


@contextmanager
def spooled_input(
    path: str | Path, *, name: str = "stdin", suffix: Callable[[Path], str] | None = None
) -> Iterator[Path]:
    """Yield a regular file holding an input that may be a stream.

    ``-`` and ``/dev/stdin`` read standard input, and a named pipe (``<(zcat x.gz)``) is read
    once; their bytes go to a temporary file named ``name`` (``name.gz`` for gzip bytes, for
    readers that infer compression from the name; deleted afterwards), so readers can make several
    passes and detect the format from the content; ``suffix`` (given the spooled file) names the
    format for readers that go by the name (``.bedGraph``...). A regular file is yielded
    unchanged.

    Examples
    --------
    >>> with spooled_input("README.md") as p:
    ...     p
    PosixPath('README.md')
    """
    if not _is_stream(path):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="chromexpr-stdin-") as tmp:
        spool = Path(tmp) / name
        with spool.open("wb") as out:
            if str(path) == "-":
                shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
            else:
                with Path(path).open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        extra = suffix(spool) if suffix is not None else ""
        if is_gzip(spool):
            extra += ".gz"
        if extra:
            spool = spool.rename(spool.with_name(name + extra))
        yield spool


@contextmanager
def _gzip_text(raw: IO[bytes]) -> Iterator[IO[str]]:
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as packed,
        io.TextIOWrapper(packed, encoding="utf-8", newline="\n") as handle,
    ):
        yield handle


@contextmanager
def open_output(
    path: str | Path | None, *, force: bool = False, compress: bool | None = None
) -> Iterator[IO[str]]:
    """A text handle for an output: standard output, a gzip file or a plain file.

    ``None`` or ``-`` write to standard output; a name ending in ``.gz`` (``.bgz``, ``.gzip``) is
    gzip-compressed with an empty file name and time in its header (the same data give the same
    bytes); any other name is plain text. Files are written atomically (a temporary sibling renamed
    into place when the block succeeds) and replaced only with ``force``. ``compress`` overrides
    the name: ``True`` for formats that are gzip by definition (deepTools matrices), also on
    standard output.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with open_output(d / "x.tsv.gz") as h:  # no name, no time (FLG, MTIME = 0)
    ...     _ = h.write("a\\tb\\n")
    >>> gzip.open(d / "x.tsv.gz", "rt").read(), (d / "x.tsv.gz").read_bytes()[3:8]
    ('a\\tb\\n', b'\\x00\\x00\\x00\\x00\\x00')
    """
    from chromexpr.atomic import atomic_path

    if is_stdio(path):
        if compress:
            sys.stdout.flush()
            with _gzip_text(sys.stdout.buffer) as handle:
                yield handle
            sys.stdout.buffer.flush()
            return
        yield sys.stdout
        sys.stdout.flush()
        return
    assert path is not None
    with atomic_path(path, force=force) as tmp:
        if is_gzip_name(path) if compress is None else compress:
            with tmp.open("wb") as raw, _gzip_text(raw) as handle:
                yield handle
        else:
            with tmp.open("w", encoding="utf-8", newline="\n") as handle:
                yield handle


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
    for suffix in GZIP_SUFFIXES:
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


def name_list(value: str | None) -> list[str] | None:
    """Names from an option: ``a,b,c``, or ``@FILE`` with one name per line (first column;
    ``#`` comments and blank lines skipped). ``None`` stays ``None``.

    Examples
    --------
    >>> name_list(" TP53, MYC ,")
    ['TP53', 'MYC']
    """
    if value is None:
        return None
    if value.startswith("@"):
        return [line.split("\t")[0].strip() for _, line in data_lines(Path(value[1:]))]
    return [v.strip() for v in value.split(",") if v.strip()]
