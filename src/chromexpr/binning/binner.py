"""Public, validating wrapper around the window-binning kernel."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from chromexpr.binning.signal import SignalTrack
from chromexpr.errors import InputError

Aggregate = Literal["mean", "sum", "max"]
_AGGREGATE_CODES = {"mean": 0, "sum": 1, "max": 2}


@dataclass(frozen=True)
class BinSpec:
    """Window geometry: ``2 * flank / bin_size`` bins of ``bin_size`` bp around each TSS.

    On the + strand bin ``k`` of a TSS ``[s, e)`` covers
    ``[s - flank + k*bin_size, s - flank + (k+1)*bin_size)``. On the - strand the window
    ``[e - flank, e + flank)`` is binned in genome order and reversed. Bin 0 is always the farthest
    upstream; bin ``flank / bin_size`` holds the TSS base.
    """

    flank: int = 1_000_000
    bin_size: int = 1000
    aggregate: Aggregate = "mean"

    def __post_init__(self) -> None:
        if self.bin_size <= 0 or self.flank <= 0:
            raise InputError(
                f"flank ({self.flank}) and bin size ({self.bin_size}) must be positive"
            )
        if self.flank % self.bin_size:
            raise InputError(
                f"flank {self.flank} is not a multiple of bin size {self.bin_size}",
                fix="choose --flank as a multiple of --bin-size",
            )
        if self.aggregate not in _AGGREGATE_CODES:
            raise InputError(f"unknown aggregate {self.aggregate!r}; use mean, sum or max")

    @property
    def n_bins(self) -> int:
        """Bins per window."""
        return 2 * self.flank // self.bin_size

    @property
    def tss_bin(self) -> int:
        """Index of the bin that holds the TSS base."""
        return self.flank // self.bin_size

    def bin_offsets(self) -> np.ndarray:
        """Start of each bin relative to the TSS, in the gene's orientation.

        In bp; negative = upstream.
        """
        return (np.arange(self.n_bins, dtype=np.int64) - self.tss_bin) * self.bin_size

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


def window_anchors(tss_start: np.ndarray, tss_end: np.ndarray, minus: np.ndarray) -> np.ndarray:
    """Anchor of each window: ``start`` on +, ``end`` on - (deepTools' reference point)."""
    return np.where(minus, tss_end, tss_start).astype(np.int64)


def bin_track(
    track: SignalTrack,
    gene_chrom: np.ndarray,
    tss_start: np.ndarray,
    tss_end: np.ndarray,
    minus: np.ndarray,
    spec: BinSpec,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Bin one sample's signal into every gene's window.

    Parameters
    ----------
    track
        The sample's signal (chromosome names already matched to the genes').
    gene_chrom
        Chromosome name of each gene, shape ``(n_genes,)``.
    tss_start, tss_end
        The TSS interval of each gene (0-based, half-open; 1 bp).
    minus
        bool, True for minus-strand genes.
    spec
        Window geometry and aggregate.
    out
        Optional float32 output of shape ``(n_genes, spec.n_bins)`` to fill.

    Returns
    -------
    numpy.ndarray
        float32 ``(n_genes, n_bins)``; bin 0 is the farthest upstream on both strands.
    """
    from chromexpr.binning._kernels import bin_windows_kernel

    n_genes = len(gene_chrom)
    if out is None:
        out = np.empty((n_genes, spec.n_bins), dtype=np.float32)
    if out.shape != (n_genes, spec.n_bins):
        raise ValueError(f"out has shape {out.shape}, expected {(n_genes, spec.n_bins)}")
    index = {c: i for i, c in enumerate(track.chroms)}
    chrom_idx = np.fromiter((index.get(c, -1) for c in gene_chrom), dtype=np.int64, count=n_genes)
    anchors = window_anchors(
        np.asarray(tss_start), np.asarray(tss_end), np.asarray(minus, dtype=bool)
    )
    bin_windows_kernel(
        track.starts,
        track.ends,
        track.values,
        track.offsets,
        chrom_idx,
        anchors,
        np.asarray(minus, dtype=np.bool_),
        int(spec.flank),
        int(spec.bin_size),
        _AGGREGATE_CODES[spec.aggregate],
        out,
    )
    return out
