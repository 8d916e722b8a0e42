"""Read peak files (BED, narrowPeak, broadPeak; plain or gzipped) as a signal.

A peak is a signal equal to its value over its bases; overlapping peaks add up. The value comes from
``--peak-value``: ``signal`` (narrowPeak/broadPeak column 7, signalValue), ``score`` (column 5),
``presence`` (1 for every peak) or ``auto`` (the default): ``signal`` for narrowPeak/broadPeak
files (named so, or, for unnamed inputs such as a pipe, recognised from their columns) and
``presence`` for every other BED file. Column 7 of a BED9/BED12 file is ``thickStart``, a
coordinate, so a plain BED is never read as a signal unless ``signal`` is asked for explicitly.
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
from chromexpr.log import logger

PeakValue = Literal["auto", "signal", "score", "presence"]
PEAK_SUFFIXES = (".narrowpeak", ".broadpeak", ".bed")
#: Formats whose column 7 is a signal (ENCODE narrowPeak: 10 columns; broadPeak: 9).
SIGNAL_SUFFIXES = (".narrowpeak", ".broadpeak")


def _columns_in_file(path: str | Path) -> int:
    with open_text(path) as handle:
        for line in handle:
            if line.strip() and not line.startswith(("#", "track", "browser")):
                return len(line.rstrip("\n\r").split("\t"))
    return 0


def _first_fields(path: str | Path) -> list[str]:
    with open_text(path) as handle:
        for line in handle:
            if line.strip() and not line.startswith(("#", "track", "browser")):
                return line.rstrip("\n\r").split("\t")
    return []


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def looks_like_encode_peaks(fields: list[str]) -> bool:
    """Whether a data line has the ENCODE narrowPeak (10) or broadPeak (9) columns.

    Columns 7-9 (signalValue, pValue, qValue) are numbers, column 6 a strand, and column 7 is not
    a ``thickStart`` inside the feature with column 8 a ``thickEnd`` after it (BED9/BED12).

    Examples
    --------
    >>> looks_like_encode_peaks("chr1 10 50 p1 0 . 5.2 -1 3.1 20".split())
    True
    >>> looks_like_encode_peaks("chr1 10 50 p1 0 + 10 50 255,0,0".split())
    False
    """
    if len(fields) not in (9, 10) or fields[5] not in {"+", "-", "."}:
        return False
    if not all(_is_number(f) for f in fields[6:9]):
        return False
    if len(fields) == 10 and not fields[9].lstrip("-").isdigit():
        return False
    try:
        start, end = int(fields[1]), int(fields[2])
        thick_start, thick_end = int(fields[6]), int(fields[7])
    except ValueError:
        return True
    return not (start <= thick_start <= thick_end <= end)


def resolve_peak_value(path: str | Path, value: PeakValue) -> PeakValue:
    """The value a peak file's peaks carry: ``auto`` becomes ``signal`` or ``presence``.

    ``auto`` is ``signal`` for a file named ``.narrowPeak``/``.broadPeak`` (``.gz`` too), or one
    whose name says nothing (a pipe, ``.txt``) but whose lines have the narrowPeak/broadPeak
    columns (:func:`looks_like_encode_peaks`); ``presence`` for any other BED file.
    """
    if value != "auto":
        return value
    name = strip_compression_suffix(Path(path).name).lower()
    if name.endswith(SIGNAL_SUFFIXES):
        return "signal"
    if not name.endswith(".bed") and looks_like_encode_peaks(_first_fields(path)):
        return "signal"
    return "presence"


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
    path: str | Path, *, value: PeakValue = "auto", chrom_sizes: dict[str, int] | None = None
) -> SignalTrack:
    """Read peaks as a signal: each peak adds its value over ``[start, end)`` (0-based, half-open).

    Parameters
    ----------
    path
        BED3+/narrowPeak/broadPeak, any order.
    value
        Which value a peak carries: ``auto`` (see :func:`resolve_peak_value`), ``signal``
        (column 7; an error for files without it), ``score`` (column 5) or ``presence`` (1).
    chrom_sizes
        Known chromosome lengths, to reject peaks past a chromosome's end.
    """
    n_columns = _columns_in_file(path)
    name = strip_compression_suffix(Path(path).name).lower()
    requested = value
    value = resolve_peak_value(path, value)
    if requested == "auto":
        logger.info("%s: peaks valued by %s (--peak-value auto)", path, value)
    elif value == "signal" and not name.endswith(SIGNAL_SUFFIXES):
        logger.warning(
            "%s: --peak-value signal reads column 7, which is a signal only in narrowPeak/"
            "broadPeak files (in BED9/BED12 it is thickStart)",
            path,
        )
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
    try:
        frame = read_table(path, columns=columns, what="peak file", check=_checker(value_column))
    except InputError as exc:
        if value_column is None or exc.fix or exc.line is None:
            raise
        raise InputError(
            str(exc),
            fix=f"column {value_column + 1} holds a non-number: use --peak-value presence",
        ) from exc
    if value_column is None:
        frame["value"] = 1.0
    check_coordinates(frame, path, chrom_sizes=chrom_sizes)
    return track_from_chrom_arrays(split_by_chrom(frame), chrom_sizes=chrom_sizes, flatten=True)
