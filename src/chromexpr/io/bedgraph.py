"""Read bedGraph (plain or gzipped) into a :class:`~chromexpr.binning.signal.SignalTrack`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from chromexpr.binning.signal import SignalTrack, track_from_chrom_arrays
from chromexpr.io.intervals import check_coordinates, check_sorted_disjoint, split_by_chrom
from chromexpr.io.text import read_table


def _check_line(fields: list[str]) -> str | None:
    if len(fields) < 4:
        return f"expected 4 tab-separated columns (chrom start end value), found {len(fields)}"
    try:
        int(fields[1])
        int(fields[2])
    except ValueError:
        return f"start/end must be integers, got {fields[1]!r} and {fields[2]!r}"
    try:
        value = float(fields[3])
    except ValueError:
        return f"value must be a number, got {fields[3]!r}"
    if not math.isfinite(value):
        return f"value must be finite, got {fields[3]!r} (remove or replace NaN/inf values)"
    return None


def read_bedgraph(path: str | Path, *, chrom_sizes: dict[str, int] | None = None) -> SignalTrack:
    """Read a bedGraph: ``chrom start end value``, 0-based half-open, sorted, non-overlapping.

    Raises
    ------
    InputError
        Empty file, malformed/unsorted/overlapping lines, negative coordinates, NaN/inf values,
        intervals past a known chromosome end; each names the file and line.
    """
    frame = read_table(
        path,
        columns={
            0: ("chrom", str),
            1: ("start", np.int64),
            2: ("end", np.int64),
            3: ("value", np.float64),
        },
        what="bedGraph",
        check=_check_line,
    )
    check_coordinates(frame, path, chrom_sizes=chrom_sizes)
    check_sorted_disjoint(frame, path, "bedGraph")
    return track_from_chrom_arrays(split_by_chrom(frame), chrom_sizes=chrom_sizes)
