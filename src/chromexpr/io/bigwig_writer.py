"""Write bigWig files from flat interval arrays (pyBigWig), validated.

Used by the simulator and by attribution tracks. Intervals are **0-based, half-open**
``[start, end)``; bases not covered by any interval are written as no data (readers usually treat
them as 0 or NaN).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from chromexpr.errors import InputError

__all__ = ["write_bigwig"]

#: Zoom levels pyBigWig computes on close (its default, the most a bigWig holds).
MAX_ZOOMS = 10


def _chrom_codes(
    chrom_sizes: Mapping[str, int], chroms: Sequence[str] | np.ndarray | str, n: int
) -> np.ndarray:
    """Index into ``chrom_sizes`` of each interval's chromosome (hash-based; no string sort)."""
    import pandas as pd

    names = list(chrom_sizes)
    index = {name: i for i, name in enumerate(names)}
    if isinstance(chroms, str):
        if chroms not in index:
            raise InputError(f"bigWig: chromosome {chroms!r} is not in the chromosome sizes")
        return np.full(n, index[chroms], dtype=np.int64)
    codes, uniques = pd.factorize(np.asarray(chroms, dtype=object).reshape(-1))
    if codes.shape[0] != n:
        raise InputError(f"bigWig: {codes.shape[0]} chromosome names for {n} intervals")
    unknown = [str(c) for c in uniques if str(c) not in index]
    if unknown:
        raise InputError(
            f"bigWig: chromosome {unknown[0]!r} is not in the chromosome sizes",
            fix="pass sizes for every chromosome the intervals use",
        )
    lookup = np.array([index[str(c)] for c in uniques], dtype=np.int64)
    return lookup[codes]


def _validated_order(
    chrom_sizes: Mapping[str, int],
    chrom_index: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Check the intervals; return ``(order, sorted chrom_index)`` by chromosome, then start."""
    names = list(chrom_sizes)
    size = np.array([int(chrom_sizes[n]) for n in names], dtype=np.int64)[chrom_index]
    bad = np.flatnonzero((starts < 0) | (ends <= starts) | (ends > size))
    if bad.size:
        k = int(bad[0])
        raise InputError(
            f"bigWig: interval {names[chrom_index[k]]}:{starts[k]}-{ends[k]} is empty or outside "
            f"[0, {size[k]}) (0-based, half-open)"
        )
    if not np.all(np.isfinite(values)):
        k = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InputError(
            f"bigWig: value {values[k]} at {names[chrom_index[k]]}:{starts[k]}-{ends[k]} "
            "is not finite"
        )
    presorted = bool(
        np.all(
            (chrom_index[1:] > chrom_index[:-1])
            | ((chrom_index[1:] == chrom_index[:-1]) & (starts[1:] >= starts[:-1]))
        )
    )
    order = np.arange(starts.shape[0]) if presorted else np.lexsort((starts, chrom_index))
    s_chrom, s_start, s_end = chrom_index[order], starts[order], ends[order]
    overlap = np.flatnonzero((s_chrom[1:] == s_chrom[:-1]) & (s_start[1:] < s_end[:-1]))
    if overlap.size:
        k = int(overlap[0])
        raise InputError(
            f"bigWig: intervals {names[s_chrom[k]]}:{s_start[k]}-{s_end[k]} and "
            f"{names[s_chrom[k + 1]]}:{s_start[k + 1]}-{s_end[k + 1]} overlap",
            fix="merge or flatten overlapping intervals before writing",
        )
    return order, s_chrom


def write_bigwig(
    path: str | Path,
    chrom_sizes: Mapping[str, int],
    chroms: Sequence[str] | np.ndarray | str,
    starts: Sequence[int] | np.ndarray,
    ends: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
) -> None:
    """Write intervals with values to a bigWig file.

    Parameters
    ----------
    path
        Output file (overwritten).
    chrom_sizes
        Every chromosome of the header with its length, in header order; intervals are written in
        this order of chromosomes, each chromosome's sorted by start.
    chroms
        Chromosome of each interval, shape ``(n,)``, or one name (a ``str``) for all.
    starts, ends
        0-based, half-open coordinates, shape ``(n,)``; intervals may come in any order but must not
        overlap and must lie within ``[0, chrom_sizes[chrom])``.
    values
        Signal of each interval, shape ``(n,)``, finite (stored as float32).

    Raises
    ------
    InputError
        Unknown chromosome, empty or out-of-bounds interval, overlapping intervals, non-finite
        value, mismatched lengths.

    Examples
    --------
    >>> import tempfile, pyBigWig
    >>> out = Path(tempfile.mkdtemp()) / "x.bw"
    >>> write_bigwig(out, {"chr1": 1000}, ["chr1", "chr1"], [100, 10], [120, 20], [2.0, 1.0])
    >>> bw = pyBigWig.open(str(out)); bw.intervals("chr1"); bw.close()
    ((10, 20, 1.0), (100, 120, 2.0))
    """
    import pyBigWig

    starts_a = np.asarray(starts, dtype=np.int64).reshape(-1)
    ends_a = np.asarray(ends, dtype=np.int64).reshape(-1)
    values_a = np.asarray(values, dtype=np.float64).reshape(-1)
    n = starts_a.shape[0]
    if ends_a.shape[0] != n or values_a.shape[0] != n:
        raise InputError(
            f"bigWig: {n} starts, {ends_a.shape[0]} ends and {values_a.shape[0]} values "
            "differ in length"
        )
    if not chrom_sizes:
        raise InputError("bigWig: no chromosome sizes given")
    bad_size = [c for c, s in chrom_sizes.items() if int(s) <= 0]
    if bad_size:
        raise InputError(f"bigWig: chromosome {bad_size[0]!r} has a non-positive size")
    chrom_index = _chrom_codes(chrom_sizes, chroms, n)
    order, s_chrom = _validated_order(chrom_sizes, chrom_index, starts_a, ends_a, values_a)
    s_start, s_end = starts_a[order], ends_a[order]
    s_value = values_a[order].astype(np.float32).astype(np.float64)
    names = list(chrom_sizes)
    bounds = np.searchsorted(s_chrom, np.arange(len(names) + 1), side="left")
    bw = pyBigWig.open(str(path), "w")
    if bw is None:
        raise InputError("cannot open for writing", path=path)
    try:
        bw.addHeader([(name, int(chrom_sizes[name])) for name in names], maxZooms=MAX_ZOOMS)
        for i, name in enumerate(names):
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            if lo == hi:
                continue
            bw.addEntries(
                [name] * (hi - lo), s_start[lo:hi], ends=s_end[lo:hi], values=s_value[lo:hi]
            )
    finally:
        bw.close()
