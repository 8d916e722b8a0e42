"""Load one sample's accessibility, whatever its format, as a :class:`SignalTrack`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from chromexpr.binning.signal import SignalTrack, track_from_chrom_arrays
from chromexpr.errors import InputError
from chromexpr.io.peaks import PeakValue
from chromexpr.io.samples import SampleSource

logger = logging.getLogger("chromexpr")


def _bigwig_track(path: Path, chroms: set[str] | None) -> SignalTrack:
    from chromexpr.io.bigwig import read_bigwig

    data = read_bigwig(path, chroms=chroms)
    starts = data.starts.astype(np.int64, copy=False)
    ends = data.ends.astype(np.int64, copy=False)
    values = data.values.astype(np.float64)
    if np.isinf(values).any():
        raise InputError(
            "infinite values in bigWig", path=path, fix="regenerate the track without inf"
        )
    nan = np.isnan(values)
    if nan.any():
        logger.warning(
            "%s: %d interval(s) with NaN values treated as no data (0)", path, int(nan.sum())
        )
        values[nan] = 0.0
    per_chrom = {
        c: (
            starts[data.offsets[i] : data.offsets[i + 1]],
            ends[data.offsets[i] : data.offsets[i + 1]],
            values[data.offsets[i] : data.offsets[i + 1]],
        )
        for i, c in enumerate(data.chroms)
    }
    disjoint = all(
        bool(np.all(s[1:] >= e[:-1])) and bool(np.all(e > s)) for s, e, _ in per_chrom.values()
    )
    return track_from_chrom_arrays(per_chrom, chrom_sizes=data.chrom_sizes, flatten=not disjoint)


def load_signal(
    source: SampleSource,
    *,
    peak_value: PeakValue = "auto",
    chrom_sizes: dict[str, int] | None = None,
    regions: Path | None = None,
    chroms: set[str] | None = None,
) -> SignalTrack:
    """Read a sample's signal.

    Parameters
    ----------
    source
        The sample and its input file.
    peak_value
        For peak files: which column is the value.
    chrom_sizes
        Known chromosome sizes (text formats are checked against them).
    regions
        Regions BED for count matrices whose rows are named, not placed.
    chroms
        bigWig only: decode just these chromosomes (names as in the file).
    """
    if source.kind == "bigwig":
        return _bigwig_track(source.path, chroms)
    if source.kind == "bedgraph":
        from chromexpr.io.bedgraph import read_bedgraph

        return read_bedgraph(source.path, chrom_sizes=chrom_sizes)
    if source.kind == "peaks":
        from chromexpr.io.peaks import read_peaks

        return read_peaks(source.path, value=peak_value, chrom_sizes=chrom_sizes)
    from chromexpr.io.counts import read_count_matrix, track_from_counts

    matrix = read_count_matrix(source.path, regions)
    return track_from_counts(matrix, source.column or source.name)


def signal_chrom_names(source: SampleSource) -> list[str] | None:
    """Chromosome names of a bigWig header without reading data (``None`` for text formats)."""
    if source.kind != "bigwig":
        return None
    from chromexpr.io.bigwig import bigwig_chrom_sizes

    return list(bigwig_chrom_sizes(source.path))
