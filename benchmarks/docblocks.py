"""Generated blocks in the docs: a benchmark's table between two HTML comment markers."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_block"]


def write_block(path: Path, start: str, end: str, text: str, heading: str) -> None:
    """Replace the text between ``start`` and ``end`` in ``path`` (appending ``heading`` and a new
    block the first time)."""
    block = f"{start}\n{text}\n{end}"
    current = path.read_text() if path.exists() else ""
    if start in current and end in current:
        head, rest = current.split(start, 1)
        path.write_text(head + block + rest.split(end, 1)[1])
    else:
        path.write_text(current.rstrip() + "\n\n" + heading.rstrip() + "\n\n" + block + "\n")
