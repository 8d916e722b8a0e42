"""Map bin indices of gene windows back to genome intervals (vectorised, both strands).

All intervals are **0-based, half-open** ``[start, end)``. The window geometry is the dataset's
:class:`~chromexpr.binning.binner.BinSpec` (flank ``F``, bin size ``B``, ``n = 2F/B`` bins); bin 0
is the farthest upstream on both strands and bin ``F/B`` holds the TSS base ``t``:

* ``+`` strand: bin ``k`` covers ``[t - F + kB, t - F + (k+1)B)``;
* ``-`` strand: the window ``[t + 1 - F, t + 1 + F)`` is binned in genome order and reversed, so
  bin ``k`` is genome-order bin ``n - 1 - k``: ``[t + 1 - F + (n-1-k)B, t + 1 - F + (n-k)B)``.

Bins that run past a chromosome end are clipped to ``[0, size)``; a bin wholly outside the
chromosome becomes an empty interval (``start == end``), which every caller treats as "not in the
genome".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from chromexpr.binning.binner import BinSpec

__all__ = ["bin_intervals", "bin_midpoints", "gene_bin_intervals", "window_bounds"]


def window_bounds(
    tss: npt.ArrayLike, minus: npt.ArrayLike, spec: BinSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Genome-order window ``[start, end)`` of each gene, before clipping.

    Parameters
    ----------
    tss
        0-based position of each gene's TSS base, shape ``(n_genes,)``.
    minus
        True for minus-strand genes, shape ``(n_genes,)``.
    spec
        Window geometry.

    Returns
    -------
    tuple of numpy.ndarray
        ``starts, ends``, int64 ``(n_genes,)``; ``end - start == 2 * flank``.

    Examples
    --------
    >>> spec = BinSpec(flank=3000, bin_size=1000)
    >>> window_bounds([5000, 5000], [False, True], spec)
    (array([2000, 2001]), array([8000, 8001]))
    """
    tss_a = np.asarray(tss, dtype=np.int64).reshape(-1)
    minus_a = np.asarray(minus, dtype=bool).reshape(-1)
    anchor = tss_a + minus_a.astype(np.int64)
    return anchor - spec.flank, anchor + spec.flank


def bin_intervals(
    tss: npt.ArrayLike,
    minus: npt.ArrayLike,
    spec: BinSpec,
    *,
    chrom_size: npt.ArrayLike | None = None,
    bins: npt.ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Genome interval of each (gene, bin), clipped to the chromosome.

    Parameters
    ----------
    tss
        0-based position of each gene's TSS base, shape ``(n_genes,)``.
    minus
        True for minus-strand genes, shape ``(n_genes,)``.
    spec
        Window geometry.
    chrom_size
        Length of each gene's chromosome, shape ``(n_genes,)`` (or a scalar); ``None`` clips at 0
        only.
    bins
        Bin indices to map: shape ``(n_bins_wanted,)`` (the same bins for every gene) or
        ``(n_genes, n_bins_wanted)`` (per gene); default all ``spec.n_bins`` bins.

    Returns
    -------
    tuple of numpy.ndarray
        ``starts, ends``, int64 ``(n_genes, n_bins_wanted)``; a bin wholly off the chromosome has
        ``start == end`` (empty).

    Examples
    --------
    Three bins each side of the TSS base 5000; the minus-strand window is the mirror image:

    >>> spec = BinSpec(flank=3000, bin_size=1000)
    >>> s, e = bin_intervals([5000, 5000], [False, True], spec)
    >>> s.tolist()
    [[2000, 3000, 4000, 5000, 6000, 7000], [7001, 6001, 5001, 4001, 3001, 2001]]
    >>> (e - s).tolist()[1]
    [1000, 1000, 1000, 1000, 1000, 1000]

    Near a chromosome start bins are clipped, and those wholly before base 0 are empty:

    >>> s, e = bin_intervals([1500], [False], spec, chrom_size=[10_000])
    >>> s.tolist(), e.tolist()
    ([[0, 0, 500, 1500, 2500, 3500]], [[0, 500, 1500, 2500, 3500, 4500]])
    """
    tss_a = np.asarray(tss, dtype=np.int64).reshape(-1)
    minus_a = np.asarray(minus, dtype=bool).reshape(-1)
    if minus_a.shape != tss_a.shape:
        raise ValueError(f"tss has {tss_a.shape[0]} genes but minus has {minus_a.shape[0]}")
    n_bins = spec.n_bins
    if bins is None:
        k = np.broadcast_to(np.arange(n_bins, dtype=np.int64), (tss_a.shape[0], n_bins))
    else:
        k_in = np.asarray(bins, dtype=np.int64)
        if k_in.ndim == 1:
            k = np.broadcast_to(k_in, (tss_a.shape[0], k_in.shape[0]))
        elif k_in.ndim == 2 and k_in.shape[0] == tss_a.shape[0]:
            k = k_in
        else:
            raise ValueError(
                f"bins must have shape (k,) or ({tss_a.shape[0]}, k), got {k_in.shape}"
            )
        if k.size and (k.min() < 0 or k.max() >= n_bins):
            raise ValueError(f"bin indices must lie in [0, {n_bins})")
    window_start, _ = window_bounds(tss_a, minus_a, spec)
    genome_bin = np.where(minus_a[:, None], n_bins - 1 - k, k)
    starts = window_start[:, None] + genome_bin * spec.bin_size
    ends = starts + spec.bin_size
    np.clip(starts, 0, None, out=starts)
    np.clip(ends, 0, None, out=ends)
    if chrom_size is not None:
        size = np.broadcast_to(np.asarray(chrom_size, dtype=np.int64).reshape(-1, 1), starts.shape)
        np.minimum(starts, size, out=starts)
        np.minimum(ends, size, out=ends)
    return starts, ends


def bin_midpoints(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Middle base of each (clipped) interval: ``(start + end) // 2`` (int64, same shape).

    Examples
    --------
    >>> bin_midpoints(np.array([0, 1000]), np.array([500, 2000])).tolist()
    [250, 1500]
    """
    return (np.asarray(starts, dtype=np.int64) + np.asarray(ends, dtype=np.int64)) // 2


def gene_bin_intervals(
    genes: pd.DataFrame, spec: BinSpec, chrom_sizes: Mapping[str, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bin_intervals` of a genes table (``chrom, tss, strand``), clipped to the known
    chromosome sizes (chromosomes of unknown size are clipped at 0 only).

    Examples
    --------
    >>> g = pd.DataFrame({"chrom": ["c"], "tss": [1500], "strand": ["+"]})
    >>> starts, ends = gene_bin_intervals(g, BinSpec(flank=2000, bin_size=1000), {"c": 2700})
    >>> starts.tolist(), ends.tolist()
    ([[0, 500, 1500, 2500]], [[500, 1500, 2500, 2700]])
    """
    sizes = dict(chrom_sizes or {})
    unknown = np.iinfo(np.int64).max
    chrom_size = genes["chrom"].map(lambda c: sizes.get(c, unknown)).to_numpy()
    return bin_intervals(
        genes["tss"].to_numpy(),
        genes["strand"].to_numpy() == "-",
        spec,
        chrom_size=chrom_size,
    )
