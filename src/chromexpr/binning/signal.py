"""In-memory accessibility signal of one sample: disjoint segments per chromosome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SignalTrack:
    """Piecewise-constant signal of one sample, as sorted, disjoint segments per chromosome.

    Coordinates are 0-based, half-open. Bases outside every segment have signal 0.

    Attributes
    ----------
    chroms
        Chromosomes with data, in storage order.
    offsets
        int64, ``len(chroms) + 1``: the segments of ``chroms[i]`` are
        ``[offsets[i], offsets[i + 1])``.
    starts, ends
        int64 segment bounds.
    values
        float64 signal per base over each segment.
    chrom_sizes
        Known chromosome lengths (from a bigWig header or ``--chrom-sizes``); may be empty.
    """

    chroms: list[str]
    offsets: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    values: np.ndarray
    chrom_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def n_segments(self) -> int:
        """Total number of segments."""
        return int(self.starts.shape[0])

    def chrom_slice(self, chrom: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Starts, ends and values of one chromosome (empty arrays if absent)."""
        if chrom not in self.chroms:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0, dtype=np.float64)
        i = self.chroms.index(chrom)
        sl = slice(int(self.offsets[i]), int(self.offsets[i + 1]))
        return self.starts[sl], self.ends[sl], self.values[sl]

    def renamed(self, mapping: Mapping[str, str]) -> SignalTrack:
        """The same track with chromosomes renamed by ``mapping`` (names not in it are kept)."""
        return SignalTrack(
            chroms=[mapping.get(c, c) for c in self.chroms],
            offsets=self.offsets,
            starts=self.starts,
            ends=self.ends,
            values=self.values,
            chrom_sizes={mapping.get(c, c): n for c, n in self.chrom_sizes.items()},
        )

    def extent(self) -> dict[str, int]:
        """Largest segment end per chromosome (a lower bound of its length)."""
        return {
            c: int(self.ends[self.offsets[i + 1] - 1])
            for i, c in enumerate(self.chroms)
            if self.offsets[i + 1] > self.offsets[i]
        }


def track_from_chrom_arrays(
    per_chrom: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    chrom_sizes: Mapping[str, int] | None = None,
    flatten: bool = False,
) -> SignalTrack:
    """Build a :class:`SignalTrack` from ``{chrom: (starts, ends, values)}``.

    Parameters
    ----------
    per_chrom
        Per-chromosome intervals. Must already be sorted and disjoint unless ``flatten`` is true.
    chrom_sizes
        Known chromosome lengths.
    flatten
        Sum overlapping intervals into disjoint segments (peaks "add up"); input may be unsorted.

    Examples
    --------
    >>> arrays = (np.array([0, 5]), np.array([10, 8]), np.array([1.0, 2.0]))
    >>> t = track_from_chrom_arrays({"chr1": arrays}, flatten=True)
    >>> t.starts.tolist(), t.ends.tolist(), t.values.tolist()
    ([0, 5, 8], [5, 8, 10], [1.0, 3.0, 1.0])
    """
    chroms: list[str] = []
    parts_s, parts_e, parts_v = [], [], []
    offsets = [0]
    if flatten:
        from chromexpr.binning._kernels import flatten_overlaps_kernel
    for chrom, (s, e, v) in per_chrom.items():
        s = np.ascontiguousarray(s, dtype=np.int64)
        e = np.ascontiguousarray(e, dtype=np.int64)
        v = np.ascontiguousarray(v, dtype=np.float64)
        if flatten and s.size:
            s, e, v = flatten_overlaps_kernel(s, e, v)
        if s.size == 0:
            continue
        chroms.append(chrom)
        parts_s.append(s)
        parts_e.append(e)
        parts_v.append(v)
        offsets.append(offsets[-1] + s.size)
    return SignalTrack(
        chroms=chroms,
        offsets=np.asarray(offsets, dtype=np.int64),
        starts=np.concatenate(parts_s) if parts_s else np.empty(0, np.int64),
        ends=np.concatenate(parts_e) if parts_e else np.empty(0, np.int64),
        values=np.concatenate(parts_v) if parts_v else np.empty(0, np.float64),
        chrom_sizes=dict(chrom_sizes or {}),
    )
