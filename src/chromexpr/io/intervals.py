"""Shared validation of interval tables (bedGraph, peaks, counts regions) with file:line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.errors import InputError
from chromexpr.io.text import line_of_row


def _fail(
    path: str | Path, row: int, message: str, fix: str | None = None, skip: int = 0
) -> InputError:
    return InputError(message, path=path, line=line_of_row(path, row + skip), fix=fix)


def check_coordinates(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    chrom_sizes: dict[str, int] | None = None,
    header_lines: int = 0,
) -> None:
    """Reject bad intervals.

    Negative starts, empty/inverted intervals, non-finite values, intervals past a chromosome's end.

    ``header_lines``: non-comment lines before the first row (a table's header), for line numbers.
    """
    starts = frame["start"].to_numpy()
    ends = frame["end"].to_numpy()
    bad = np.flatnonzero(starts < 0)
    if bad.size:
        fix = "coordinates are 0-based, >= 0"
        raise _fail(path, int(bad[0]), f"negative start {starts[bad[0]]}", fix, header_lines)
    bad = np.flatnonzero(ends <= starts)
    if bad.size:
        i = int(bad[0])
        message = f"end {ends[i]} is not greater than start {starts[i]}"
        raise _fail(path, i, message, None, header_lines)
    if "value" in frame:
        values = frame["value"].to_numpy()
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            raise _fail(
                path,
                i,
                f"non-finite value {values[i]}",
                "remove or replace NaN/inf values",
                header_lines,
            )
    if chrom_sizes:
        size = frame["chrom"].map(chrom_sizes).to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isnan(size) & (ends > size))
        if bad.size:
            i = int(bad[0])
            raise _fail(
                path,
                i,
                f"interval ends at {ends[i]}, past the end of {frame['chrom'].iloc[i]}"
                f" ({int(size[i])} bp)",
                "check that the file and --chrom-sizes use the same assembly",
                header_lines,
            )


def check_sorted_disjoint(frame: pd.DataFrame, path: str | Path, what: str) -> None:
    """bedGraph rules: each chromosome in one block, sorted by start, no overlapping records."""
    chroms = frame["chrom"].to_numpy()
    starts = frame["start"].to_numpy()
    ends = frame["end"].to_numpy()
    if len(frame) < 2:
        return
    change = np.flatnonzero(chroms[1:] != chroms[:-1]) + 1
    block_chroms = chroms[np.concatenate([[0], change])]
    if len(set(block_chroms)) != len(block_chroms):
        seen: set[str] = set()
        for position, c in zip(np.concatenate([[0], change]), block_chroms, strict=True):
            if c in seen:
                raise _fail(
                    path,
                    int(position),
                    f"unsorted {what}: {c} appears again after other chromosomes",
                    f"sort it: sort -k1,1 -k2,2n {Path(path).name}",
                )
            seen.add(c)
    same = chroms[1:] == chroms[:-1]
    bad = np.flatnonzero(same & (starts[1:] < starts[:-1]))
    if bad.size:
        i = int(bad[0]) + 1
        raise _fail(
            path,
            i,
            f"unsorted {what}: start {starts[i]} comes after {starts[i - 1]}",
            f"sort it: sort -k1,1 -k2,2n {Path(path).name}",
        )
    bad = np.flatnonzero(same & (starts[1:] < ends[:-1]))
    if bad.size:
        i = int(bad[0]) + 1
        raise _fail(
            path,
            i,
            f"overlapping {what} records: [{starts[i]}, {ends[i]}) overlaps the previous one"
            f" ending at {ends[i - 1]}",
            "a bedGraph must have one value per base; merge or flatten overlapping records",
        )


def split_by_chrom(frame: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{chrom: (starts, ends, values)}`` in order of first appearance.

    Rows keep their order within a chromosome.
    """
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    chroms = frame["chrom"].to_numpy()
    starts = frame["start"].to_numpy(dtype=np.int64)
    ends = frame["end"].to_numpy(dtype=np.int64)
    values = frame["value"].to_numpy(dtype=np.float64)
    codes, uniques = pd.factorize(chroms, sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    for k, chrom in enumerate(uniques):
        idx = order[bounds[k] : bounds[k + 1]]
        out[str(chrom)] = (starts[idx], ends[idx], values[idx])
    return out
