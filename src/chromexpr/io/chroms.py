"""Chromosome sizes and alias files."""

from __future__ import annotations

from pathlib import Path

from chromexpr.errors import InputError
from chromexpr.io.text import data_lines


def read_chrom_sizes(path: str | Path) -> dict[str, int]:
    """Read a ``chrom<TAB>length`` file (UCSC chrom.sizes)."""
    sizes: dict[str, int] = {}
    for number, line in data_lines(path):
        fields = line.split()
        if len(fields) < 2 or not fields[1].isdigit():
            raise InputError("expected 'chrom<TAB>length'", path=path, line=number)
        sizes[fields[0]] = int(fields[1])
    if not sizes:
        raise InputError("empty chromosome sizes file", path=path)
    return sizes


def read_chrom_alias(path: str | Path) -> dict[str, str]:
    """Read ``signal_name<TAB>annotation_name`` pairs.

    UCSC chromAlias-like; extra columns are ignored.
    """
    alias: dict[str, str] = {}
    for number, line in data_lines(path):
        fields = line.split()
        if len(fields) < 2:
            raise InputError(
                "expected two columns: signal name, annotation name", path=path, line=number
            )
        if fields[0] in alias and alias[fields[0]] != fields[1]:
            raise InputError(f"{fields[0]} is mapped twice", path=path, line=number)
        alias[fields[0]] = fields[1]
    if not alias:
        raise InputError("empty chromosome alias file", path=path)
    return alias


def write_chrom_sizes(sizes: dict[str, int], path: str | Path) -> None:
    """Write ``chrom<TAB>length`` lines."""
    with Path(path).open("w") as handle:
        for chrom, length in sizes.items():
            handle.write(f"{chrom}\t{length}\n")
