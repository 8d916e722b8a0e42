"""Combine per-gene bin attributions into one genome track (sorted, non-overlapping intervals).

The windows of neighbouring genes overlap (each spans ±flank around its own TSS), and their bins are
aligned to their own TSS, not to a common grid. A track is therefore built on the **elementary
segments** cut by every bin edge: each segment lies inside exactly one bin of every gene whose
window covers it, and its value combines those bins' attributions by the rule ``combine``:

``sum``
    the sum over the covering genes' bins: the region's total attribution over all genes (additive
    methods such as integrated gradients and DeepLift keep their completeness property);
``mean``
    the sum divided by the number of covering genes;
``maxabs``
    the covering value with the largest absolute value, sign kept (ties: the earlier gene in input
    order).

Segments no gene covers carry no data (absent from the track). Coordinates are **0-based,
half-open**, clipped to ``[0, chrom_size)``.

Genome-wide, the elementary segments number about twice the gene bins (tens of millions for a human
gene set), so tracks are by default averaged onto the genome grid of the dataset's bin size
(:func:`resample`): a grid bin holds the mean of the per-base track over the bases it covers.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from chromexpr.binning.binner import BinSpec
from chromexpr.explain.coordinates import bin_intervals

__all__ = [
    "COMBINE_RULES",
    "Combine",
    "Segmentation",
    "combine_intervals",
    "gene_track",
    "resample",
]

Combine = Literal["sum", "mean", "maxabs"]

#: One-line statement of each rule (recorded in the output's provenance).
COMBINE_RULES: dict[str, str] = {
    "sum": "value of a genome segment = sum of the attributions of every gene bin covering it",
    "mean": "value of a genome segment = mean of the attributions of the gene bins covering it",
    "maxabs": "value of a genome segment = the covering gene bin attribution of largest |value|",
}


class Segmentation:
    """The elementary segments cut by a fixed set of intervals, reusable for many value vectors.

    Building it sorts the interval bounds once (O(m log m)); :meth:`combine` then costs O(m) per
    value vector (O(sum of segments covered) for ``maxabs``). The attribute run builds one per
    chromosome and reuses it for every sample, since the gene windows do not change.

    Parameters
    ----------
    starts, ends
        0-based, half-open interval bounds, shape ``(m,)``, any order; empty intervals
        (``end <= start``) cover nothing.
    """

    def __init__(self, starts: npt.ArrayLike, ends: npt.ArrayLike) -> None:
        s = np.asarray(starts, dtype=np.int64).reshape(-1)
        e = np.asarray(ends, dtype=np.int64).reshape(-1)
        if s.shape != e.shape:
            raise ValueError(f"starts and ends differ in length ({s.size}, {e.size})")
        self.size = s.size
        self.keep = e > s
        s, e = s[self.keep], e[self.keep]
        bounds = np.concatenate([s, e])
        if bounds.size == 0:
            self.edges = np.empty(0, dtype=np.int64)
            self.lo = self.hi = np.empty(0, dtype=np.int64)
            self.count = np.empty(0, dtype=np.int64)
            return
        # rank of every bound among the distinct bounds, by one sort (no hashing, no binary search)
        order = np.argsort(bounds, kind="stable")
        ordered = bounds[order]
        new = np.empty(ordered.size, dtype=bool)
        new[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
        rank = np.empty(ordered.size, dtype=np.int64)
        rank[order] = np.cumsum(new) - 1
        self.edges = ordered[new]
        self.lo, self.hi = rank[: s.size], rank[s.size :]
        n_seg = self.edges.size - 1
        self.count = np.cumsum(
            np.bincount(self.lo, minlength=n_seg + 1) - np.bincount(self.hi, minlength=n_seg + 1)
        )[:n_seg]

    def combine(
        self, values: npt.ArrayLike, *, combine: Combine = "sum"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Combined value of every covered segment.

        Parameters
        ----------
        values
            Value of each interval given at construction, shape ``(m,)``, finite.
        combine
            ``sum``, ``mean`` or ``maxabs`` over the intervals covering each segment.

        Returns
        -------
        tuple of numpy.ndarray
            ``seg_starts, seg_ends`` (int64) and ``seg_values`` (float64) of the covered segments,
            sorted, non-overlapping (adjacent segments may touch).
        """
        if combine not in get_args(Combine):
            raise ValueError(
                f"unknown combine rule {combine!r}; use one of {', '.join(get_args(Combine))}"
            )
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.size != self.size:
            raise ValueError(f"{v.size} values for {self.size} intervals")
        v = v[self.keep]
        if not np.all(np.isfinite(v)):
            raise ValueError("attribution values must be finite")
        n_seg = max(self.edges.size - 1, 0)
        if n_seg == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy(), np.empty(0, dtype=np.float64)
        if combine == "maxabs":
            from chromexpr.explain._kernels import paint_maxabs_kernel

            out = np.zeros(n_seg, dtype=np.float64)
            found = np.zeros(n_seg, dtype=np.bool_)
            paint_maxabs_kernel(self.lo, self.hi, v, out, found)
        else:
            total = np.cumsum(
                np.bincount(self.lo, weights=v, minlength=n_seg + 1)
                - np.bincount(self.hi, weights=v, minlength=n_seg + 1)
            )[:n_seg]
            out = total / np.maximum(self.count, 1) if combine == "mean" else total
        covered = self.count > 0
        return self.edges[:-1][covered], self.edges[1:][covered], out[covered]


def combine_intervals(
    starts: npt.ArrayLike,
    ends: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    combine: Combine = "sum",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten possibly overlapping intervals of one chromosome into disjoint, sorted segments.

    Parameters
    ----------
    starts, ends
        0-based, half-open interval bounds, shape ``(m,)``, any order; empty intervals
        (``end <= start``) are ignored.
    values
        Value of each interval, shape ``(m,)``, finite.
    combine
        ``sum``, ``mean`` or ``maxabs`` over the intervals covering each segment (see the module
        docs).

    Returns
    -------
    tuple of numpy.ndarray
        ``seg_starts, seg_ends`` (int64) and ``seg_values`` (float64) of the covered segments,
        sorted, non-overlapping (adjacent segments may touch).

    Examples
    --------
    >>> s, e, v = combine_intervals([0, 5], [10, 15], [1.0, -3.0], combine="sum")
    >>> s.tolist(), e.tolist(), v.tolist()
    ([0, 5, 10], [5, 10, 15], [1.0, -2.0, -3.0])
    >>> combine_intervals([0, 5], [10, 15], [1.0, -3.0], combine="maxabs")[2].tolist()
    [1.0, -3.0, -3.0]
    >>> combine_intervals([0, 5], [10, 15], [1.0, -3.0], combine="mean")[2].tolist()
    [1.0, -1.0, -3.0]
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.shape(starts) == np.shape(ends) == v.shape:
        raise ValueError(
            f"starts, ends and values differ in length "
            f"({np.size(starts)}, {np.size(ends)}, {v.size})"
        )
    if combine not in get_args(Combine):
        raise ValueError(
            f"unknown combine rule {combine!r}; use one of {', '.join(get_args(Combine))}"
        )
    return Segmentation(starts, ends).combine(v, combine=combine)


def resample(
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    *,
    resolution: int,
    chrom_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average a disjoint track onto the genome grid ``[k * resolution, (k + 1) * resolution)``.

    A grid bin's value is the mean of the track over the bases of the bin that the track covers
    (uncovered bases are ignored, as bigWig zoom levels do); bins with no covered base are left out.
    The last bin is clipped to ``chrom_size``.

    Parameters
    ----------
    starts, ends, values
        Disjoint, sorted segments (0-based, half-open) and their values, shape ``(n,)``.
    resolution
        Grid step (bp), positive.
    chrom_size
        Chromosome length (clips the last bin); ``None`` leaves it whole.

    Returns
    -------
    tuple of numpy.ndarray
        ``grid_starts, grid_ends`` (int64) and ``grid_values`` (float64), sorted, non-overlapping.

    Examples
    --------
    >>> s, e, v = resample(np.array([0, 500]), np.array([500, 1500]), np.array([1.0, 3.0]),
    ...                    resolution=1000, chrom_size=1200)
    >>> s.tolist(), e.tolist(), v.tolist()
    ([0, 1000], [1000, 1200], [2.0, 3.0])
    """
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    s = np.asarray(starts, dtype=np.int64)
    e = np.asarray(ends, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if s.size == 0:
        return s.copy(), e.copy(), v.copy()
    first = s // resolution
    last = (e - 1) // resolution
    pieces = last - first + 1
    seg = np.repeat(np.arange(s.size), pieces)
    step = np.arange(seg.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    grid = first[seg] + step
    length = np.minimum(e[seg], (grid + 1) * resolution) - np.maximum(s[seg], grid * resolution)
    new = np.empty(grid.size, dtype=bool)  # grid is non-decreasing: the segments are sorted
    new[0] = True
    np.not_equal(grid[1:], grid[:-1], out=new[1:])
    where = np.cumsum(new) - 1
    cells = grid[new]
    covered = np.bincount(where, weights=length)
    mean = np.bincount(where, weights=length * v[seg]) / covered
    out_start = cells * resolution
    out_end = out_start + resolution
    if chrom_size is not None:
        out_end = np.minimum(out_end, chrom_size)
    return out_start, out_end, mean


def gene_track(
    attributions: np.ndarray,
    tss: npt.ArrayLike,
    minus: npt.ArrayLike,
    spec: BinSpec,
    *,
    chrom_size: int | None,
    combine: Combine = "sum",
    resolution: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One chromosome's track from its genes' bin attributions.

    Parameters
    ----------
    attributions
        ``(n_genes, spec.n_bins)`` attribution of each gene's bins (bin 0 = farthest upstream), all
        genes on one chromosome.
    tss, minus
        TSS base (0-based) and strand flag of each gene, shape ``(n_genes,)``.
    spec
        Window geometry of the dataset.
    chrom_size
        Chromosome length (bins are clipped to it); ``None`` clips at 0 only.
    combine
        Rule for bases covered by several genes' windows (see the module docs).
    resolution
        0: the exact elementary segments; else the genome grid step (bp) the track is averaged onto
        (:func:`resample`).

    Returns
    -------
    tuple of numpy.ndarray
        ``starts, ends, values``, sorted and non-overlapping.

    Examples
    --------
    Two genes 1.5 kb apart whose 4-bin windows overlap; with ``sum`` the overlap adds up:

    >>> spec = BinSpec(flank=2000, bin_size=1000)
    >>> a = np.array([[1.0, 1.0, 1.0, 1.0], [10.0, 10.0, 10.0, 10.0]])
    >>> s, e, v = gene_track(a, [2000, 3500], [False, False], spec, chrom_size=6000)
    >>> list(zip(s.tolist(), e.tolist(), v.tolist()))[:3]
    [(0, 1000, 1.0), (1000, 1500, 1.0), (1500, 2000, 11.0)]
    """
    attr = np.asarray(attributions, dtype=np.float64)
    tss_a = np.asarray(tss, dtype=np.int64).reshape(-1)
    if attr.shape != (tss_a.shape[0], spec.n_bins):
        raise ValueError(
            f"attributions have shape {attr.shape}, expected {(tss_a.shape[0], spec.n_bins)}"
        )
    starts, ends = bin_intervals(tss_a, minus, spec, chrom_size=chrom_size)
    track = combine_intervals(starts.ravel(), ends.ravel(), attr.ravel(), combine=combine)
    if resolution:
        return resample(*track, resolution=resolution, chrom_size=chrom_size)
    return track
