"""Write binned windows in deepTools' ``computeMatrix`` format (what plotHeatmap/plotProfile read).

The file is a ``@``-prefixed JSON header with computeMatrix's parameters, then one line per region:
``chrom start end name score strand`` and the values of every sample's bins, sample after sample.
The format is gzip whatever the file name (computeMatrix writes it so and plotHeatmap reads it with
``gzip.open`` only); the gzip header names no file and no time.

A sub-window and coarser bins make heatmaps of many genes practical: :func:`window_bins` keeps the
bins within ``window`` bp of the TSS, :func:`rebin` merges ``factor`` neighbouring bins with the
dataset's own statistic (mean, sum or max: exactly what binning at the coarser size gives).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from chromexpr.binning.binner import BinSpec
from chromexpr.errors import InputError

__all__ = ["matrix_header", "rebin", "window_bins", "write_deeptools_matrix"]


def window_bins(spec: BinSpec, window: int | None) -> slice:
    """The bins of ``spec`` within ``window`` bp upstream and downstream of the TSS.

    ``window`` must be a positive multiple of the bin size, at most the flank; ``None`` keeps all.

    Examples
    --------
    >>> window_bins(BinSpec(flank=10_000, bin_size=1000), 3000)
    slice(7, 13, None)
    """
    if window is None:
        return slice(0, spec.n_bins)
    if window <= 0 or window > spec.flank or window % spec.bin_size:
        raise InputError(
            f"window {window} must be a positive multiple of the bin size ({spec.bin_size}) "
            f"and at most the flank ({spec.flank})"
        )
    lo = (spec.flank - window) // spec.bin_size
    return slice(lo, lo + 2 * window // spec.bin_size)


def rebin(values: np.ndarray, factor: int, aggregate: str) -> np.ndarray:
    """Merge each run of ``factor`` neighbouring bins (last axis) with ``aggregate``.

    Parameters
    ----------
    values
        ``(..., n_bins)`` with ``n_bins`` a multiple of ``factor``.
    factor
        Bins merged into one (1 returns ``values`` unchanged).
    aggregate
        ``mean``, ``sum`` or ``max``: the statistic the bins hold, so the merged bin equals what
        binning at ``factor`` times the bin size gives.

    Examples
    --------
    >>> rebin(np.array([[1.0, 3.0, 2.0, 6.0]]), 2, "mean").tolist()
    [[2.0, 4.0]]
    >>> rebin(np.array([1.0, 3.0, 2.0, 6.0]), 2, "max").tolist()
    [3.0, 6.0]
    """
    if factor < 1:
        raise InputError(f"rebin factor must be at least 1, got {factor}")
    if factor == 1:
        return values
    n = values.shape[-1]
    if n % factor:
        raise InputError(f"{n} bins cannot be merged by {factor}: choose a divisor of {n}")
    grouped = values.reshape(*values.shape[:-1], n // factor, factor)
    if aggregate == "mean":
        return grouped.mean(axis=-1, dtype=np.float64).astype(values.dtype)
    if aggregate == "sum":
        return grouped.sum(axis=-1, dtype=np.float64).astype(values.dtype)
    if aggregate == "max":
        return grouped.max(axis=-1)
    raise InputError(f"cannot merge bins holding {aggregate!r} values")


def matrix_header(
    spec: BinSpec,
    samples: list[str],
    n_regions: int,
    group_label: str = "genes",
    *,
    window: int | None = None,
    factor: int = 1,
) -> dict[str, object]:
    """computeMatrix ``reference-point --referencePoint TSS`` parameters for our geometry.

    ``window`` (bp each side, default the flank) and ``factor`` (bins merged) describe a
    sub-window written with coarser bins.
    """
    n = len(samples)
    half = spec.flank if window is None else window
    bin_size = spec.bin_size * factor
    n_bins = 2 * half // bin_size
    return {
        "upstream": [half] * n,
        "downstream": [half] * n,
        "body": [0] * n,
        "bin size": [bin_size] * n,
        "ref point": ["TSS"] * n,
        "verbose": False,
        "bin avg type": spec.aggregate,
        "missing data as zero": True,
        "min threshold": None,
        "max threshold": None,
        "scale": 1,
        "skip zeros": False,
        "nan after end": False,
        "proc number": 1,
        "sort regions": "keep",
        "sort using": "mean",
        "unscaled 5 prime": [0] * n,
        "unscaled 3 prime": [0] * n,
        "group_labels": [group_label],
        "group_boundaries": [0, n_regions],
        "sample_labels": list(samples),
        "sample_boundaries": [i * n_bins for i in range(n + 1)],
    }


def write_deeptools_matrix(
    path: str | Path | IO[str],
    genes: pd.DataFrame,
    blocks: Iterable[tuple[slice, np.ndarray]],
    spec: BinSpec,
    samples: list[str],
    *,
    window: int | None = None,
    factor: int = 1,
) -> None:
    """Write a computeMatrix-format file.

    Parameters
    ----------
    path
        Output file (gzip-compressed), or an open text handle.
    genes
        ``chrom, tss, strand, gene_id`` per gene (TSS written as the 1-bp region
        ``[tss, tss + 1)``, 0-based half-open), in the blocks' order.
    blocks
        ``(rows of genes, (genes, samples, bins) array)`` in gene order (e.g.
        ``Dataset.iter_gene_blocks``).
    spec
        Window geometry of the blocks.
    samples
        Sample labels, in the blocks' sample order.
    window
        Keep the bins within this many bp of the TSS (a multiple of the bin size; default all).
    factor
        Merge this many neighbouring bins into one (:func:`rebin`).
    """
    if isinstance(path, (str, Path)):
        from chromexpr.io.text import open_output

        with open_output(path, force=True, compress=True) as handle:
            write_deeptools_matrix(
                handle, genes, blocks, spec, samples, window=window, factor=factor
            )
        return
    keep = window_bins(spec, window)
    if (keep.stop - keep.start) % factor:
        raise InputError(
            f"{keep.stop - keep.start} bins in the window cannot be merged by {factor}: choose a "
            "divisor"
        )
    handle = path
    header = matrix_header(spec, samples, len(genes), window=window, factor=factor)
    handle.write("@" + json.dumps(header, separators=(",", ":")) + "\n")
    chrom = genes["chrom"].astype(str).to_numpy()
    tss = genes["tss"].to_numpy(dtype=np.int64)
    strand = genes["strand"].astype(str).to_numpy()
    name = genes["gene_id"].astype(str).to_numpy()
    for sl, block in blocks:
        values = rebin(block[:, :, keep], factor, spec.aggregate)
        flat = values.reshape(values.shape[0], -1)
        frame = pd.DataFrame(flat, copy=False)
        frame.columns = [f"v{i}" for i in range(flat.shape[1])]
        frame.insert(0, "strand", strand[sl])
        frame.insert(0, "score", 0)
        frame.insert(0, "name", name[sl])
        frame.insert(0, "end", tss[sl] + 1)
        frame.insert(0, "start", tss[sl])
        frame.insert(0, "chrom", chrom[sl])
        frame.to_csv(
            handle, sep="\t", header=False, index=False, float_format="%.6g", lineterminator="\n"
        )
