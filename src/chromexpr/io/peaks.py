"""Read peak files (BED, narrowPeak, broadPeak; plain or gzipped) as a signal.

A peak is a signal equal to its value over its bases; overlapping peaks add up. The value comes from
``--peak-value``: ``signal`` (narrowPeak/broadPeak column 7, signalValue), ``score`` (column 5) or
``presence`` (1 for every peak).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from chromexpr.binning.signal import SignalTrack, track_from_chrom_arrays
from chromexpr.errors import InputError
from chromexpr.io.intervals import check_coordinates, split_by_chrom
from chromexpr.io.text import open_text, read_table, strip_compression_suffix

PeakValue = Literal["signal", "score", "presence"]
PEAK_SUFFIXES = (".narrowpeak", ".broadpeak", ".bed")


def _columns_in_file(path: str | Path) -> int:
    with open_text(path) as handle:
        for line in handle:
            if line.strip() and not line.startswith(("#", "track", "browser")):
                return len(line.rstrip("\n\r").split("\t"))
    return 0


def _checker(value_column: int | None) -> Callable[[list[str]], str | None]:
    def check(fields: list[str]) -> str | None:
        need = 3 if value_column is None else value_column + 1
        if len(fields) < need:
            return f"expected at least {need} tab-separated columns, found {len(fields)}"
        try:
            int(fields[1])
            int(fields[2])
        except ValueError:
            return f"start/end must be integers, got {fields[1]!r} and {fields[2]!r}"
        if value_column is not None:
            try:
                value = float(fields[value_column])
            except ValueError:
                return f"column {value_column + 1} must be a number, got {fields[value_column]!r}"
            if not math.isfinite(value):
                return f"column {value_column + 1} must be finite, got {fields[value_column]!r}"
        return None

    return check


def read_peaks(
    path: str | Path, *, value: PeakValue = "signal", chrom_sizes: dict[str, int] | None = None
) -> SignalTrack:
    """Read peaks as a signal: each peak adds its value over ``[start, end)`` (0-based, half-open).

    Parameters
    ----------
    path
        BED3+/narrowPeak/broadPeak, any order.
    value
        Which value a peak carries (``signal`` falls back to an error on plain BED without
        column 7).
    chrom_sizes
        Known chromosome lengths, to reject peaks past a chromosome's end.
    """
    n_columns = _columns_in_file(path)
    name = strip_compression_suffix(Path(path).name).lower()
    value_column: int | None
    if value == "presence":
        value_column = None
    elif value == "score":
        value_column = 4
    else:
        value_column = 6
    if value_column is not None and n_columns and n_columns <= value_column:
        kind = "narrowPeak/broadPeak" if value == "signal" else "BED5+"
        raise InputError(
            f"--peak-value {value} needs column {value_column + 1} ({kind}),"
            f" but the file has {n_columns} columns",
            path=path,
            fix="use --peak-value presence (or score for BED5+)" if name.endswith(".bed") else None,
        )
    columns: dict[int, tuple[str, type]] = {
        0: ("chrom", str),
        1: ("start", np.int64),
        2: ("end", np.int64),
    }
    if value_column is not None:
        columns[value_column] = ("value", np.float64)
    frame = read_table(path, columns=columns, what="peak file", check=_checker(value_column))
    if value_column is None:
        frame["value"] = 1.0
    check_coordinates(frame, path, chrom_sizes=chrom_sizes)
    return track_from_chrom_arrays(split_by_chrom(frame), chrom_sizes=chrom_sizes, flatten=True)
