"""Read and write TSS tables as BED6 (+ ``gene_name``, ``gene_type``), 0-based half-open."""

from __future__ import annotations

from pathlib import Path
from typing import IO, TextIO

import numpy as np
import pandas as pd

from chromexpr.errors import InputError
from chromexpr.io.text import (
    GZIP_ERRORS,
    corrupt_gzip,
    first_bad_line,
    open_text,
    require_nonempty,
    strip_compression_suffix,
)
from chromexpr.schemas import TSS_COLUMNS

BED_SUFFIXES = (".bed",)


def is_bed(path: str | Path) -> bool:
    """Whether ``path`` is named like a BED file (``.bed`` or ``.bed.gz``)."""
    return strip_compression_suffix(Path(path).name).lower().endswith(BED_SUFFIXES)


def looks_like_bed(path: str | Path) -> bool:
    """Whether the first data line of a file (plain or gzip) is BED-like, not GTF/GFF3.

    For inputs whose name says nothing (standard input): BED has integer start/end in columns 2-3;
    GTF/GFF3 have a source and a feature type there and integer coordinates in columns 4-5.
    """
    with open_text(path) as handle:
        for raw in handle:
            if not raw.strip() or raw.startswith(("#", "track", "browser")):
                continue
            fields = raw.rstrip("\n\r").split("\t")
            return len(fields) >= 3 and fields[1].isdigit() and fields[2].isdigit()
    return False


def _check_bed6(fields: list[str]) -> str | None:
    if len(fields) < 6:
        return (
            "expected at least 6 tab-separated columns (chrom start end name score strand),"
            f" found {len(fields)}"
        )
    try:
        start, end = int(fields[1]), int(fields[2])
    except ValueError:
        return f"start/end must be integers, got {fields[1]!r} and {fields[2]!r}"
    if start < 0:
        return f"negative start {start}"
    if end <= start:
        return f"end {end} must be greater than start {start}"
    if fields[5] not in {"+", "-"}:
        return f"strand must be + or - for a TSS, got {fields[5]!r}"
    return None


def _header(path: str | Path) -> list[str] | None:
    with open_text(path) as handle:
        for line in handle:
            if line.startswith("#"):
                names = line.lstrip("#").strip().split("\t")
                if len(names) < 6:
                    names = line.lstrip("#").split()
                return [n.strip() for n in names]
            if line.strip():
                return None
    return None


def read_tss_bed(path: str | Path) -> pd.DataFrame:
    """Read a BED6+ file of TSSs or gene bounds.

    Columns 7 and 8 are read as ``gene_name`` and ``gene_type`` when present (a ``#`` header line
    naming them, as in ``chromexpr tss`` output or ABC's gene tables, is honoured:
    ``gene_type``/``gene_biotype`` columns are found by name).

    Returns
    -------
    pandas.DataFrame
        ``chrom, start, end, name, score, strand, gene_name, gene_type, gene_id``; coordinates as in
        the file.
    """
    require_nonempty(path, "BED")
    header = _header(path)
    try:
        raw = pd.read_csv(
            path,
            sep="\t",
            header=None,
            comment="#",
            dtype=str,
            keep_default_na=False,
            compression="infer",
            engine="c",
        )
    except GZIP_ERRORS as exc:
        raise corrupt_gzip(path) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        bad = first_bad_line(path, _check_bed6)
        line = bad[0] if bad else None
        raise InputError(
            f"malformed BED: {str(exc).splitlines()[0]}", path=path, line=line
        ) from exc
    bad = first_bad_line(path, _check_bed6) if raw.shape[1] < 6 else None
    starts = pd.to_numeric(raw[1], errors="coerce") if raw.shape[1] >= 6 else None
    ends = pd.to_numeric(raw[2], errors="coerce") if raw.shape[1] >= 6 else None
    if bad is None and starts is not None and ends is not None:
        invalid = (
            starts.isna() | ends.isna() | (starts < 0) | (ends <= starts) | ~raw[5].isin(["+", "-"])
        )
        if bool(invalid.any()):
            bad = first_bad_line(path, _check_bed6)
    if bad is not None:
        raise InputError(f"malformed BED line: {bad[1]}", path=path, line=bad[0])
    assert starts is not None and ends is not None
    table = pd.DataFrame(
        {
            "chrom": raw[0].astype(str),
            "start": starts.astype(np.int64),
            "end": ends.astype(np.int64),
            "name": raw[3].astype(str),
            "score": 0,
            "strand": raw[5].astype(str),
        }
    )
    names = [n.lower() for n in header] if header else []

    def by_name(*candidates: str, position: int) -> pd.Series | None:
        for candidate in candidates:
            if candidate in names and names.index(candidate) < raw.shape[1]:
                return raw[names.index(candidate)].astype(str)
        if not names and raw.shape[1] > position:
            return raw[position].astype(str)
        return None

    gene_name = by_name("gene_name", position=6)
    gene_type = by_name("gene_type", "gene_biotype", "biotype", position=7)
    table["gene_name"] = gene_name if gene_name is not None else table["name"]
    table["gene_type"] = gene_type if gene_type is not None else "unknown"
    table["gene_id"] = table["name"]
    return table


def write_tss_bed(
    table: pd.DataFrame, path: str | Path | TextIO | IO[str], *, header: bool = True
) -> None:
    """Write a TSS table as tab-separated BED6 + gene_name + gene_type.

    A ``#`` header line is written when ``header`` is true.

    ``path`` may be an open text handle (e.g. ``sys.stdout``).
    """
    out = table[TSS_COLUMNS]
    if not isinstance(path, (str, Path)):
        _write(out, path, header=header)
        return
    with Path(path).open("w") as handle:
        _write(out, handle, header=header)


def _write(out: pd.DataFrame, handle: TextIO | IO[str], *, header: bool) -> None:
    if header:
        handle.write("#" + "\t".join(TSS_COLUMNS) + "\n")
    out.to_csv(handle, sep="\t", header=False, index=False)
