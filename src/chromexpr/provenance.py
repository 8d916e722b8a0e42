"""Provenance recorded in every output: version, command line, parameters, input checksums."""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from chromexpr._version import __version__

_CHUNK = 1 << 20


def file_checksum(path: str | Path, *, algorithm: str = "sha256") -> str:
    """Checksum of a file's bytes, as ``"sha256:<hex>"``.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"chr1\\t0\\t1\\n")
    >>> file_checksum(f.name)[:15]
    'sha256:6b4ce41c'
    >>> os.unlink(f.name)
    """
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return f"{algorithm}:{digest.hexdigest()}"


def checksums(paths: Iterable[str | Path]) -> dict[str, str]:
    """Checksums of several files, keyed by the path as given (directories are skipped)."""
    out: dict[str, str] = {}
    for path in paths:
        p = Path(path)
        if p.is_file():
            out[str(path)] = file_checksum(p)
    return out


def command_line() -> str:
    """The command line of this process, as the user typed it (best effort)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("__main__.py", "chromexpr")):
        argv[0] = "chromexpr"
    return " ".join(argv)


def record(
    *,
    step: str,
    parameters: Mapping[str, Any] | None = None,
    inputs: Iterable[str | Path] = (),
) -> dict[str, Any]:
    """A provenance record for one chromexpr step.

    Parameters
    ----------
    step
        Which step produced the output (``"bin"``, ``"train"``...).
    parameters
        Every parameter that changes the output.
    inputs
        Input files; their sha256 checksums are recorded.
    """
    return {
        "tool": "chromexpr",
        "version": __version__,
        "step": step,
        "command": command_line(),
        "parameters": dict(parameters or {}),
        "inputs": checksums(inputs),
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
